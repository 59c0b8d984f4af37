#!/usr/bin/env bash
# Issue 4/5 on one H100: small committed test traces (compiled and eager), and the overhead of
# phase marks and of the profiler on the full preset.
source benchmarks/device/setup.sh
export REPO=$PWD WORK=/tmp/work; mkdir -p $WORK/logs; cd $WORK
R="--preset full --quiet --runs-dir runs --data-dir /tmp/data"
run() { name=$1; shift; echo "== $name: golfprof train $R $*"; timeout ${T:-170} golfprof train $R "$@" > logs/$name.log 2>&1; echo "rc=$? $(tail -1 logs/$name.log)"; }
T=150 run trace_compiled --variant explicit_banks --steps 8 --tokens-per-step 98304 --profile-steps 4,1,3
T=150 run trace_eager --variant eager --steps 6 --tokens-per-step 98304 --profile-steps 2,1,3
run marked --variant explicit_banks --steps 30 --profile-steps off
run unmarked --variant explicit_banks --steps 30 --profile-steps off --no-marks --no-timers
run profiled --variant explicit_banks --steps 30 --profile-steps 3,1,26
source $REPO/benchmarks/device/pack.sh
