#!/usr/bin/env bash
# Issues 5/10/11 on 2xH200: small committed two-rank traces (explicit vs DDP), their diff, and the
# packed / vectorized schedules against explicit_banks.
source benchmarks/device/setup.sh
export REPO=$PWD WORK=/tmp/work; mkdir -p $WORK/logs; cd $WORK
R="--preset full --nproc 2 --quiet --runs-dir runs --data-dir /tmp/data"
run() { name=$1; shift; echo "== $name"; timeout ${T:-170} golfprof ablate $R "$@" > logs/$name.log 2>&1; echo "rc=$? $(tail -1 logs/$name.log)"; }
run trace_explicit --variant explicit_banks --steps 8 --tokens-per-step 196608 --profile-steps 4,1,3
run trace_ddp --variant ddp_banks --steps 8 --tokens-per-step 196608 --profile-steps 4,1,3
golfprof diff runs/*-explicit_banks runs/*-ddp_banks --json > $OUT/diff_explicit_vs_ddp.json
timeout 400 golfprof ablate --preset full --nproc 2 --steps 20 --variant explicit_banks --variant packed \
  --variant vectorized_unbanked --profile-steps off --runs-dir runs --data-dir /tmp/data --matrix-dir runs/record_schedules > logs/record.log 2>&1
tail -30 logs/record.log
tar czf $OUT/results.tar.gz runs logs; ls -la $OUT
