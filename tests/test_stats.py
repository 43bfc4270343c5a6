"""The benchmark tables' permutation test against a brute-force enumeration."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from robo_reward.stats import permutation_p


def _brute_force(x: np.ndarray, y: np.ndarray) -> float:
    pooled, observed = np.concatenate([x, y]), x.mean() - y.mean()
    diffs = []
    for idx in combinations(range(len(pooled)), len(x)):
        mask = np.zeros(len(pooled), bool)
        mask[list(idx)] = True
        diffs.append(pooled[mask].mean() - pooled[~mask].mean())
    return float(np.mean(np.asarray(diffs) >= observed - 1e-12))


def test_separated_designs_get_the_smallest_attainable_p() -> None:
    better, worse = [3.0, 4.0, 5.0], [0.0, 1.0, 2.0]
    assert permutation_p(better, worse) == pytest.approx(1 / 20)
    assert permutation_p(better, worse, alternative="two-sided") == pytest.approx(2 / 20)
    assert permutation_p(better, worse, alternative="less") == pytest.approx(1.0)


def test_exact_p_equals_every_relabelling() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(0.5, 1.0, 5), rng.normal(0.0, 1.0, 6)
    assert permutation_p(x, y) == pytest.approx(_brute_force(x, y))


def test_beyond_the_exact_limit_it_is_a_seeded_monte_carlo_test() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(0.3, 1.0, 8), rng.normal(0.0, 1.0, 8)
    p = permutation_p(x, y, resamples=500, seed=1)
    assert p == permutation_p(x, y, resamples=500, seed=1) and abs(p - _brute_force(x, y)) < 0.08
    assert np.isnan(permutation_p([], y))
