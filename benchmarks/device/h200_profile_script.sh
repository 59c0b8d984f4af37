#!/usr/bin/env bash
# `golfprof profile` of the banking record's own train_gpt.py, unmodified, on one H200 (kind nvidia-h200), from the
# repo root; carry: .whl benchmarks/device/record_scripts (the 2026-03-23 banking record from openai/parameter-golf,
# git-ignored, never committed). Stages (STAGES, default all):
#   plain    the script alone (its own step_avg lines), ITERATIONS=$STEPS
#   profile  golfprof profile --steps $STEPS at world 1, then golfprof analyze of the run (GPU trace)
#   replica  golfprof train --preset full --steps $STEPS (golfprof's own replica, default attention: cuDNN here),
#            then golfprof diff of it against the profiled script (kernel family by family)
#   simulate golfprof profile --simulate-world 8 --simulate-rank 0 --steps $STEPS (predicted ms/step)
# Outputs in $OUT: <stage>.log, profile_summary.json, profile_analyze.txt, replica_summary.json, diff.txt, simulate_summary.json, simulate_predicted.json
set -u
REPO=$PWD
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl >/dev/null 2>&1
mkdir -p /tmp/gp/golfprof
for f in golfprof/*; do ln -sf "$REPO/$f" /tmp/gp/golfprof/; done
python3 - <<'EOF'
import os, tomllib
dirs = tomllib.load(open("pyproject.toml", "rb"))["tool"]["setuptools"]["package-dir"]
for name, d in dirs.items():
    if name != "golfprof":
        os.symlink(os.path.abspath(d), "/tmp/gp/" + name.replace(".", "/"))
EOF
export PYTHONPATH=/tmp/gp:/tmp/site PYTHONUNBUFFERED=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
cd /tmp  # not the repo root: its golfprof/ folder would shadow /tmp/gp
GP="python3 -m golfprof.cli"
SCRIPT=$REPO/benchmarks/device/record_scripts/banking/train_gpt.py
STEPS=${STEPS:-24}
STAGES=${STAGES:-plain profile replica simulate}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)"
$GP data synth --out /tmp/data_banking --vocab 1024 --tokenizer --val-tokens 131072 > /dev/null
ENVS=(ITERATIONS=$STEPS WARMUP_STEPS=2 VAL_LOSS_EVERY=0 TRAIN_LOG_EVERY=1 MAX_WALLCLOCK_SECONDS=0 TTT_ENABLED=0
      DATA_PATH=/tmp/data_banking TOKENIZER_PATH=/tmp/data_banking/tokenizer.model VOCAB_SIZE=1024 EVAL_STRIDE=2048)
GPENV=(); for e in "${ENVS[@]}"; do GPENV+=(--env "$e"); done
SHIM=${SHIM:-cudnn}

if [[ " $STAGES " == *" plain "* ]]; then
  python3 -c "from golfprof.model.fa3_shim import install; print('shim:', install('$SHIM', folder='/tmp/shim'))"
  (mkdir -p /tmp/plain && cd /tmp/plain && env PYTHONPATH=/tmp/shim:$PYTHONPATH "${ENVS[@]}" \
     timeout 230 python3 "$SCRIPT" > "$OUT/plain.log" 2>&1)
  echo "plain rc=$?"; grep -E "^step:" "$OUT/plain.log" | tail -3
fi
if [[ " $STAGES " == *" profile "* ]]; then
  timeout 230 $GP profile --runs-dir /tmp/runs --name world1 --steps $STEPS --attention-shim $SHIM "${GPENV[@]}" \
    "$SCRIPT" > "$OUT/profile.log" 2>&1
  echo "profile rc=$?"; tail -25 "$OUT/profile.log"
  R=$(ls -d /tmp/runs/*world1* | head -1)
  cp "$R/summary.json" "$OUT/profile_summary.json"
  timeout 120 $GP analyze "$R" > "$OUT/profile_analyze.txt" 2>&1; echo "analyze rc=$?"; head -40 "$OUT/profile_analyze.txt"
fi
if [[ " $STAGES " == *" replica "* ]]; then
  timeout 200 $GP train --preset full --steps $STEPS --runs-dir /tmp/runs_replica --data-dir /tmp/gdata --quiet \
    > "$OUT/replica.log" 2>&1
  echo "replica rc=$?"; tail -12 "$OUT/replica.log"
  A=$(ls -d /tmp/runs_replica/* | head -1) B=$(ls -d /tmp/runs/*world1* | head -1)
  cp "$A/summary.json" "$OUT/replica_summary.json"
  timeout 90 $GP diff "$A" "$B" > "$OUT/diff.txt" 2>&1; echo "diff rc=$?"; head -60 "$OUT/diff.txt"
fi
if [[ " $STAGES " == *" simulate "* ]]; then
  timeout 230 $GP profile --runs-dir /tmp/runs --name sim8 --steps $STEPS --attention-shim $SHIM "${GPENV[@]}" \
    --simulate-world 8 --simulate-rank 0 "$SCRIPT" > "$OUT/simulate.log" 2>&1
  echo "simulate rc=$?"; tail -25 "$OUT/simulate.log"
  R=$(ls -d /tmp/runs/*sim8* | head -1)
  cp "$R/summary.json" "$OUT/simulate_summary.json"; cp "$R/simulated/predicted.json" "$OUT/simulate_predicted.json"
fi
