#!/usr/bin/env bash
# Kernel parity (issue 25): where golfprof's replica and the banking record's own script compile to different
# kernels. One H200 (kind nvidia-h200), from the repo root; carry: .whl benchmarks/device/record_scripts.
# Both sides on cuDNN attention (the script through golfprof's FA3 shim), each with its own inductor cache so that
# the generated Triton sources can be read side by side. Outputs in $OUT: script.log, replica.log, diff_full.txt
# (golfprof diff --kernel-names full), diff.json, kernels_<side>.tar.gz (the generated modules that define a
# kernel named in the diff's top changes).
set -u
REPO=$PWD
source benchmarks/device/tree_env.sh  # wheels, golfprof from this tree, NCCL settings
cd /tmp  # not the repo root: its golfprof/ folder would shadow /tmp/gp
GP="python3 -m golfprof.cli"
SCRIPT=$REPO/benchmarks/device/record_scripts/banking/train_gpt.py
STEPS=${STEPS:-10}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)"
$GP data synth --out /tmp/data_banking --vocab 1024 --tokenizer --val-tokens 131072 > /dev/null
ENVS=(ITERATIONS=$STEPS WARMUP_STEPS=2 VAL_LOSS_EVERY=0 TRAIN_LOG_EVERY=1 MAX_WALLCLOCK_SECONDS=0 TTT_ENABLED=0
      DATA_PATH=/tmp/data_banking TOKENIZER_PATH=/tmp/data_banking/tokenizer.model VOCAB_SIZE=1024 EVAL_STRIDE=2048)
GPENV=(); for e in "${ENVS[@]}"; do GPENV+=(--env "$e"); done
TORCHINDUCTOR_CACHE_DIR=/tmp/ic_script timeout 240 $GP profile --runs-dir /tmp/runs --name script --steps $STEPS \
  --attention-shim cudnn "${GPENV[@]}" "$SCRIPT" > "$OUT/script.log" 2>&1
echo "script rc=$?"; tail -8 "$OUT/script.log"
TORCHINDUCTOR_CACHE_DIR=/tmp/ic_replica timeout 200 $GP train --preset full --steps $STEPS --runs-dir /tmp/runs_replica \
  --data-dir /tmp/gdata --quiet > "$OUT/replica.log" 2>&1
echo "replica rc=$?"; tail -8 "$OUT/replica.log"
A=$(ls -d /tmp/runs_replica/* | head -1) B=$(ls -d /tmp/runs/*script* | head -1)
timeout 120 $GP diff "$A" "$B" --kernel-names full --top 40 > "$OUT/diff_full.txt" 2>&1; echo "diff rc=$?"
timeout 120 $GP diff "$A" "$B" --kernel-names full --top 80 --json > "$OUT/diff.json" 2>/dev/null
sed -n 1,200p "$OUT/diff_full.txt" | cut -c1-250
python3 - "$OUT" <<'PY'
import json, pathlib, re, sys, tarfile
out = pathlib.Path(sys.argv[1])
d = json.loads((out / "diff.json").read_text())
names = set()
def walk(o):
    if isinstance(o, dict):
        for v in o.values(): walk(v)
    elif isinstance(o, list):
        for v in o: walk(v)
    elif isinstance(o, str) and o.startswith("triton_"):
        names.add(re.sub(r"\W.*", "", o))
walk(d)
print("triton kernels named in the diff:", len(names))
for side in ("script", "replica"):
    files = [p for p in pathlib.Path(f"/tmp/ic_{side}").rglob("*.py")
             if any(f"def {n}(" in p.read_text(errors="replace") for n in names)]
    with tarfile.open(out / f"kernels_{side}.tar.gz", "w:gz") as t:
        for p in files:
            t.add(p, arcname=p.name)
    print(side, "files:", len(files))
PY
ls -la "$OUT"
