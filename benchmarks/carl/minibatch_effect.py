"""The minibatch effect per reward from a bench's ``results.csv``: what going from minibatch 64 to 2048 does to
each final metric, for the additive reward and for CaRL, and the difference between the two (the paper's claim is
a drop for the additive reward and none for CaRL, i.e. a positive difference).

Reads only the benches' per-seed results (no training; several folders comma-separated). Usage:
``python benchmarks/carl/minibatch_effect.py runs/carl_bench_200k additive_mb64_200k additive_mb2048_200k
carl_mb64_200k carl_mb2048_200k > benchmarks/carl/minibatch_200k/effect.md``
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from robo_reward.stats import probability_of_improvement

METRICS = ("route_completion", "collided", "left_road", "driving_score")


def _boot_diff(a: np.ndarray, b: np.ndarray, resamples: int = 4000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of mean(b) - mean(a), seeds resampled within each group."""
    rng = np.random.default_rng(seed)
    d = (b[rng.integers(0, b.size, (resamples, b.size))].mean(1)
         - a[rng.integers(0, a.size, (resamples, a.size))].mean(1))
    return float(np.quantile(d, 0.025)), float(np.quantile(d, 0.975))


def _boot_interaction(a64: np.ndarray, a2k: np.ndarray, c64: np.ndarray, c2k: np.ndarray,
                      resamples: int = 4000, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of (CaRL's change) - (additive's change) in means."""
    rng = np.random.default_rng(seed)

    def m(x: np.ndarray) -> np.ndarray:
        return x[rng.integers(0, x.size, (resamples, x.size))].mean(1)

    d = (m(c2k) - m(c64)) - (m(a2k) - m(a64))
    return float(np.quantile(d, 0.025)), float(np.quantile(d, 0.975))


def main(folder: str, add64: str, add2k: str, carl64: str, carl2k: str) -> None:
    res = pd.concat([pd.read_csv(Path(f) / "results.csv") for f in folder.split(",")], ignore_index=True)
    print(f"# Minibatch 64 -> 2048 effect ({folder}, per-seed final evaluation)\n")
    print("Change = mean at mb 2048 - mean at mb 64 [95% bootstrap CI], Welch t-test p; P(mb2048 > mb64); "
          "interaction = CaRL's change - additive's change [95% bootstrap CI]. Seeds: "
          + ", ".join(f"{n} {int((res.name == n).sum())}" for n in (add64, add2k, carl64, carl2k)) + "\n")
    print("| metric | additive change | p | P(>) | CaRL change | p | P(>) | interaction |")
    print("|---|---|---|---|---|---|---|---|")
    for metric in METRICS:
        col = f"final_info/{metric}"
        g = {n: res.loc[res.name == n, col].to_numpy(float) for n in (add64, add2k, carl64, carl2k)}
        cells = [metric]
        for lo, hi in ((add64, add2k), (carl64, carl2k)):
            a, b = g[lo], g[hi]
            ci = _boot_diff(a, b)
            p = stats.ttest_ind(b, a, equal_var=False).pvalue if a.std() + b.std() > 0 else float("nan")
            cells += [f"{b.mean() - a.mean():+.3g} [{ci[0]:+.3g}, {ci[1]:+.3g}]", f"{p:.2g}",
                      f"{probability_of_improvement(b, a):.2f}"]
        ci = _boot_interaction(g[add64], g[add2k], g[carl64], g[carl2k])
        inter = (g[carl2k].mean() - g[carl64].mean()) - (g[add2k].mean() - g[add64].mean())
        cells.append(f"{inter:+.3g} [{ci[0]:+.3g}, {ci[1]:+.3g}]")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(*sys.argv[1:6])
