#!/usr/bin/env bash
# Issues 25, 26 and 27 on one H200 (kind nvidia-h200), from the repo root, over back-to-back calls on one warm
# machine (its /tmp, $CAMP, persists between calls while it stays warm; a fresh machine redoes what is missing).
# carry: .whl benchmarks/device/record_scripts. Every run, the record's script's and golfprof's alike, with
# inductor's mix-order reduction off (TORCHINDUCTOR_MIX_ORDER_REDUCTION=0, recorded in each env.json): with it on,
# torch 2.11 over-fuses an RMSNorm backward with the per-channel sums of resid_mix and the scales into one kernel
# that spills (29.6 ms a step instead of 1.8 at the full preset), and which compile gets it varies between
# compiles of one program (the script had it in one call and not in the next); off, both sides compile alike.
# MIX=1 keeps the default. Stages (STAGES; each skipped once its marker is in $CAMP; BUDGET seconds a call):
#   round1, round2   world 1, full preset: the record's script (golfprof profile, FA3 replaced by the cuDNN shim)
#                    then each of VARIANTS (golfprof train, SDPA = cuDNN on this GPU), STEPS steps, profiled as
#                    golfprof profiles by default; one inductor cache per side; round 2 interleaves a second pass
#   matrix           the two rounds compared: ratio_to_record_script per variant, ms saved against explicit_banks
#                    with its significance, data phase, window check, GPU state; `golfprof diff` of the record's
#                    script and explicit_banks (kernel families) -> $OUT/matrix.json, diff.txt; and of explicit_banks
#                    and each other variant -> $OUT/diff_<variant>.txt; each run's profiled data phase (CPU ms and
#                    the GPU idle it ended, from golfprof analyze) in matrix.json
#   curves           tiny preset, 200 steps eager (one seed, one data order): the default and each fused or FP8
#                    toggle's loss curve -> $OUT/curves.json
#   predict          world 8, rank 7 played, --record-faithful --record-shapes --target-gpu h100: explicit_banks,
#                    ddp_banks, explicit_unbanked, the record's script, explicit_banks again (A/A); in PREDICT_RUNS,
#                    NAME@noshapes runs NAME without --record-shapes, NAME@rK plays rank K instead
#                    (ddp_round_robin@r0: rank 0 orthogonalizes 9 of the 66 matrices, the most) and
#                    NAME@emaforeach keeps the record's choices but golfprof's fused EMA (the loop's share)
#                    -> $OUT/predict.json (each run's source and target predictions, both rescale rules)
# $OUT also gets runs.tar.gz (every run directory of $CAMP, traces left out), traces.tar.gz (the world-8 runs'
# played-rank traces) and summary.txt.
# Local dry run (CPU; a foreign test script stands in for the record's):
#   LOCAL=1 PRESET=tiny STEPS=3 CURVE_STEPS=5 SCRIPT=tests/foreign_scripts/nanogpt_accum.py OUT=/tmp/out \
#     bash benchmarks/device/h200_campaign.sh
set -u
export REPO=$PWD START=$SECONDS
if [ -z "${LOCAL:-}" ]; then source benchmarks/device/tree_env.sh; fi  # wheels, golfprof from this tree, NCCL
CAMP=${CAMP:-/tmp/camp} BUDGET=${BUDGET:-540} STEPS=${STEPS:-14} PRESET=${PRESET:-full}
CURVE_STEPS=${CURVE_STEPS:-200} MIX=${MIX:-0}
VARIANTS=${VARIANTS:-explicit_banks triton_mlp triton_ce fp8_mlp_head later_records}
CURVE_VARIANTS=${CURVE_VARIANTS:-explicit_banks triton_mlp triton_ce fp8_mlp fp8_mlp_head later_records}
PREDICT_RUNS=${PREDICT_RUNS:-explicit_banks ddp_banks explicit_unbanked script explicit_banks}
STAGES=${STAGES:-round1 round2 matrix curves predict}
SCRIPT=$(realpath "${SCRIPT:-$REPO/benchmarks/device/record_scripts/banking/train_gpt.py}")
[ "$MIX" = 1 ] || export TORCHINDUCTOR_MIX_ORDER_REDUCTION=0
DEV=(); SHIM=(--attention-shim cudnn); TG=(--target-gpu h100)
if [ -n "${LOCAL:-}" ]; then DEV=(--device cpu); SHIM=(); TG=(); fi  # a CPU run has no kernels to rescale
mkdir -p "$CAMP/logs" "${OUT:?set OUT}"
cd /tmp  # not the repo root: its golfprof/ folder would shadow /tmp/gp
GP="python3 -m golfprof.cli"
left() { echo $(( BUDGET - (SECONDS - START) )); }
log() { echo "[$(( SECONDS - START ))s] $*" | tee -a "$CAMP/logs/campaign.log"; }
# --record-faithful's choices as explicit options, golfprof's fused EMA in place of the record's loop
faithful_but_fused_ema() {
  python3 -c 'from golfprof.ablations.variants import record_faithful_choices as c
print(" ".join("--" + k.replace("_", "-") + " " + v for k, v in {**c(), "ema": "foreach"}.items()))'
}
want() { case " $STAGES " in *" $1 "*) [ ! -f "$CAMP/$1.done" ];; *) false;; esac; }
# the record's environment variables, the script's own (record_scripts.md); the synthetic shards made once
ENVS=(ITERATIONS=$STEPS WARMUP_STEPS=2 VAL_LOSS_EVERY=0 TRAIN_LOG_EVERY=1 MAX_WALLCLOCK_SECONDS=0 TTT_ENABLED=0
      DATA_PATH=$CAMP/data_banking TOKENIZER_PATH=$CAMP/data_banking/tokenizer.model VOCAB_SIZE=1024 EVAL_STRIDE=2048)
GPENV=(); for e in "${ENVS[@]}"; do GPENV+=(--env "$e"); done
{ nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv,noheader 2>/dev/null
  python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)"
  echo "TORCHINDUCTOR_MIX_ORDER_REDUCTION=${TORCHINDUCTOR_MIX_ORDER_REDUCTION:-default}"; } | tee -a "$CAMP/logs/campaign.log"
[ -f "$CAMP/data_banking/tokenizer.model" ] || $GP data synth --out "$CAMP/data_banking" --vocab 1024 --tokenizer \
  --val-tokens 131072 > /dev/null

# one item of a round: the record's script or a variant; skipped when its run is there, never started late
item() {  # item ROUND NAME
  local dir="$CAMP/w1/r$1" name=$2 rc
  ls "$dir"/*-"$name"/summary.json > /dev/null 2>&1 && return 0
  [ "$(left)" -gt 100 ] || { log "no time left for $name in round $1"; return 1; }
  if [ "$name" = script ]; then
    TORCHINDUCTOR_CACHE_DIR=$CAMP/ic_script timeout 240 $GP profile --runs-dir "$dir" --name script --steps "$STEPS" \
      "${SHIM[@]}" "${GPENV[@]}" "$SCRIPT" > "$CAMP/logs/r$1-script.log" 2>&1
  else
    TORCHINDUCTOR_CACHE_DIR=$CAMP/ic_replica timeout 240 $GP train --preset "$PRESET" --variant "$name" \
      --steps "$STEPS" --runs-dir "$dir" --data-dir "$CAMP/gdata" --quiet "${DEV[@]}" > "$CAMP/logs/r$1-$name.log" 2>&1
  fi
  rc=$?; log "round $1 $name rc=$rc"; grep -E "ms_per_step|window|warning" "$CAMP/logs/r$1-$name.log" | head -4
  return $rc
}
for k in 1 2; do
  if want "round$k"; then
    ok=0; for name in script $VARIANTS; do item "$k" "$name" || ok=1; done
    [ $ok -eq 0 ] && touch "$CAMP/round$k.done"
  fi
done

if want matrix && [ -f "$CAMP/round1.done" ]; then
  A=$(ls -d "$CAMP"/w1/r2/*-script "$CAMP"/w1/r1/*-script 2>/dev/null | head -1)
  B=$(ls -d "$CAMP"/w1/r2/*-explicit_banks "$CAMP"/w1/r1/*-explicit_banks 2>/dev/null | head -1)
  timeout 120 $GP diff "$A" "$B" --kernel-names full --top 25 > "$OUT/diff.txt" 2>&1; log "diff rc=$?"
  timeout 120 $GP diff "$A" "$B" --kernel-names full --top 40 --json > "$CAMP/diff.json" 2>/dev/null
  for v in $VARIANTS; do  # where each toggle's milliseconds go: explicit_banks -> the toggle, kernel families
    [ "$v" = explicit_banks ] && continue
    C=$(ls -d "$CAMP"/w1/r2/*-"$v" "$CAMP"/w1/r1/*-"$v" 2>/dev/null | head -1)
    [ -n "$C" ] && timeout 90 $GP diff "$B" "$C" --kernel-names full --top 15 > "$OUT/diff_$v.txt" 2>&1
  done
  mkdir -p "$CAMP/analyze"  # each run's phase table: the data phase's GPU idle, its cost on the critical path
  for d in "$CAMP"/w1/r*/*-*/; do
    f="$CAMP/analyze/$(basename "$(dirname "$d")")-$(basename "$d").json"
    [ -s "$f" ] || timeout 150 $GP analyze "$d" --json > "$f" 2> /dev/null &
  done
  wait
  timeout 120 python3 - "$CAMP" "$OUT" $VARIANTS <<'PY' 2>&1 | tee "$CAMP/logs/matrix.log"
import json, sys
from pathlib import Path
from golfprof.results.comparison import compare_groups
from golfprof.results.samples import load_run
camp, out, variants = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
groups = {name: sorted(d for d in (camp / "w1").glob(f"r*/*-{name}") if (d / "summary.json").is_file())
          for name in ["script", *variants]}
runs = {}
for name, dirs in groups.items():
    for d in dirs:
        s = json.loads((d / "summary.json").read_text())
        env = json.loads((d / "env.json").read_text()) if (d / "env.json").is_file() else {}
        row = runs[f"{d.parent.name}/{d.name}"] = {
            "group": name, "ms_per_step": s.get("ms_per_step"), "data_ms": (s.get("phase_ms") or {}).get("golfprof/step/data"),
            "phase_ms": s.get("phase_ms"), "window_check": s.get("window_check"), "gpu_state": s.get("gpu_state"),
            "attention_used": s.get("attention_used"), "kernels_used": s.get("kernels_used"),
            "final_loss": s.get("final_loss"), "compiler_env": env.get("compiler_env")}
        a = camp / "analyze" / f"{d.parent.name}-{d.name}.json"
        try:  # the profiled window's data phase: CPU ms and the GPU idle its launches ended, per step
            data = json.loads(a.read_text())["ranks"][0]["phases"]["golfprof/step/data"]
            row["data_phase_window"] = {k: data.get(k) for k in ("cpu_ms", "gpu_idle_ms", "gpu_busy_ms", "copies", "calls")}
        except (OSError, ValueError, KeyError, IndexError):
            pass
        print(name, d.parent.name, s.get("ms_per_step"), "data", row["data_ms"], row.get("data_phase_window"))
samples = {n: [load_run(d) for d in ds] for n, ds in groups.items() if ds}
vs_script = compare_groups(samples, "script", ["ms_per_step"]) if "script" in samples else []
vs_default = compare_groups({n: r for n, r in samples.items() if n != "script"}, "explicit_banks",
                            ["ms_per_step", "forward_backward_ms", "final_loss"]) if "explicit_banks" in samples else []
doc = {"runs": runs, "vs_record_script": vs_script, "vs_explicit_banks": vs_default,
       "diff_script_vs_explicit_banks": json.loads((camp / "diff.json").read_text() or "null")
       if (camp / "diff.json").is_file() and (camp / "diff.json").stat().st_size else None}
(out / "matrix.json").write_text(json.dumps(doc, indent=1, default=str))
script = next((r["value"] for r in vs_script if r["variant"] == "script"), None)
for r in vs_script + vs_default:
    if r.get("metric") == "ms_per_step" and script:
        r["ratio_to_record_script"] = r["value"] / script
    print({k: r.get(k) for k in ("variant", "metric", "runs", "value", "diff_pct", "p_value", "verdict",
                                 "ratio_to_record_script")})
(out / "matrix.json").write_text(json.dumps(doc, indent=1, default=str))
PY
  log "matrix rc=${PIPESTATUS[0]}"; [ -s "$OUT/matrix.json" ] && touch "$CAMP/matrix.done"
fi

if want curves && [ "$(left)" -gt 120 ]; then
  ok=0
  for v in $CURVE_VARIANTS; do
    [ "$(left)" -gt 40 ] || { ok=1; break; }
    ls "$CAMP"/curves/*-"$v"/summary.json > /dev/null 2>&1 && continue  # done in an earlier call
    timeout 120 $GP train --preset tiny --variant "$v" --steps "$CURVE_STEPS" --compile off --profile-steps off \
      --runs-dir "$CAMP/curves" --data-dir "$CAMP/gdata" --quiet "${DEV[@]}" > "$CAMP/logs/curve-$v.log" 2>&1
    rc=$?; log "curve $v rc=$rc"; [ $rc -eq 0 ] || ok=1
  done
  python3 - "$CAMP" "$OUT" <<'PY' 2>&1 | tee "$CAMP/logs/curves.log"
import json, sys
from pathlib import Path
import pandas as pd
camp, out = Path(sys.argv[1]), Path(sys.argv[2])
curves = {}
for d in sorted((camp / "curves").glob("*")):
    s = d / "summary.json"
    if not s.is_file():
        continue
    steps = pd.concat([pd.read_parquet(p) for p in (d / "steps").glob("rank*.parquet")])
    curves[json.loads(s.read_text())["variant"]] = {
        "loss": [round(float(x), 5) for x in steps.sort_values("step")["loss"]],
        "kernels_used": json.loads(s.read_text()).get("kernels_used")}
ref = curves.get("explicit_banks", {}).get("loss")
for v, c in curves.items():
    if ref and v != "explicit_banks" and len(c["loss"]) == len(ref):
        tail = slice(len(ref) * 3 // 4, None)
        d = [a - b for a, b in zip(c["loss"], ref)]
        c["max_abs_delta"] = max(abs(x) for x in d)
        c["tail_mean_delta"] = sum(d[tail]) / len(d[tail])
        print(v, "max |dloss|", round(c["max_abs_delta"], 4), "last-quarter mean dloss", round(c["tail_mean_delta"], 4))
(out / "curves.json").write_text(json.dumps(curves))
PY
  [ $ok -eq 0 ] && touch "$CAMP/curves.done"
fi

if want predict; then
  i=0
  for name in $PREDICT_RUNS; do
    i=$((i + 1)); dir="$CAMP/w8/$i-${name/@/-}"
    [ -d "$dir" ] && ls "$dir"/*/simulated/predicted.json > /dev/null 2>&1 && continue
    [ "$(left)" -gt 90 ] || { log "no time left for world-8 $name"; break; }
    shapes=(--record-shapes); rank=7; tag=${name#*@}; [ "$tag" = "$name" ] && tag=""; name=${name%@*}
    [ "$tag" = noshapes ] && shapes=()  # NAME@noshapes: without --record-shapes
    case "$tag" in r[0-9]) rank=${tag#r};; esac  # NAME@rK: rank K played
    faithful=(--record-faithful)  # NAME@emaforeach: the record's choices but golfprof's fused EMA, as options
    [ "$tag" = emaforeach ] && read -ra faithful < <(faithful_but_fused_ema)
    common=(--simulate-world 8 --simulate-rank $rank --steps 12 "${shapes[@]}" "${TG[@]}" --runs-dir "$dir")
    if [ "$name" = script ]; then
      TORCHINDUCTOR_CACHE_DIR=$CAMP/ic_script timeout 240 $GP profile "${common[@]}" --name script "${SHIM[@]}" \
        "${GPENV[@]}" "$SCRIPT" > "$CAMP/logs/w8-$i-$name.log" 2>&1
    else
      TORCHINDUCTOR_CACHE_DIR=$CAMP/ic_replica timeout 240 $GP ablate --preset "$PRESET" --variant "$name" \
        "${faithful[@]}" "${common[@]}" --data-dir "$CAMP/gdata" --quiet "${DEV[@]}" > "$CAMP/logs/w8-$i-$name.log" 2>&1
    fi
    log "world 8 $i $name rc=$?"; tail -4 "$CAMP/logs/w8-$i-$name.log"
  done
  timeout 200 python3 - "$CAMP" "$OUT" <<'PY' 2>&1 | tee "$CAMP/logs/predict.log"
import json, sys
from pathlib import Path
camp, out = Path(sys.argv[1]), Path(sys.argv[2])
rows = []
for f in sorted((camp / "w8").glob("*/*/simulated/predicted.json")):
    run = f.parents[1]
    p = json.loads(f.read_text())["prediction"]
    s = json.loads((run / "summary.json").read_text())
    t = p.get("target") or {}
    rows.append({"run": f"{run.parent.name}/{run.name}", "variant": s.get("variant"), "toggles": s.get("toggles"),
                 "attention_used": s.get("attention_used"), "played_ranks": p.get("simulated_ranks"),
                 "source_ms": p.get("ms_per_step"),
                 "source_interval_ms": p.get("interval_ms"), "measured_ms_of_played_rank":
                 p.get("measured_ms_per_step_of_the_simulated_rank"), "exposed_comm_ms": p.get("exposed_comm_ms"),
                 "breakdown": p.get("breakdown"), "target_gpu": t.get("gpu"), "predicted_ms": t.get("ms_per_step"),
                 "interval_ms": t.get("interval_ms"), "rule": t.get("rule"), "alternative": t.get("alternative"),
                 "target_breakdown": t.get("breakdown"), "kernels_first_step": t.get("kernels_first_step"),
                 "target_interference": t.get("interference"), "by_phase": t.get("by_phase"),
                 "record_shapes": (json.loads((run / "config.json").read_text()).get("launch") or {})
                 .get("record_shapes"),
                 "anchor": p.get("anchor"), "deflation": p.get("deflation")})
    print(rows[-1]["run"], "source", p.get("ms_per_step"), "target", t.get("ms_per_step"), t.get("interval_ms"),
          "roofline", (t.get("alternative") or {}).get("ms_per_step"))
    for r in t.get("by_phase") or []:
        print("   ", r["phase"], {k: round(v, 3) for k, v in r.items() if k != "phase"})
(out / "predict.json").write_text(json.dumps(rows, indent=1, default=str))
PY
  n=$(ls "$CAMP"/w8/*/*/simulated/predicted.json 2>/dev/null | wc -l)
  [ "$n" -ge "$(echo $PREDICT_RUNS | wc -w)" ] && touch "$CAMP/predict.done"
fi

log "stages done: $(cd "$CAMP" && ls *.done 2>/dev/null | tr '\n' ' ')"
cp "$CAMP/logs/campaign.log" "$OUT/summary.txt"
for f in "$CAMP"/logs/*.log; do echo "== $f"; tail -15 "$f"; done >> "$OUT/summary.txt"
tar czf "$OUT/runs.tar.gz" -C "$CAMP" --exclude='*.pt.trace.json*' --exclude='*.json.gz' --exclude='predicted*.json.gz' \
  --exclude='data_banking' --exclude='gdata' --exclude='ic_*' --exclude='logs' . 2>/dev/null
# the played ranks' own traces (not the predicted ones), so that a prediction can be replayed again off the device
traces=$(cd "$CAMP" && ls -d w8/*/*/trace 2>/dev/null)
[ -n "$traces" ] && tar czf "$OUT/traces.tar.gz" -C "$CAMP" $traces 2>/dev/null
ls -la "$OUT"
