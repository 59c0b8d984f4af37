#!/usr/bin/env bash
# Issue 25 on one H200 (kind nvidia-h200), from the repo root; carry: .whl benchmarks/device/record_scripts.
# The replica against the banking record's own script, like with like: both under golfprof (the script through
# `golfprof profile` with the FA3 shim on cuDNN, the replica through `golfprof train --preset full`, SDPA = cuDNN on
# this GPU), world 1, the same steps and profiler window, interleaved S R S R in one call (REPEATS pairs), one
# inductor cache per side (a side's second run reuses its kernels). Then `golfprof diff --kernel-names full` of the
# last pair. Outputs in $OUT: runs.json (each run's ms/step, window check, GPU state), diff.txt, diff.json, logs.
set -u
REPO=$PWD START=$SECONDS
source benchmarks/device/tree_env.sh  # wheels, golfprof from this tree, NCCL settings
cd /tmp  # not the repo root: its golfprof/ folder would shadow /tmp/gp
GP="python3 -m golfprof.cli"
SCRIPT=$REPO/benchmarks/device/record_scripts/banking/train_gpt.py
STEPS=${STEPS:-16} REPEATS=${REPEATS:-2}
log() { echo "[$(( SECONDS - START ))s] $*"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)"
$GP data synth --out /tmp/data_banking --vocab 1024 --tokenizer --val-tokens 131072 > /dev/null
ENVS=(ITERATIONS=$STEPS WARMUP_STEPS=2 VAL_LOSS_EVERY=0 TRAIN_LOG_EVERY=1 MAX_WALLCLOCK_SECONDS=0 TTT_ENABLED=0
      DATA_PATH=/tmp/data_banking TOKENIZER_PATH=/tmp/data_banking/tokenizer.model VOCAB_SIZE=1024 EVAL_STRIDE=2048)
GPENV=(); for e in "${ENVS[@]}"; do GPENV+=(--env "$e"); done
for k in $(seq 1 "$REPEATS"); do
  TORCHINDUCTOR_CACHE_DIR=/tmp/ic_script timeout 200 $GP profile --runs-dir /tmp/runs_s --name "script-r$k" \
    --steps "$STEPS" --attention-shim cudnn "${GPENV[@]}" "$SCRIPT" > "$OUT/script_r$k.log" 2>&1
  log "script r$k rc=$?"; grep -E "ms/step|window" "$OUT/script_r$k.log" | head -3
  TORCHINDUCTOR_CACHE_DIR=/tmp/ic_replica timeout 200 $GP train --preset full --steps "$STEPS" --runs-dir "/tmp/runs_r$k" \
    --data-dir /tmp/gdata --quiet > "$OUT/replica_r$k.log" 2>&1
  log "replica r$k rc=$?"; grep -E "ms/step|window" "$OUT/replica_r$k.log" | head -3
done
A=$(ls -d /tmp/runs_r$REPEATS/* | head -1) B=$(ls -d /tmp/runs_s/*script-r$REPEATS* | head -1)
timeout 100 $GP diff "$A" "$B" --kernel-names full --top 25 > "$OUT/diff.txt" 2>&1; log "diff rc=$?"
timeout 100 $GP diff "$A" "$B" --kernel-names full --top 60 --json > "$OUT/diff.json" 2>/dev/null
grep -A8 "kernel families" "$OUT/diff.txt"; head -24 "$OUT/diff.txt" | cut -c1-160
python3 - "$OUT" <<'PY'
import glob, json, sys
out = sys.argv[1]
rows = []
for s in sorted(glob.glob("/tmp/runs_s/*/summary.json") + glob.glob("/tmp/runs_r*/*/summary.json")):
    d = json.load(open(s))
    rows.append({"run": s.split("/")[2] + "/" + s.split("/")[3], "ms_per_step": d.get("ms_per_step"),
                 "forward_backward_ms": d.get("forward_backward_ms"), "optimizer_ms": d.get("optimizer_ms"),
                 "window_check": d.get("window_check"), "gpu_state": d.get("gpu_state"),
                 "attention_used": d.get("attention_used"), "steps": d.get("steps")})
    print(rows[-1]["run"], rows[-1]["ms_per_step"])
json.dump(rows, open(f"{out}/runs.json", "w"), indent=1, default=str)
PY
log "done"
