#!/usr/bin/env bash
# Issue 27, the later records' systems changes as toggles, on one H200 (device kind nvidia-h200), from the repo root:
#   here, once:  rm -rf .whl && python -m pip wheel -q --no-deps --no-build-isolation -w .whl .   (golfprof's wheel)
#   run:         bash benchmarks/device/h200_kernels.sh        carry: .whl        (timeout_s 600)
# Stages, in order, each skipped once done (its marker in $STATE), the whole call stopping itself before
# BUDGET seconds (default 530; a stage starts only with enough left):
#   check   which kernels the toggles get on this GPU (model/kernel_choice.py; a fallback here would make the
#           matrix compare the reference with itself) -> logs/check.log
#   tests   the CUDA tests of the fused MLP, the fused cross-entropy and the FP8 projections (tests/model/
#           test_mlp_triton.py, test_ce_triton.py, test_fp8.py, -k cuda: full-preset shapes, compiled fullgraph,
#           within the bounds the files state) -> logs/tests.log
#   bench   golfprof bench mlp and golfprof bench ce (full preset shapes: 48 x 2048 rows, d 512, hidden 1536,
#           vocabulary 1024; compiled reference vs fused, forward and forward+backward, CUDA events, median of 20)
#           -> bench_mlp.json, bench_ce.json
#   matrix  golfprof ablate --preset full --nproc 1 over VARIANTS, REPEATS runs each interleaved (A B C ... A B C ...),
#           STEPS steps, unprofiled -> matrix/ (summaries, comparison.json / .csv); stopped by the budget, the runs
#           that finished are compared (matrix/comparison.json) and a later call resumes the rest
# Budget (from bench attention's calls on this kind: setup ~12 s, one full-preset run ~90 s with compile, 12 steps
# and evaluation; repeats reuse Inductor's cache): the first call does check, tests, bench and 2 to 4 runs;
# the 12 runs of the default matrix need two more calls, each resuming from the state the last one returned:
#   echo /benchmarks/device/state_kernels/ >> .git/info/exclude     (once: carried, never committed)
#   mkdir -p benchmarks/device/state_kernels && tar xzf <files_at>/results.tar.gz -C benchmarks/device/state_kernels
#   STATE=$PWD/benchmarks/device/state_kernels STAGES=matrix bash benchmarks/device/h200_kernels.sh
#                                                               carry: .whl benchmarks/device/state_kernels
# What comes back (at most 6 files): $OUT/results.tar.gz (all of $STATE: logs, bench JSON, the matrix runs),
# and for reading at once bench_mlp.json, bench_ce.json, comparison.json, summary.txt (the logs' tails).
# Local dry run of the logic (CPU: the CUDA tests skip, bench is a smoke run, kernels fall back):
#   LOCAL=1 PRESET=tiny STEPS=3 REPEATS=1 VARIANTS="explicit_banks triton_mlp" OUT=/tmp/out \
#     bash benchmarks/device/h200_kernels.sh
set -u
export REPO=$PWD START=$SECONDS PYTHONUNBUFFERED=1
if [ -z "${LOCAL:-}" ]; then source benchmarks/device/setup.sh; fi
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
STATE=${STATE:-/tmp/kernels_state}; mkdir -p "$STATE/logs" "${OUT:?set OUT}"
PRESET=${PRESET:-full} STEPS=${STEPS:-12} REPEATS=${REPEATS:-2} BUDGET=${BUDGET:-530} DATA=${DATA:-/tmp/data}
VARIANTS=${VARIANTS:-explicit_banks triton_mlp triton_ce fp8_mlp fp8_mlp_head later_records}
STAGES=${STAGES:-check tests bench matrix} BASELINE=${BASELINE:-explicit_banks}
DEVICE_ARGS=(); if [ -n "${LOCAL:-}" ]; then DEVICE_ARGS=(--device cpu); fi
left() { local l=$(( BUDGET - (SECONDS - START) )); [ $l -lt 1 ] && l=1; echo $l; }
cap() { local l; l=$(left); echo $(( l < $1 ? l : $1 )); }
log() { echo "[$(( SECONDS - START ))s] $*" | tee -a "$STATE/logs/script.log"; }
want() { case " $STAGES " in *" $1 "*) [ ! -f "$STATE/$1.done" ];; *) false;; esac; }
rm -rf "$STATE/tests" && cp -r "$REPO/tests" "$STATE/tests"  # the tests, run from outside the repo root
cd "$STATE"  # not the repo root: its golfprof/ folder would shadow the installed wheel
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
  torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')" | tee -a logs/script.log
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,temperature.gpu --format=csv 2>/dev/null \
  | tee -a logs/script.log

if want check; then
  log "check: the kernels each toggle gets here"
  python3 - > logs/check.log 2>&1 <<'PY'
import warnings
import torch
from golfprof.model.config import Toggles
from golfprof.model.kernel_choice import resolve
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    used = resolve(Toggles(mlp_kernel="triton_fused", ce_kernel="triton_fused", fp8="mlp_head"), device)
print("kernels used:", used)
for w in caught:
    print("fallback:", w.message)
raise SystemExit(1 if caught else 0)
PY
  rc=$?; log "check rc=$rc"; cat logs/check.log
  [ $rc -eq 0 ] && touch check.done
fi

if want tests && [ "$(left)" -gt 60 ]; then
  log "tests"
  timeout --kill-after=10 "$(cap 200)" python3 -m pytest -q -p no:cacheprovider -rs tests/model/test_mlp_triton.py \
    tests/model/test_ce_triton.py tests/model/test_fp8.py -k cuda > logs/tests.log 2>&1
  rc=$?; log "tests rc=$rc"; tail -8 logs/tests.log
  [ $rc -eq 0 ] && touch tests.done
fi

if want bench && [ "$(left)" -gt 60 ]; then
  ok=0
  for kind in mlp ce; do
    log "bench: golfprof bench $kind"
    timeout --kill-after=10 "$(cap 150)" golfprof bench "$kind" "${DEVICE_ARGS[@]}" --reps 20 --warmup 5 \
      --out "bench_$kind.json" > "logs/bench_$kind.log" 2>&1
    rc=$?; log "bench $kind rc=$rc"; tail -8 "logs/bench_$kind.log"; [ $rc -eq 0 ] || ok=1
  done
  [ $ok -eq 0 ] && touch bench.done
fi

if want matrix && [ "$(left)" -gt 90 ]; then
  args=(); for v in $VARIANTS; do args+=(--variant "$v"); done
  log "matrix: $REPEATS x $VARIANTS, $STEPS steps"
  timeout --kill-after=20 "$(left)" golfprof ablate --preset "$PRESET" --nproc 1 "${DEVICE_ARGS[@]}" "${args[@]}" \
    --repeats "$REPEATS" --steps "$STEPS" --baseline "$BASELINE" --profile-steps off --quiet \
    --data-dir "$DATA" --runs-dir matrix-runs --matrix-dir matrix >> logs/matrix.log 2>&1
  rc=$?; log "matrix rc=$rc"; tail -30 logs/matrix.log
  if [ $rc -eq 0 ]; then touch matrix.done; else
    # stopped by the budget: the comparison of the runs that finished (the next call resumes the rest)
    python3 - <<'PY' >> logs/matrix.log 2>&1 && log "partial comparison written"
import json
from pathlib import Path
from golfprof.ablations.matrix import load_state
from golfprof.results.comparison import comparison
state = load_state(Path("matrix"))
state["runs"] = {k: v for k, v in state["runs"].items() if v.get("status") == "ok"}
Path("matrix/comparison.json").write_text(json.dumps(comparison(Path("matrix"), state), indent=2) + "\n")
PY
  fi
  python3 - <<'PY' | tee -a logs/script.log
import json
from pathlib import Path
for s in sorted(Path("matrix").glob("*/summary.json")):
    d = json.loads(s.read_text())
    print(f"{s.parent.name:20} ms/step={d.get('ms_per_step')} fwd+bwd={d.get('forward_backward_ms')} "
          f"peak_mb={d.get('peak_memory_mb')} loss={d.get('final_loss')}")
PY
fi

log "stages done: $(ls *.done 2>/dev/null | tr '\n' ' ')"
cp bench_mlp.json bench_ce.json "$OUT/" 2>/dev/null; cp matrix/comparison.json "$OUT/" 2>/dev/null
{ for f in logs/script.log logs/check.log logs/tests.log logs/bench_mlp.log logs/bench_ce.log; do
    echo "== $f"; tail -40 "$f" 2>/dev/null; done; } > "$OUT/summary.txt"
tar czf "$OUT/results.tar.gz" --exclude='*.tmp' --exclude=./tests --exclude='__pycache__' \
  --exclude='*.pt.trace.json.gz' .
ls -la "$OUT"
