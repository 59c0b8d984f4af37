#!/usr/bin/env bash
# Issue 26 on one H200 (kind nvidia-h200), from the repo root; carry: .whl. golfprof is imported from this tree
# (symlinks in /tmp/gp), as in h200_profile_script.sh. Under ~8 minutes wall. Stages (STAGES, default all):
#   probe     golfprof bench comm --interference into a copy of the bundled h200 table: the full preset's GEMMs
#             beside a copy kernel on nchannels (16) CTAs -> $OUT/h200_probed.json (interference_probe)
#   simulate  golfprof ablate --preset full --variant V --simulate-world 8 --simulate-rank $SIM_RANK
#             --record-shapes --target-gpu h100, for V in explicit_banks ddp_banks (one compile each)
#   predict   each run directory predicted again for --target-gpu h100 and h200, with the bundled h200 table
#             and with the probed one -> $OUT/target_gpu.json: per (variant, target, table) the source and target
#             ms/step with intervals, the breakdown lines of both sides, the interference figures and the
#             kernel classes; the explicit-vs-ddp difference line by line
# Outputs in $OUT: h200_probed.json, target_gpu.json, summary.txt (every stage's log tail).
set -u
export REPO=$PWD START=$SECONDS
source benchmarks/device/tree_env.sh  # wheels, golfprof from this tree, NCCL settings
cd /tmp  # not the repo root: its golfprof/ folder would shadow /tmp/gp
GP="python3 -m golfprof.cli"
STEPS=${STEPS:-8} SIM_RANK=${SIM_RANK:-7} STAGES=${STAGES:-probe simulate predict}
VARIANTS=${VARIANTS:-explicit_banks ddp_banks}
mkdir -p /tmp/tg/logs "${OUT:?set OUT}"
log() { echo "[$(( SECONDS - START ))s] $*" | tee -a /tmp/tg/logs/script.log; }
{ nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)"; } | tee -a /tmp/tg/logs/script.log

if [[ " $STAGES " == *" probe "* ]]; then
  python3 -c "from importlib import resources; import shutil; shutil.copy(resources.files('golfprof.predict') \
    .joinpath('comm_tables', 'h200_nvlink.json'), '$OUT/h200_probed.json')"
  timeout 120 $GP bench comm --interference --preset full --out "$OUT/h200_probed.json" > /tmp/tg/logs/probe.log 2>&1
  log "probe rc=$?"; tail -3 /tmp/tg/logs/probe.log
fi
if [[ " $STAGES " == *" simulate "* ]]; then
  for v in $VARIANTS; do
    timeout 200 $GP ablate --preset full --variant "$v" --simulate-world 8 --simulate-rank "$SIM_RANK" --steps "$STEPS" \
      --record-shapes --target-gpu h100 --runs-dir /tmp/tg/runs --data-dir /tmp/gdata --quiet > "/tmp/tg/logs/$v.log" 2>&1
    log "simulate $v rc=$?"; tail -22 "/tmp/tg/logs/$v.log"
  done
fi
if [[ " $STAGES " == *" predict "* ]]; then
  timeout 200 python3 - "$OUT" $VARIANTS <<'PY' > /tmp/tg/logs/predict.log 2>&1
import json, os, subprocess, sys, torch
from pathlib import Path
from golfprof.predict.breakdown import delta
from golfprof.predict.predict import predict
out, variants = Path(sys.argv[1]), sys.argv[2:]
tables = {"h200": "h200"} | ({"h200_probed": str(out / "h200_probed.json")}
                             if "interference_probe" in json.loads((out / "h200_probed.json").read_text()) else {})
keep = ("ms_per_step", "interval_ms", "comm_ms", "exposed_comm_ms", "breakdown", "source_gpu", "comm_model",
        "measured_ms_per_step_of_the_simulated_rank", "variant", "world_size", "simulated_ranks")
rows, lines = [], {}
for d in sorted(Path("/tmp/tg/runs").iterdir()):
    if not (d / "simulated").is_dir():
        continue
    for tname, table in tables.items():
        for tgt in ("h100", "h200"):
            p = predict(d, table, target_gpu=tgt)["prediction"]
            rows.append({"run": d.name, "table": tname, "target_gpu": tgt} | {k: p.get(k) for k in keep}
                        | {"target": p["target"]})
            print(p["variant"], tname, tgt, "source", round(p["ms_per_step"], 3), p["interval_ms"],
                  "target", round(p["target"]["ms_per_step"], 3), p["target"]["interval_ms"])
            lines[(p["variant"], tname, tgt)] = p["target"]["breakdown"]
deltas = {f"{t}/{g}": delta(lines[("explicit_banks", t, g)], lines[("ddp_banks", t, g)]).to_dict("records")
          for (_, t, g) in lines if ("explicit_banks", t, g) in lines and ("ddp_banks", t, g) in lines}
rev = subprocess.run(["git", "-C", os.environ["REPO"], "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
doc = {"benchmark": "issue 26: target-GPU predictions of a simulated world 8, full preset, one H200",
       "predicted": True, "device": torch.cuda.get_device_name(0), "torch": torch.__version__,
       "command": "bash benchmarks/device/h200_target_gpu.sh", "golfprof_revision": rev or None,
       "rows": rows, "ddp_minus_explicit_by_line_on_target": deltas}
(out / "target_gpu.json").write_text(json.dumps(doc, indent=1, default=str))
PY
  log "predict rc=$?"; tail -12 /tmp/tg/logs/predict.log
fi
{ cat /tmp/tg/logs/script.log; for f in /tmp/tg/logs/*.log; do echo "== $f"; tail -30 "$f"; done; } > "$OUT/summary.txt"
ls -la "$OUT"
