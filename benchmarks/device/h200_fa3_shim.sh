#!/usr/bin/env bash
# Issue 24 items 4 and 5 on one H200 (kind nvidia-h200), from the repo root; carry: .whl benchmarks/device/record_scripts
#   (record_scripts/banking/train_gpt.py: the 2026-03-23 banking record; record_scripts/varlen/train_gpt.py: the
#    2026-04-10 VarLenAttn record; both from openai/parameter-golf, git-ignored, never committed)
# Stages: (1) benchmarks/device/fa3_shim_check.py -> $OUT/fa3_shim_h200.json; (2) `golfprof data synth` for each
# record and each record's own train_gpt.py, unmodified, importing flash_attn_interface from the shim, for a few
# steps -> $OUT/banking.log, $OUT/varlen.log. golfprof is imported from this tree (symlinks in /tmp/gp), so the
# run checks the code as it is here, no wheel of it.
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
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
STAGES=${STAGES:-check banking varlen}

if [[ " $STAGES " == *" check "* ]]; then
  timeout 280 python3 "$REPO/benchmarks/device/fa3_shim_check.py" > "$OUT/fa3_shim_h200.json" 2> "$OUT/check.err"
  echo "check rc=$?"; tail -3 "$OUT/check.err"
fi

# A shim folder that outlives this shell's python processes: the scripts run as their own processes.
python3 -c "from golfprof.model.fa3_shim import install; print('shim:', install('${SHIM_KIND:-cudnn}', folder='/tmp/shim'))"
SHIMPATH=/tmp/shim:$PYTHONPATH
COMMON=(ITERATIONS=8 WARMUP_STEPS=2 VAL_LOSS_EVERY=0 TRAIN_LOG_EVERY=1 MAX_WALLCLOCK_SECONDS=0 TTT_ENABLED=0)

if [[ " $STAGES " == *" banking "* ]]; then
  $GP data synth --out /tmp/data_banking --vocab 1024 --tokenizer --val-tokens 131072
  (cd /tmp && mkdir -p banking && cd banking && env PYTHONPATH=$SHIMPATH "${COMMON[@]}" DATA_PATH=/tmp/data_banking \
     TOKENIZER_PATH=/tmp/data_banking/tokenizer.model VOCAB_SIZE=1024 EVAL_STRIDE=2048 \
     timeout 240 python3 "$REPO/benchmarks/device/record_scripts/banking/train_gpt.py" > "$OUT/banking.log" 2>&1)
  echo "banking rc=$?"; grep -E "step:|val_bpb|Error|error" "$OUT/banking.log" | tail -8
fi

if [[ " $STAGES " == *" varlen "* ]]; then
  V=/tmp/vdata; $GP data synth --out $V/datasets/fineweb10B_sp8192 --vocab 8192 --tokenizer --val-tokens 131072
  mkdir -p $V/tokenizers && cp $V/datasets/fineweb10B_sp8192/tokenizer.model $V/tokenizers/fineweb_8192_bpe.model
  (cd /tmp && mkdir -p varlen && cd varlen && env PYTHONPATH=$SHIMPATH "${COMMON[@]}" DATA_DIR=$V/ COMPRESSOR=lzma \
     GPTQ_CALIBRATION_BATCHES=2 timeout 240 python3 "$REPO/benchmarks/device/record_scripts/varlen/train_gpt.py" \
     > "$OUT/varlen.log" 2>&1)
  echo "varlen rc=$?"; grep -E "step:|val_bpb|Error|error" "$OUT/varlen.log" | tail -8
fi
