#!/usr/bin/env bash
# Every 2xH200 figure the open issues ask for, in priority order, resumable across device calls
# (device kind nvidia-h200-x2; each call stops itself before BUDGET seconds and packs its state):
#   run:   bash benchmarks/device/h200x2_campaign.sh        carry: .whl benchmarks/device/state
#   then:  mkdir -p benchmarks/device/state && tar xzf <files_at>/state.tar.gz -C benchmarks/device/state
#   and run it again until it prints "campaign complete" (a finished stage is skipped; a matrix whose
#   runs failed is retried once by the next call, its failures named in <matrix>/comparison.json).
# Stages (state/<stage>.done marks each):
#   traces  #5/#10: small two-rank profiled runs of explicit_banks and ddp_banks (for tests/data),
#           `golfprof analyze --json` of each and `golfprof diff` between them
#   matrix  #7 (and #3's banked/unbanked explicit vs ddp figures): the full-preset matrix,
#           6 variants x 3 repeats, interleaved, resumable run by run
#   extra   #3/#11: ddp_unbanked, packed and vectorized_unbanked against explicit_banks, 1 run each
# The dashboard and the committed tables are made afterwards on the CPU from the returned state.
# Local dry run of the logic (CPU, gloo):  LOCAL=1 PRESET=tiny STEPS=4 TRACE_TOKENS=1536 REPEATS=2 \
#   OUT=/tmp/out bash benchmarks/device/h200x2_campaign.sh
# One-GPU stand-in while 2xH200 is withheld (kind nvidia-h200, carry .whl benchmarks/device/state_h200x1):
#   NPROC=1 STAGES="matrix extra" STEPS=16 STATE=$PWD/benchmarks/device/state_h200x1 bash benchmarks/device/h200x2_campaign.sh
set -u
export REPO=$PWD START=$SECONDS
if [ -z "${LOCAL:-}" ]; then source benchmarks/device/setup.sh; fi
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
STATE=${STATE:-$REPO/benchmarks/device/state}; mkdir -p "$STATE/logs" "${OUT:?set OUT}"
cd "$STATE"  # not the repo root: its golfprof/ folder would shadow the installed wheel
PRESET=${PRESET:-full} STEPS=${STEPS:-20} REPEATS=${REPEATS:-3} BUDGET=${BUDGET:-540}
TRACE_TOKENS=${TRACE_TOKENS:-196608} DATA=${DATA:-/tmp/data} NPROC=${NPROC:-2} STAGES=${STAGES:-traces matrix extra}
COMMON="--preset $PRESET --nproc $NPROC --data-dir $DATA --quiet"
for s in traces matrix extra; do case " $STAGES " in *" $s "*) ;; *) touch "$STATE/$s.done";; esac; done  # stages left out
left() { local l=$(( BUDGET - (SECONDS - START) )); [ $l -lt 1 ] && l=1; echo $l; }
stage_done() { [ -f "$STATE/$1.done" ]; }
log() { echo "[$(( SECONDS - START ))s] $*"; }

if ! stage_done traces && [ "$(left)" -gt 120 ]; then
  for v in explicit_banks ddp_banks; do
    ls -d traces/*-"$v" > /dev/null 2>&1 && continue
    log "traces: $v"
    timeout --kill-after=20 "$(left)" golfprof ablate $COMMON --variant "$v" --steps 8 --tokens-per-step "$TRACE_TOKENS" \
      --profile-steps 4,1,3 --runs-dir traces > "logs/trace_$v.log" 2>&1 || { log "rc=$? (logs/trace_$v.log)"; tail -3 "logs/trace_$v.log"; }
  done
  a=$(ls -d traces/*-explicit_banks 2>/dev/null | head -1) b=$(ls -d traces/*-ddp_banks 2>/dev/null | head -1)
  if [ -n "$a" ] && [ -n "$b" ]; then
    golfprof analyze "$a" --json > analyze_explicit_banks.json && golfprof analyze "$b" --json > analyze_ddp_banks.json \
      && golfprof diff "$a" "$b" --json > diff_explicit_vs_ddp.json && golfprof diff "$a" "$b" > diff_explicit_vs_ddp.txt \
      && touch traces.done && log "traces done"
  fi
fi

matrix() {  # name, repeats, variants; resumable: a killed call loses at most the run in flight
  local name=$1 repeats=$2; shift 2
  stage_done "$name" && return 0
  [ "$(left)" -gt 90 ] || return 0
  log "$name: $repeats x $*"
  local args=(); for v in "$@"; do args+=(--variant "$v"); done
  timeout --kill-after=20 "$(left)" golfprof ablate $COMMON --steps "$STEPS" --repeats "$repeats" "${args[@]}" \
    --baseline explicit_banks --profile-steps off --runs-dir "$name-runs" --matrix-dir "$name" >> "logs/$name.log" 2>&1
  local rc=$?
  log "$name rc=$rc"; tail -4 "logs/$name.log"
  [ $rc -eq 0 ] && [ -f "$name/comparison.json" ] || return 0
  echo x >> "$name.attempts"  # failed runs are retried by the next call, once
  local failed; failed=$(python3 -c "import json; print(len(json.load(open('$name/comparison.json'))['failed']))")
  if [ "$failed" = 0 ] || [ "$(wc -l < "$name.attempts")" -ge 2 ]; then touch "$name.done"; else log "$name: $failed failed runs, retried next call"; fi
}
matrix matrix "$REPEATS" explicit_banks ddp_banks explicit_unbanked polar_express no_bf16_casts eager
matrix extra 1 explicit_banks ddp_unbanked packed vectorized_unbanked

if stage_done traces && stage_done matrix && stage_done extra; then log "campaign complete"; else log "campaign incomplete: run again"; fi
cd "$STATE" && tar czf "$OUT/state.tar.gz" --exclude='*.tmp' . && ls -la "$OUT"
