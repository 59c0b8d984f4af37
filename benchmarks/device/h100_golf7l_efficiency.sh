#!/usr/bin/env bash
# Issues 8/10/11 on one H100: golf7l tokens-per-step sweep; full preset explicit_banks with the
# torch and the Triton orthogonalizer (efficiency figures: MFU against the ceiling measured there).
source benchmarks/device/setup.sh
export REPO=$PWD WORK=/tmp/work; mkdir -p $WORK/logs; cd $WORK
echo "== golf7l sweep"
timeout 270 golfprof ablate --preset golf7l --variant explicit_banks --sweep-tokens-per-step 32768,131072,262144,524288 \
  --steps 10 --warmup-steps 3 --profile-steps off --runs-dir runs --data-dir /tmp/data --matrix-dir runs/golf7l_sweep > logs/golf7l.log 2>&1
echo "rc=$?"; tail -12 logs/golf7l.log
timeout 270 golfprof ablate --preset full --variant explicit_banks --variant triton_ortho --variant polar_express \
  --variant triton_polar_express --steps 16 --profile-steps off \
  --runs-dir runs --data-dir /tmp/data --matrix-dir runs/ortho_kernel > logs/ortho.log 2>&1
echo "rc=$?"; tail -25 logs/ortho.log
cd $WORK && tar czf $OUT/results.tar.gz runs logs; ls -la $OUT
