#!/usr/bin/env bash
# Issue 2/4 GPU figures on one H100: full preset, both layouts x both orthogonalizers, overhead trio.
source benchmarks/device/setup.sh
export REPO=$PWD WORK=/tmp/work; mkdir -p $WORK/logs; cd $WORK
R="--preset full --quiet --runs-dir runs --data-dir /tmp/data"
run() { name=$1; shift; echo "== $name: golfprof train $R $*"; timeout ${T:-200} golfprof train $R "$@" > logs/$name.log 2>&1; echo "rc=$? $(tail -1 logs/$name.log)"; }
T=120 run tiny_smoke --preset tiny --steps 5 --device cuda
run banked_ns5 --variant explicit_banks --steps 30
run banked_pe --variant polar_express --steps 30
run unbanked_ns5 --variant explicit_unbanked --steps 30
run unbanked_pe --variant explicit_unbanked --ortho polar_express --steps 30
source $REPO/benchmarks/device/pack.sh
