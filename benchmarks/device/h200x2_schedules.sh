#!/usr/bin/env bash
# Issue 3 GPU figures on 2xH200: full preset, explicit vs DDP schedules, banked and unbanked.
source benchmarks/device/setup.sh
export REPO=$PWD WORK=/tmp/work; mkdir -p $WORK/logs; cd $WORK
R="--preset full --nproc 2 --quiet --runs-dir runs --data-dir /tmp/data --steps 30"
run() { name=$1; shift; echo "== $name: golfprof ablate $R $*"; timeout ${T:-170} golfprof ablate $R "$@" > logs/$name.log 2>&1; echo "rc=$? $(tail -1 logs/$name.log)"; }
run explicit_banks --variant explicit_banks
run ddp_banks --variant ddp_banks
run explicit_unbanked --variant explicit_unbanked
run ddp_unbanked --variant ddp_unbanked
source $REPO/benchmarks/device/pack.sh
