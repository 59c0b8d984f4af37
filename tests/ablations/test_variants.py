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
