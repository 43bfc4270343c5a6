"""Aggregate statistics for benchmark tables: IQM with bootstrap confidence intervals (Agarwal et al., 2021).

With one task, the stratified bootstrap of rliable reduces to resampling seeds with replacement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats


def iqm(x: Sequence[float] | np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% of values (25% trimmed from each end)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return float("nan")
    return float(stats.trim_mean(x, 0.25))


def bootstrap_ci(x: Sequence[float] | np.ndarray, statistic: Callable[[np.ndarray], float] = iqm, *,
                 confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over seeds."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return float("nan"), float("nan")
    if x.size == 1:
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    samples = x[rng.integers(0, x.size, size=(resamples, x.size))]
    values = np.array([statistic(s) for s in samples])
    alpha = (1 - confidence) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def probability_of_improvement(x: Sequence[float], y: Sequence[float]) -> float:
    """P(X > Y) + 0.5 P(X = Y) over runs of two designs (the Mann-Whitney statistic, as in rliable)."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        return float("nan")
    greater = (a[:, None] > b[None, :]).mean()
    ties = (a[:, None] == b[None, :]).mean()
    return float(greater + 0.5 * ties)


def permutation_p(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, *, alternative: str = "greater",
                  resamples: int = 200_000, seed: int = 0) -> float:
    """p-value of a permutation test of mean(x) - mean(y) between two designs' per-seed values.

    Exact (every relabelling of the pooled seeds, as scipy.stats.permutation_test does when they number at most
    ``resamples``: 184,756 for 10 against 10 seeds), else a seeded Monte Carlo test.

    :param x: one design's per-seed values.
    :param y: the other's.
    :param alternative: ``"greater"`` (the alternative is mean(x) > mean(y)), ``"less"`` or ``"two-sided"``.
    :param resamples: the most relabellings an exact test enumerates, and the Monte Carlo count beyond that.
    :param seed: the Monte Carlo test's seed.
    """
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        return float("nan")
    result = stats.permutation_test((a, b), lambda u, v, axis=-1: u.mean(axis) - v.mean(axis), vectorized=True,
                                    permutation_type="independent", alternative=alternative,
                                    n_resamples=resamples, rng=np.random.default_rng(seed))
    return float(result.pvalue)


def mean_curve(curves: Sequence[tuple[np.ndarray, np.ndarray]], grid: np.ndarray,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over runs of step-wise curves on a common grid (each run held at its last value), with a 95% band."""
    values = np.stack([np.interp(grid, steps, vals) if len(steps) else np.full(len(grid), np.nan)
                       for steps, vals in curves])
    mean = np.nanmean(values, axis=0)
    if len(curves) == 1:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(curves), size=(1000, len(curves)))
    boot = np.nanmean(values[idx], axis=1)
    return mean, np.quantile(boot, 0.025, axis=0), np.quantile(boot, 0.975, axis=0)
