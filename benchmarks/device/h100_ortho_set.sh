#!/usr/bin/env bash
# Issue 8, v3 (one graph for all banks + fused momentum) on one H100 (device kind nvidia-h100-x1):
#   bash benchmarks/device/h100_ortho_set.sh
#   (knobs: KERNELS=torch,triton,... for the bench, VARIANTS="a b" and REPEATS=N for the trainer)
# 1. the CUDA tests of the Triton orthogonalizer and of OrthoSet (graph vs eager, bank + shard shapes)
# 2. bench ortho: torch / per-call triton / OrthoSet on 1 and 2 streams, both methods, both layouts
# 3. the full preset with the torch and the triton kernel (NS5 and Polar Express), 16 steps each
source benchmarks/device/setup.sh
export REPO=$PWD WORK=/tmp/work; mkdir -p $WORK/logs $WORK/t; cd $WORK
cp $REPO/tests/model/test_ortho_triton.py $REPO/tests/model/test_ortho_set.py $REPO/tests/model/triton_marks.py $WORK/t/
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,power.limit,temperature.gpu --format=csv
echo "== tests"
timeout 120 python3 -m pytest -q -p no:cacheprovider --rootdir=$WORK/t t/test_ortho_triton.py t/test_ortho_set.py -k cuda \
  > logs/test.log 2>&1; echo "rc=$?"; tail -5 logs/test.log
echo "== bench"
timeout 200 python3 -m golfprof.bench.ortho bench --kernels ${KERNELS:-torch,triton,triton_set,triton_set2} \
  --out $OUT/ortho_bench.json > logs/bench.log 2>&1; echo "rc=$?"; tail -20 logs/bench.log
echo "== trainer"
VARIANTS=${VARIANTS:-explicit_banks triton_ortho polar_express triton_polar_express}
timeout 270 golfprof ablate --preset full $(printf -- '--variant %s ' $VARIANTS) --repeats ${REPEATS:-1} --steps 16 --profile-steps off \
  --runs-dir runs --data-dir /tmp/data --matrix-dir runs/ortho_kernel > logs/ortho.log 2>&1
echo "rc=$?"; tail -25 logs/ortho.log
source $REPO/benchmarks/device/pack.sh
