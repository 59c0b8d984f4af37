#!/usr/bin/env bash
# Issue 7 on 2xH200: the full-preset ablation matrix, 3 repeats, resumable across device calls.
# Carry `benchmarks/device/state` back in (it holds the matrix folder) and rerun until it completes.
source benchmarks/device/setup.sh
export REPO=$PWD; mkdir -p $REPO/benchmarks/device/state; cd $REPO/benchmarks/device/state
timeout ${T:-560} golfprof ablate --preset full --nproc 2 --steps 20 --repeats 3 --baseline explicit_banks \
  --variant explicit_banks --variant ddp_banks --variant explicit_unbanked --variant polar_express \
  --variant no_bf16_casts --variant eager --profile-steps off --matrix-dir matrix --data-dir /tmp/data 2>&1 | tail -40
tar czf $OUT/matrix.tar.gz matrix; ls -la $OUT
