#!/usr/bin/env bash
# Issue 18, the attention kernel as an ablation, on one H200 (device kind nvidia-h200), from the repo root:
#   here, once:  rm -rf .whl && python -m pip wheel -q --no-deps --no-build-isolation -w .whl .   (golfprof's wheel)
#   run:         bash benchmarks/device/h200_attention.sh        carry: .whl        (timeout_s 600)
# Stages, in order, each skipped once done (its marker in $STATE), the whole call stopping itself before
# BUDGET seconds (default 540; a stage starts only with enough left):
#   tests   the CUDA tests of tests/model/test_attention.py: each backend's output and q/k/v gradients vs the
#           fp32 math backend within the stated bf16 tolerance, and the kernel names of a profiled compiled
#           (fullgraph) forward+backward of a 2-layer GPT per backend -> logs/tests.log, kernels/kernels_<b>.json
#   bench   golfprof bench attention --preset full (every backend at 48 x 2048 tokens, 8/4 heads of 64, bf16,
#           forward and forward+backward, CUDA events, backends interleaved, median of 20) -> attention_full.json
#   matrix  golfprof ablate --preset full --nproc 1 over VARIANTS, REPEATS runs each interleaved (A B C D A B C D),
#           STEPS steps, unprofiled -> matrix/ (summaries with attention_used, comparison.json / .csv); stopped by
#           the budget, the runs that finished are compared (matrix/comparison.json) and a later call resumes
#   traces  (not in the default STAGES) two small profiled runs, TRACE_VARIANTS, one micro-batch a step, and
#           `golfprof diff` between them (its kernel-family table: the attention ms that moved) -> diff_*.json/txt
# Budget, from a first call (2026-12-01): setup ~12 s, tests ~75 s, bench ~20 s, one full-preset run ~90 s
# (compile, STEPS steps, evaluation; repeats of a variant reuse Inductor's cache). So one call completes tests,
# bench and the first repeat of the four variants, with time for about one run of the second: REPEATS=2
# needs a second call, which resumes the matrix run by run (and can add the traces):
#   mkdir -p benchmarks/device/state_attention && tar xzf <files_at>/results.tar.gz -C benchmarks/device/state_attention
#   STATE=$PWD/benchmarks/device/state_attention STAGES="matrix traces" bash benchmarks/device/h200_attention.sh
#                                                               carry: .whl benchmarks/device/state_attention
# What comes back: $OUT/results.tar.gz (all of $STATE but trace files: logs, kernels, the bench JSON, the
# matrix runs), traces.tar.gz (trace files, when the traces stage ran), and for reading at once
# attention_full.json, comparison.json, diff_*.txt and the logs' tails in summary.txt.
# Local dry run of the logic (CPU: the CUDA tests skip, bench is a tiny smoke run):
#   LOCAL=1 PRESET=tiny STEPS=4 TRACE_TOKENS=256 STAGES="tests bench matrix traces" OUT=/tmp/out \
#     BENCH="python -m golfprof.bench.attention" bash benchmarks/device/h200_attention.sh
set -u
export REPO=$PWD START=$SECONDS PYTHONUNBUFFERED=1
if [ -z "${LOCAL:-}" ]; then source benchmarks/device/setup.sh; fi
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
STATE=${STATE:-/tmp/attention_state}; mkdir -p "$STATE/logs" "$STATE/kernels" "${OUT:?set OUT}"
PRESET=${PRESET:-full} STEPS=${STEPS:-12} REPEATS=${REPEATS:-2} BUDGET=${BUDGET:-540} DATA=${DATA:-/tmp/data}
VARIANTS=${VARIANTS:-explicit_banks attn_flash attn_cudnn attn_flex} STAGES=${STAGES:-tests bench matrix}
BASELINE=${BASELINE:-explicit_banks} TRACE_VARIANTS=${TRACE_VARIANTS:-explicit_banks attn_flex}
TRACE_TOKENS=${TRACE_TOKENS:-98304}  # one micro-batch of the full preset (48 x 2048) per step
BENCH=${BENCH:-golfprof bench attention}  # `python3 -m golfprof.bench.attention` is the same command
DEVICE_ARGS=(); if [ -n "${LOCAL:-}" ]; then DEVICE_ARGS=(--device cpu); fi
left() { local l=$(( BUDGET - (SECONDS - START) )); [ $l -lt 1 ] && l=1; echo $l; }
log() { echo "[$(( SECONDS - START ))s] $*" | tee -a "$STATE/logs/script.log"; }
want() { case " $STAGES " in *" $1 "*) [ ! -f "$STATE/$1.done" ];; *) false;; esac; }
rm -rf "$STATE/tests" && cp -r "$REPO/tests" "$STATE/tests"  # the tests, run from outside the repo root
cd "$STATE"  # not the repo root: its golfprof/ folder would shadow the installed wheel
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn',
  torch.backends.cudnn.version(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')" \
  | tee -a logs/script.log
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,temperature.gpu --format=csv 2>/dev/null | tee -a logs/script.log

if want tests && [ "$(left)" -gt 60 ]; then
  log "tests"
  GOLFPROF_TEST_OUT=$STATE/kernels timeout --kill-after=10 "$(( $(left) < 200 ? $(left) : 200 ))" \
    python3 -m pytest -q -p no:cacheprovider -rs tests/model/test_attention.py -k cuda > logs/tests.log 2>&1
  rc=$?; log "tests rc=$rc"; tail -5 logs/tests.log
  [ $rc -eq 0 ] && touch tests.done
fi

if want bench && [ "$(left)" -gt 60 ]; then
  log "bench: $BENCH --preset $PRESET"
  timeout --kill-after=10 "$(( $(left) < 120 ? $(left) : 120 ))" $BENCH --preset "$PRESET" "${DEVICE_ARGS[@]}" \
    --reps 20 --warmup 5 --out "attention_$PRESET.json" > logs/bench.log 2>&1
  rc=$?; log "bench rc=$rc"; cat logs/bench.log | tail -12
  [ $rc -eq 0 ] && touch bench.done
fi

if want matrix && [ "$(left)" -gt 90 ]; then
  args=(); for v in $VARIANTS; do args+=(--variant "$v"); done
  log "matrix: $REPEATS x $VARIANTS, $STEPS steps"
  timeout --kill-after=20 "$(left)" golfprof ablate --preset "$PRESET" --nproc 1 "${DEVICE_ARGS[@]}" "${args[@]}" \
    --repeats "$REPEATS" --steps "$STEPS" --baseline "$BASELINE" --profile-steps off --quiet \
    --data-dir "$DATA" --runs-dir matrix-runs --matrix-dir matrix >> logs/matrix.log 2>&1
  rc=$?; log "matrix rc=$rc"; tail -25 logs/matrix.log
  if [ $rc -eq 0 ]; then touch matrix.done; else
    # stopped by the budget: the comparison of the runs that finished (the next call resumes the rest)
    python3 - <<'EOF' >> logs/matrix.log 2>&1 && log "partial comparison written"
import json
from pathlib import Path
from golfprof.ablations.matrix import load_state
from golfprof.results.comparison import comparison
state = load_state(Path("matrix"))
state["runs"] = {k: v for k, v in state["runs"].items() if v.get("status") == "ok"}
Path("matrix/comparison.json").write_text(json.dumps(comparison(Path("matrix"), state), indent=2) + "\n")
EOF
  fi
  python3 - <<'EOF' | tee -a logs/script.log
import json
from pathlib import Path
for s in sorted(Path("matrix").glob("*/summary.json")):
    d = json.loads(s.read_text())
    print(f"{s.parent.name:20} attention_used={d.get('attention_used')} ms/step={d.get('ms_per_step')} "
          f"fwd+bwd={d.get('forward_backward_ms')} loss={d.get('final_loss')}")
EOF
fi

if want traces && [ "$(left)" -gt 150 ]; then
  # small profiled runs (one micro-batch a step: the same compiled graph as the matrix's, so Inductor's cache
  # serves it) and `golfprof diff` between them: the kernel families show the attention ms that moved
  for v in $TRACE_VARIANTS; do
    ls -d traces/*-"$v" > /dev/null 2>&1 && continue
    log "traces: $v"
    timeout --kill-after=20 "$(left)" golfprof train --preset "$PRESET" "${DEVICE_ARGS[@]}" --variant "$v" --steps 6 \
      --tokens-per-step "$TRACE_TOKENS" --profile-steps 3,1,2 --runs-dir traces --data-dir "$DATA" --quiet \
      > "logs/trace_$v.log" 2>&1 || { log "trace $v rc=$?"; tail -3 "logs/trace_$v.log"; }
  done
  set -- $TRACE_VARIANTS
  a=$(ls -d traces/*-"$1" 2>/dev/null | head -1) b=$(ls -d traces/*-"${2:-}" 2>/dev/null | head -1)
  if [ -n "$a" ] && [ -n "$b" ] && golfprof diff "$a" "$b" --json > "diff_$1_vs_$2.json" \
      && golfprof diff "$a" "$b" > "diff_$1_vs_$2.txt"; then touch traces.done; log "traces done"; fi
fi

log "stages done: $(ls *.done 2>/dev/null | tr '\n' ' ')"
cp "attention_$PRESET.json" "$OUT/" 2>/dev/null; cp matrix/comparison.json "$OUT/" 2>/dev/null
cp diff_*.txt "$OUT/" 2>/dev/null
{ for f in logs/script.log logs/tests.log logs/bench.log; do echo "== $f"; tail -40 "$f" 2>/dev/null; done; } > "$OUT/summary.txt"
tar czf "$OUT/results.tar.gz" --exclude='*.tmp' --exclude=./tests --exclude='__pycache__' --exclude='*.pt.trace.json.gz' .
ls traces/*/trace/*.pt.trace.json.gz > /dev/null 2>&1 && tar czf "$OUT/traces.tar.gz" traces  # over 16 MiB: not returned
ls -la "$OUT"
