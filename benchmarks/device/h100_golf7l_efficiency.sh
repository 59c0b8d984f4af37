#!/usr/bin/env bash
# Issues 10/11 on one H100: golf7l tokens-per-step sweep; full preset banked vs unbanked with
# efficiency figures (MFU against the ceiling measured in the same session) and traces for `diff`.
source benchmarks/device/setup.sh
export REPO=$PWD WORK=/tmp/work; mkdir -p $WORK/logs; cd $WORK
echo "== golf7l sweep"
timeout 330 golfprof ablate --preset golf7l --variant explicit_banks --sweep-tokens-per-step 32768,65536,131072,262144,524288 \
  --steps 12 --warmup-steps 3 --profile-steps off --runs-dir runs --data-dir /tmp/data --matrix-dir runs/golf7l_sweep > logs/golf7l.log 2>&1
echo "rc=$?"; tail -12 logs/golf7l.log
for v in explicit_banks explicit_unbanked; do
  echo "== full $v"; timeout 120 golfprof train --preset full --variant $v --steps 20 --quiet --runs-dir runs --data-dir /tmp/data > logs/full_$v.log 2>&1; echo "rc=$?"; tail -14 logs/full_$v.log | grep -E "ms_per|optimizer|mfu|tflops|run dir"
done
cd $WORK && tar czf $OUT/results.tar.gz runs logs; ls -la $OUT
