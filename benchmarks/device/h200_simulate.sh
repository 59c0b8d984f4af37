#!/usr/bin/env bash
# Issue 20, simulated worlds, on one H200 (device kind nvidia-h200), from the repo root:
#   pip wheel --no-deps --no-build-isolation -w .whl .        (here, once: golfprof's own wheel)
#   run:  bash benchmarks/device/h200_simulate.sh              carry: .whl
# Stages, in order, each skipped once done (its marker in $STATE), the whole call stopping itself before
# BUDGET seconds (default 540):
#   bench       golfprof bench comm --nproc 1 (NCCL, the world present: one GPU) -> comm_h200_w1.json
#   <variant>   golfprof ablate --preset full --variant V --simulate-world 8 --simulate-rank $SIM_RANK
#               --comm-model h200, one variant per stage, for every V in VARIANTS -> runs/, logs/<V>.log;
#               each run directory holds simulated/predicted.json and simulated/trace/rank<R>.pt.trace.json.gz
#   compare     the predicted comparison table over every finished variant -> compare.txt
# What comes back: $OUT/results.tar.gz (all of $STATE but the synthetic data) and, beside it, compare.txt,
# comm_h200_w1.json and the logs' tail in $OUT/summary.txt.
# Budget: a full-preset simulated role costs a compile (60-90 s the first time, less from the cache after)
# plus STEPS steps; `all` runs each distinct role (explicit_banks at world 8: ranks 0, 5, 6, 7). With the
# default SIM_RANK=7 (the last rank: it owns the padding) one call fits the bench and about 3-4 variants; the
# stages resume: unpack results.tar.gz into benchmarks/device/state_simulate and run again with carry:
# .whl benchmarks/device/state_simulate and STATE=$PWD/benchmarks/device/state_simulate.
# Local dry run of the logic (CPU, tiny preset, gloo bench):
#   LOCAL=1 PRESET=tiny STEPS=4 OUT=/tmp/out bash benchmarks/device/h200_simulate.sh
set -u
export REPO=$PWD START=$SECONDS PYTHONUNBUFFERED=1
if [ -z "${LOCAL:-}" ]; then source benchmarks/device/setup.sh; fi
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
STATE=${STATE:-/tmp/simulate_state}; mkdir -p "$STATE/logs" "${OUT:?set OUT}"
PRESET=${PRESET:-full} STEPS=${STEPS:-8} BUDGET=${BUDGET:-540} DATA=${DATA:-/tmp/data} WORLD=${WORLD:-8}
SIM_RANK=${SIM_RANK:-7} TABLE=${TABLE:-h200}
VARIANTS=${VARIANTS:-explicit_banks ddp_banks explicit_unbanked packed vectorized_unbanked polar_express}
STAGES=${STAGES:-bench $VARIANTS compare}
DEVICE_ARGS=(); BENCH_HI=(); MICRO=()
if [ -n "${LOCAL:-}" ]; then
  DEVICE_ARGS=(--device cpu); BENCH_HI=(--max-bytes 65536)
  MICRO=(--micro-batch-seqs 3)  # tiny: 24 sequences a step, 3 per rank at world 8
fi
left() { local l=$(( BUDGET - (SECONDS - START) )); [ $l -lt 1 ] && l=1; echo $l; }
log() { echo "[$(( SECONDS - START ))s] $*" | tee -a "$STATE/logs/script.log"; }
want() { case " $STAGES " in *" $1 "*) [ ! -f "$STATE/$1.done" ];; *) false;; esac; }
cd "$STATE"  # not the repo root: its golfprof/ folder would shadow the installed wheel
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
  torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')" | tee -a logs/script.log
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,temperature.gpu --format=csv 2>/dev/null \
  | tee -a logs/script.log

if want bench && [ "$(left)" -gt 60 ]; then
  log "bench: golfprof bench comm --nproc 1"
  timeout --kill-after=10 "$(( $(left) < 120 ? $(left) : 120 ))" golfprof bench comm --nproc 1 "${BENCH_HI[@]}" \
    --out comm_h200_w1.json > logs/bench.log 2>&1
  rc=$?; log "bench rc=$rc"; tail -8 logs/bench.log
  [ $rc -eq 0 ] && touch bench.done
fi

for v in $VARIANTS; do
  want "$v" || continue
  if [ "$(left)" -lt 120 ]; then log "stop: $(left) s left, $v and later variants wait for the next call"; break; fi
  log "simulate: $v at world $WORLD, rank $SIM_RANK, table $TABLE"
  timeout --kill-after=10 "$(( $(left) - 30 ))" golfprof ablate --preset "$PRESET" --variant "$v" \
    --simulate-world "$WORLD" --simulate-rank "$SIM_RANK" --comm-model "$TABLE" --steps "$STEPS" \
    --runs-dir runs --data-dir "$DATA" --quiet "${DEVICE_ARGS[@]}" "${MICRO[@]}" > "logs/$v.log" 2>&1
  rc=$?; log "$v rc=$rc"; tail -6 "logs/$v.log"
  [ $rc -eq 0 ] && touch "$v.done"
done

if want compare; then
  log "compare"
  python3 - "$STATE/runs" > compare.txt <<'EOF'
import json, sys
from pathlib import Path
rows = []
for d in sorted(Path(sys.argv[1]).iterdir()):
    p = d / "simulated" / "predicted.json"
    if p.is_file():
        pr = json.loads(p.read_text())["prediction"]
        rows.append((pr["variant"], pr["measured_ms_per_step_of_the_simulated_rank"], pr["ms_per_step"],
                     pr["optimizer_ms"], pr["comm_ms"], pr["exposed_comm_ms"], pr["comm_comp_overlap_pct"], d.name))
# the records' own 8xH100 figures (../shared/reference/trainer_spec.md: parameter-golf PR #399 seed text; its
# earlier README for Polar Express): ms/step, and the optimizer 19.7 -> 1.3 ms of banking
RECORD = {"explicit_banks": 81.87, "ddp_banks": 88.8, "explicit_unbanked": 85.73, "polar_express": 82.14}
base = next((r[2] for r in rows if r[0] == "explicit_banks"), None)
print(f"{'variant':22} {'measured 1 rank':>15} {'predicted':>10} {'delta':>8} {'record 8xH100':>13} "
      f"{'optim':>8} {'comm':>7} {'exposed':>8} {'overlap%':>8}  run")
f = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
for v, m, p, o, c, e, ov, d in rows:
    print(f"{v:22} {f(m):>15} {f(p):>10} {f(p - base if base is not None and p is not None else None):>8} "
          f"{f(RECORD.get(v)):>13} {f(o):>8} {f(c):>7} {f(e):>8} {f(ov):>8}  {d}")
print("record: explicit_banks 81.87, DDP over banks 88.8 (about +4 ms in #399's words), unbanked 'non-surgery' "
      "85.73, Polar Express 82.14 ms/step; optimizer 19.7 -> 1.3 ms (banking); all on 8xH100 SXM")
EOF
  cat compare.txt | tee -a logs/script.log
fi

{ cat logs/script.log; for f in logs/*.log; do echo "== $f"; tail -4 "$f"; done; } > "$OUT/summary.txt"
cp -f compare.txt comm_h200_w1.json "$OUT/" 2>/dev/null
# What comes back is at most 8 files of 16 MiB: everything but the traces in results.tar.gz (predictions,
# recorded collectives, timers: `golfprof.traces.predict.predict(RUN, TABLE)` redoes a prediction from a run
# directory plus its trace/), the played ranks' traces (measured fake and predicted) split over two tarballs.
tar czf "$OUT/results.tar.gz" --exclude=./data --exclude='*.pt.trace.json.gz' -C "$STATE" .
n=0; for v in $VARIANTS; do
  n=$((n + 1)); part=$(( n <= 3 ? 1 : 2 ))
  find runs -maxdepth 1 -name "*-$v" -type d | while read -r d; do
    find "$d" -name "rank*.pt.trace.json.gz" | sort | awk -F/ '!seen[$0]++' | grep -E "trace/rank(0|$SIM_RANK)\.pt" || true
  done >> "traces_$part.list"
done
for part in 1 2; do
  [ -s "traces_$part.list" ] && tar czf "$OUT/traces_$part.tar.gz" -T "traces_$part.list" && rm -f "traces_$part.list"
done
for f in "$OUT"/*.tar.gz; do
  if [ "$(stat -c %s "$f")" -gt 16000000 ]; then echo "left out (over 16 MB): $f" | tee -a "$OUT/summary.txt"; rm -f "$f"; fi
done
ls -la "$OUT"
