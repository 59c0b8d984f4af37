#!/usr/bin/env bash
# Triton orthogonalizer on one H100 (device tool, kind nvidia-h100-x1), from the repo root:
#   bash benchmarks/device/h100_ortho.sh [sweep] [bench] [test] [check]   (default: all four)
# sweep: µs per launch of each candidate block config, per product and shape (-> ortho_sweep.json)
# bench: `bench_ortho` (what `golfprof bench ortho` runs): method x kernel x layout, CUDA events,
#        with the sweep's winners as ortho_triton.TUNED when ortho_sweep.json exists
# test:  pytest's CUDA tests (Triton vs torch vs fp64 on bank + shard shapes; graph path)
# check: the same comparison, printed and written as JSON
# Figures in benchmarks/ortho_notes.md and benchmarks/results/ortho_h100*.json came from
#   bash benchmarks/device/h100_ortho.sh sweep bench test check      (device call 3, 2026-11-23)
# No golfprof install there: the modules it needs are copied into a throwaway package, and
# everything runs from inside it (the repo root's own golfprof/ folder would shadow it).
set -o pipefail
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
OUT=${OUT:-/tmp/ortho_out}; mkdir -p "$OUT"
PKG=/tmp/pkg; rm -rf $PKG; mkdir -p $PKG/golfprof/model
touch $PKG/golfprof/__init__.py
cp model/__init__.py model/config.py model/ortho.py model/ortho_triton.py bench/ortho.py $PKG/golfprof/model/
mkdir -p $PKG/t && cp tests/model/test_ortho_triton.py tests/model/triton_marks.py $PKG/t/
export PYTHONPATH=$PKG; cd $PKG
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name(0))"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,power.limit,temperature.gpu --format=csv
M="python3 -m golfprof.bench.ortho"
for what in ${*:-sweep bench test check}; do
  echo "== $what"
  case $what in
    sweep) timeout 100 $M sweep --out "$OUT/ortho_sweep.json" 2>&1 | tee "$OUT/sweep.log" ;;
    bench) timeout 150 $M bench --configs "$OUT/ortho_sweep.json" --out "$OUT/ortho_bench.json" 2>&1 | tee "$OUT/bench.log" ;;
    test)  timeout 45 python3 -m pytest -q -p no:cacheprovider --rootdir=$PKG t/test_ortho_triton.py -k cuda 2>&1 | tee "$OUT/test.log" ;;
    check) timeout 30 $M check --out "$OUT/ortho_check.json" 2>&1 | tee "$OUT/check.log" ;;
  esac
done
