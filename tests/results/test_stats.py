import numpy as np
import pytest

from golfprof.results import stats


def ar1(n: int, seed: int, mean: float = 100.0, phi: float = 0.7, sd: float = 2.0) -> np.ndarray:
    """Autocorrelated step times, like consecutive training steps."""
    rng = np.random.default_rng(seed)
    e = rng.normal(0, sd, n)
    x = np.empty(n)
    x[0] = e[0]
    for i in range(1, n):
        x[i] = phi * x[i - 1] + e[i]
    return mean + x


def test_aa_single_runs_are_not_significant_at_the_nominal_rate():
    flagged = sum(stats.compare([ar1(60, 2 * s)], [ar1(60, 2 * s + 1)]).significant for s in range(200))
    assert flagged <= 20  # 95% intervals: ~5% expected; an i.i.d. bootstrap here flags far more


def test_aa_repeats_are_not_significant_at_the_nominal_rate():
    flagged = 0
    for s in range(200):
        a = [ar1(30, 1000 * s + k) for k in range(3)]
        b = [ar1(30, 1000 * s + 10 + k) for k in range(3)]
        flagged += stats.compare(a, b).significant
    assert flagged <= 20


def test_iid_treatment_of_autocorrelated_steps_would_overstate_certainty():
    # why steps are batched: naive per-step standard errors are too narrow
    x = ar1(400, 7, phi=0.9)
    naive_se = x.std(ddof=1) / np.sqrt(len(x))
    bm = stats.batch_medians(x)
    assert bm.std(ddof=1) / np.sqrt(len(bm)) > 1.5 * naive_se


@pytest.mark.parametrize("repeats", [1, 3])
def test_planted_slowdown_is_flagged_with_its_size(repeats):
    a = [ar1(40, k) for k in range(repeats)]
    b = [ar1(40, 100 + k) + 5.0 for k in range(repeats)]
    d = stats.compare(a, b)
    assert d.significant and d.lo > 0 and d.lo < 5.0 < d.hi + 1.0
    assert 3 < d.rel_pct < 7


def test_estimate_interval_contains_the_center():
    e = stats.estimate([ar1(50, 1), ar1(50, 2)])
    assert e.lo <= e.value <= e.hi and e.method.startswith("t")
    e1 = stats.estimate([ar1(50, 3)])
    assert e1.lo <= e1.value <= e1.hi and "batch" in e1.method
