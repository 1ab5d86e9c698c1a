"""evalkit.stats: bootstrap CIs, the paired test's level and power on synthetic scores, adjustments, rank intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evalkit import stats

SIMULATIONS = 1000
ALPHA = 0.05


def binomial_band(p: float, n: int = SIMULATIONS, z: float = 3.3) -> tuple[float, float]:
    """Where a rejection rate of n independent simulations lands with probability ~0.999 when its rate is p."""
    half = z * math.sqrt(p * (1 - p) / n)
    return p - half, p + half


def old_bootstrap_ci(values, seed, resamples, level=0.95):
    """The report's CI as it was before evalkit.stats owned it (one resample at a time, its own percentile call)."""
    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = [values[rng.integers(0, values.size, values.size)].mean() for _ in range(resamples)]
    tail = 50.0 * (1.0 - level)
    return tuple(float(x) for x in np.percentile(means, [tail, 100.0 - tail]))


# --- one-sample CIs: the numbers the report has always printed ------------------------------------------------

@pytest.mark.unit
@pytest.mark.parametrize("n,seed,resamples", [(300, 0, 1000), (1379, 0, 1000), (57, 7, 250)])
def test_bootstrap_ci_gives_exactly_the_numbers_it_gave_before_it_moved(n, seed, resamples):
    values = np.random.default_rng(n).random(n)
    assert stats.bootstrap_ci(values, seed=seed, resamples=resamples) == old_bootstrap_ci(values, seed, resamples)


@pytest.mark.unit
def test_statistic_ci_draws_the_same_resamples_as_the_mean_ci():
    values = np.random.default_rng(1).random(200)
    by_statistic = stats.statistic_ci(lambda index: values[index].mean(), values.size, seed=3, resamples=300)
    assert by_statistic == pytest.approx(stats.bootstrap_ci(values, seed=3, resamples=300), abs=1e-15)
    with pytest.raises(ValueError, match="no per-item scores"):
        stats.statistic_ci(lambda index: 0.0, 0)


@pytest.mark.unit
def test_bootstrap_ci_is_deterministic_for_a_seed_and_covers_the_mean():
    values = np.random.default_rng(7).beta(2, 3, size=200)
    first = stats.bootstrap_ci(values, seed=3)
    assert stats.bootstrap_ci(values, seed=3) == first
    assert stats.bootstrap_ci(values, seed=4) != first
    assert first[0] < values.mean() < first[1]
    for seed in range(20):
        sample = np.random.default_rng(seed).random(5 + seed * 7)
        low, high = stats.bootstrap_ci(sample, seed=seed)
        assert low <= sample.mean() <= high


@pytest.mark.unit
def test_bootstrap_ci_has_the_textbook_width():
    values = np.random.default_rng(0).normal(0.5, 0.1, size=10_000)
    low, high = stats.bootstrap_ci(values, seed=0, resamples=2000)
    assert high - low == pytest.approx(2 * 1.96 * values.std() / np.sqrt(values.size), rel=0.15)
    assert stats.bootstrap_ci([0.4] * 9) == pytest.approx((0.4, 0.4))
    with pytest.raises(ValueError):
        stats.bootstrap_ci([])


# --- paired comparisons ------------------------------------------------------------------------------------------

@pytest.mark.unit
def test_two_identical_runs_give_delta_zero_and_p_one():
    values = np.random.default_rng(0).random(300)
    for a, b in [(stats.Scores.mean_of(values), stats.Scores.mean_of(values.copy())),  # sign-flip, random flips
                 (stats.Scores.mean_of(values[:10]), stats.Scores.mean_of(values[:10]))]:  # exact enumeration
        result = stats.paired(a, b)
        assert (result.delta, result.ci, result.p_value) == (0.0, (0.0, 0.0), 1.0)
    pearson = lambda column: (lambda index: float(np.corrcoef(values[index], column[index])[0, 1]))  # noqa: E731
    column = values + np.random.default_rng(1).random(300)
    same = stats.paired(stats.Scores(300, statistic=pearson(column)), stats.Scores(300, statistic=pearson(column)),
                        resamples=200)
    assert (same.delta, same.ci, same.p_value) == (0.0, (0.0, 0.0), 1.0)
    assert "CI inverted" in same.method and "sign-flip" in stats.paired(a, b).method


@pytest.mark.unit
def test_paired_items_are_resampled_jointly():
    """A large shared per-item variation cancels in the paired Δ: its CI is far narrower than either score's."""
    rng = np.random.default_rng(2)
    difficulty = rng.random(400)
    a, b = difficulty, difficulty + 0.01 + 0.001 * rng.normal(size=400)
    result = stats.paired(stats.Scores.mean_of(a), stats.Scores.mean_of(b))
    low, high = result.ci
    assert 0 < low < 0.01 < high and high - low < 0.001
    one = stats.bootstrap_ci(a)
    assert one[1] - one[0] > 20 * (high - low)
    assert result.p_value == pytest.approx(1 / 1001)  # no sign flip of 400 positive differences comes close
    with pytest.raises(ValueError, match="same, non-zero number of items"):
        stats.paired(stats.Scores.mean_of(a), stats.Scores.mean_of(b[:-1]))


def simulated_rejections(effect: float, n: int = 100, resamples: int = 400) -> tuple[float, float]:
    """(rejection rate at ALPHA, share of CIs holding the true Δ) over SIMULATIONS paired samples with
    per-item differences ~ N(effect, 1) on top of a shared per-item difficulty."""
    rng = np.random.default_rng(12345 + int(effect * 1000))
    rejected = covered = 0
    for i in range(SIMULATIONS):
        base = rng.random(n)
        result = stats.paired(stats.Scores.mean_of(base), stats.Scores.mean_of(base + rng.normal(effect, 1.0, n)),
                              seed=i, resamples=resamples)
        rejected += result.p_value < ALPHA
        covered += result.ci[0] <= effect <= result.ci[1]
    return rejected / SIMULATIONS, covered / SIMULATIONS


def normal_power(effect: float, n: int) -> float:
    """Two-sided z-test power at ALPHA for a mean shift of `effect` standard deviations with n items."""
    phi = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    shift = effect * math.sqrt(n)
    return phi(shift - 1.959964) + phi(-shift - 1.959964)


@pytest.mark.unit
def test_the_paired_test_keeps_its_level_under_the_null():
    rate, coverage = simulated_rejections(0.0)
    low, high = binomial_band(ALPHA)
    assert low <= rate <= high, rate
    assert binomial_band(0.95)[0] - 0.01 <= coverage <= binomial_band(0.95)[1], coverage  # percentile CI: ~0.94


@pytest.mark.unit
def test_the_paired_test_rejects_a_known_effect_at_the_expected_rate():
    power = normal_power(0.25, 100)  # 0.705
    rate, coverage = simulated_rejections(0.25)
    low, high = binomial_band(power)
    assert low - 0.02 <= rate <= high, (rate, power)  # a permutation test has a hair less power than the z-test
    assert binomial_band(0.95)[0] - 0.01 <= coverage <= binomial_band(0.95)[1], coverage


@pytest.mark.unit
def test_the_bootstrap_p_of_a_recomputed_statistic_keeps_its_level():
    """Pearson correlations over resampled pairs (the STS path: a statistic, not a mean) under the null."""
    rng = np.random.default_rng(9)
    sims, n, rejected = 200, 60, 0
    for i in range(sims):
        gold = rng.normal(size=n)
        shared = gold + rng.normal(size=n)
        a, b = shared + 0.5 * rng.normal(size=n), shared + 0.5 * rng.normal(size=n)
        corr = lambda column: (lambda index: float(np.corrcoef(gold[index], column[index])[0, 1]))  # noqa: E731
        result = stats.paired(stats.Scores(n, statistic=corr(a)), stats.Scores(n, statistic=corr(b)),
                              seed=i, resamples=150)
        rejected += result.p_value < ALPHA
    low, high = binomial_band(ALPHA, sims)
    assert low <= rejected / sims <= high, rejected / sims  # measured: 0.057 over 300 simulations


@pytest.mark.unit
def test_exact_sign_flip_p_on_a_small_sample():
    p, method = stats.sign_flip_p([1.0, 1.0, 1.0, 1.0])
    assert p == pytest.approx(2 / 16) and "exact" in method  # all + or all −: 2 of 16 patterns as extreme
    p, _ = stats.sign_flip_p([1.0, -1.0, 2.0, -2.0])
    assert p == 1.0


# --- adjustments, means over tasks, ranks ----------------------------------------------------------------------

@pytest.mark.unit
def test_holm_and_bh_against_hand_computed_values():
    p = [0.01, 0.04, 0.03, 0.005, float("nan")]
    assert stats.adjust(p, "holm")[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.adjust(p, "bh")[:4] == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert math.isnan(stats.adjust(p, "holm")[4])
    assert stats.adjust([0.9, 0.8], "holm") == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="unknown adjustment"):
        stats.adjust(p, "bonferroni")


@pytest.mark.unit
def test_mean_over_tasks_resamples_each_task_on_its_own():
    rng = np.random.default_rng(4)
    pairs = [stats.paired(stats.Scores.mean_of(x), stats.Scores.mean_of(x + shift + 0.1 * rng.normal(size=x.size)),
                          seed=[0, t]) for t, (x, shift) in enumerate([(rng.random(200), 0.02), (rng.random(50), 0.0)])]
    mean, (low, high) = stats.mean_over_tasks([p.delta for p in pairs], [p.replicates for p in pairs])
    assert mean == pytest.approx(np.mean([p.delta for p in pairs]))
    assert low < mean < high
    # independent tasks: the mean's CI is narrower than the wider task's, wider than zero
    assert 0 < high - low < max(p.ci[1] - p.ci[0] for p in pairs)


@pytest.mark.unit
def test_rank_intervals_separate_clear_winners_and_tie_close_models():
    rng = np.random.default_rng(5)
    difficulty = rng.random(500)
    models = [difficulty + 0.2, difficulty + 0.001 * rng.normal(size=500), difficulty + 0.001 * rng.normal(size=500)]
    replicates = stats.joint_replicates([stats.Scores.mean_of(m) for m in models], resamples=500)
    intervals = stats.rank_intervals(replicates)
    assert intervals[0] == (1, 1)
    assert intervals[1] == intervals[2] == (2, 3)
    assert stats.ranks(np.array([0.5, 0.7, 0.5])).tolist() == [2, 1, 2]
