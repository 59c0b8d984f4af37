#!/usr/bin/env bash
# Issue 25 item 1 on one H200 (kind nvidia-h200), from the repo root; carry: .whl. golfprof is imported from this
# tree (symlinks in /tmp/gp), as in h200_profile_script.sh. One matrix, interleaved: explicit_banks (the prefetching
# loader, the default) against record_loader (the record's synchronous loader), full preset, the profiler window on.
# Outputs in $OUT: matrix.log, comparison.json, and each run's summary as <run>.json.
set -u
REPO=$PWD
source benchmarks/device/tree_env.sh  # wheels, golfprof from this tree, NCCL settings
cd /tmp  # not the repo root: its golfprof/ folder would shadow /tmp/gp
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)"
timeout ${BUDGET:-420} python3 -m golfprof.cli ablate --preset full --variant explicit_banks --variant record_loader \
  --repeats ${REPEATS:-1} --steps ${STEPS:-16} --baseline explicit_banks --runs-dir /tmp/lruns --matrix-dir /tmp/lmatrix \
  --data-dir /tmp/gdata --quiet > "$OUT/matrix.log" 2>&1
echo "matrix rc=$?"; tail -40 "$OUT/matrix.log"
cp /tmp/lmatrix/comparison.json "$OUT/" 2>/dev/null
for d in /tmp/lruns/*; do [ -f "$d/summary.json" ] && cp "$d/summary.json" "$OUT/$(basename "$d").json"; done
python3 - <<'PY'
import glob, json, pandas as pd
for d in sorted(glob.glob("/tmp/lruns/*")):
    try:
        ph = pd.read_parquet(f"{d}/phases/rank0.parquet")
    except Exception as e:
        print(d, "no phases", e); continue
    data = ph[ph.phase == "golfprof/step/data"]
    print(d.rsplit("/", 1)[1], "data phase ms per step: median %.3f max %.3f" % (data.ms.median(), data.ms.max()))
PY
