#!/usr/bin/env bash
# Issue 4 on one H100: phase-mark overhead, interleaved in one process (full preset, compiled).
source benchmarks/device/setup.sh
export REPO=$PWD; cd /tmp
golfprof bench overhead --preset full --pairs 20 --data-dir /tmp/data --out $OUT/phase_overhead_h100.json 2>&1 | grep -v USDT
