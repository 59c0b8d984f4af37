#!/usr/bin/env bash
# A small committed H100 trace of the triton orthogonalizer's one-graph optimizer (CUDA-graph
# replays inside the all_banks/orthogonalize phase), like h100_traces_overhead.sh's traces:
#   bash benchmarks/device/h100_trace_triton.sh
source benchmarks/device/setup.sh
export REPO=$PWD WORK=/tmp/work; mkdir -p $WORK/logs; cd $WORK
R="--preset full --quiet --runs-dir runs --data-dir /tmp/data"
run() { name=$1; shift; echo "== $name: golfprof train $R $*"; timeout ${T:-170} golfprof train $R "$@" > logs/$name.log 2>&1; echo "rc=$? $(tail -1 logs/$name.log)"; }
T=170 run trace_triton --variant triton_ortho --steps 8 --tokens-per-step 98304 --profile-steps 4,1,3
golfprof analyze runs/*-triton_ortho > logs/analyze.log 2>&1; echo "analyze rc=$?"; head -60 logs/analyze.log
source $REPO/benchmarks/device/pack.sh
