"""Which variants one process cannot tell apart, and the note `golfprof ablate` prints about them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from golfprof.ablations import variants as V


def _toggles(*names: str) -> dict:
    return {n: V.resolve(n) for n in names}


def test_variants_that_differ_only_in_communication_are_twins_with_one_process():
    pairs = V.same_code_with_one_process(_toggles(
        "explicit_banks", "ddp_banks", "small_first", "bucketed_replicated", "packed", "polar_express",
        "explicit_unbanked", "ddp_unbanked", "vectorized_unbanked", "eager"))
    assert sorted(pairs) == sorted([
        ("ddp_banks", "explicit_banks"), ("small_first", "explicit_banks"),
        ("bucketed_replicated", "explicit_banks"), ("packed", "explicit_banks"),
        ("ddp_unbanked", "explicit_unbanked"), ("vectorized_unbanked", "explicit_unbanked")])


def test_no_twins_among_compute_changes():
    assert V.same_code_with_one_process(_toggles("explicit_banks", "polar_express", "no_bf16_casts", "eager",
                                                 "explicit_unbanked", "triton_ortho")) == []


def test_one_process_ablate_says_the_comparison_is_a_to_a(tmp_path: Path):
    r = subprocess.run([sys.executable, "-m", "golfprof.cli", "ablate", "--variant", "explicit_banks",
                        "--variant", "ddp_banks", "--nproc", "1", "--preset", "tiny", "--steps", "3",
                        "--warmup-steps", "1", "--bf16", "none", "--profile-steps", "off", "--quiet",
                        "--runs-dir", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "note: with one process nothing is communicated: ddp_banks runs the same code as explicit_banks" \
        in r.stderr


def test_readme_variant_table_is_the_generated_one():
    """`golfprof variants --markdown` and the README's table are one source: regenerate the README's on change."""
    from pathlib import Path

    from golfprof.ablations.variants import markdown_table

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    begin, end = "<!-- variants:begin -->\n", "\n<!-- variants:end -->"
    assert begin in readme and end in readme
    block = readme[readme.index(begin) + len(begin):readme.index(end)].strip()
    assert block == markdown_table()


# ---- --record-faithful ------------------------------------------------------------------------------------

def _faithful_spec(tmp_path: Path, variant: str, **values):
    from golfprof.ablations.spec import build_spec, code_defaults

    return build_spec(**{**code_defaults(), "variant": variant, "preset": "tiny", "device": "cpu",
                         "runs_dir": tmp_path / "runs", "data_dir": tmp_path / "data", "record_faithful": True,
                         **values})


def test_record_faithful_sets_the_records_choices_on_any_variant(tmp_path: Path, monkeypatch):
    from golfprof.model import attention

    monkeypatch.setattr(attention, "fa3_installed", lambda: False)
    for variant in ("explicit_banks", "ddp_banks", "explicit_unbanked"):
        t = _faithful_spec(tmp_path, variant).run.toggles
        assert (t.attention, t.loader, t.ortho_kernel, t.ema) == ("cudnn", "record", "torch", "loop")
        assert (t.comm, t.layout) == (V.resolve(variant).comm, V.resolve(variant).layout)  # the variant kept
    monkeypatch.setattr(attention, "fa3_installed", lambda: True)
    assert V.record_faithful("explicit_banks", {"steps": None})["attention"] == "fa3"


def test_record_faithful_is_off_by_default(tmp_path: Path):
    t = _faithful_spec(tmp_path, "explicit_banks", record_faithful=False).run.toggles
    assert (t.attention, t.loader, t.ema) == ("sdpa", "prefetch", "foreach")


def test_record_faithful_refuses_what_would_undo_a_request(tmp_path: Path):
    import pytest

    from golfprof.errors import ConfigError

    with pytest.raises(ConfigError, match="variant attn_flash also sets: leave one out"):
        _faithful_spec(tmp_path, "attn_flash")
    with pytest.raises(ConfigError, match="sets ortho_kernel, which variant triton_ortho"):
        _faithful_spec(tmp_path, "triton_ortho")
    with pytest.raises(ConfigError, match="sets loader, which the command line also sets"):
        _faithful_spec(tmp_path, "explicit_banks", loader="prefetch")
    with pytest.raises(ConfigError, match="sets ema, which the command line also sets"):
        _faithful_spec(tmp_path, "explicit_banks", ema="foreach")


def test_record_faithful_clash_is_one_error_line_before_any_run(tmp_path: Path):
    r = subprocess.run([sys.executable, "-m", "golfprof.cli", "ablate", "--variant", "explicit_banks",
                        "--variant", "record_loader", "--record-faithful", "--preset", "tiny",
                        "--runs-dir", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "error: --record-faithful sets loader, which variant record_loader also sets: leave one out"]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
