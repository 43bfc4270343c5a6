"""Compare the bench runs of ``on_demand/`` with the published on-demand noisy-TV runs, seed by seed.

Reads only what ``robo-reward bench`` wrote (``on_demand/results.csv``: each run's final evaluation) and
``published/runs.csv`` (the removed script's training-episode averages over the last quarter of training); trains
nothing. Writes ``on_demand/compare_published.md``.

    python benchmarks/noisy_tv/compare_published.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from robo_reward.stats import bootstrap_ci, iqm, permutation_p

HERE = Path(__file__).resolve().parent
DESIGNS = {"hindsight_on_demand": "hindsight", "explore_on_demand": "explore", "env_reward": "extrinsic"}
METRICS = ("coverage", "tv_fraction")


def _cell(values: np.ndarray) -> str:
    low, high = bootstrap_ci(values)
    return f"{iqm(values):.3f} [{low:.3f}, {high:.3f}]"


def main() -> None:
    ours = pd.read_csv(HERE / "on_demand" / "results.csv")
    theirs = pd.read_csv(HERE / "published" / "runs.csv")
    theirs = theirs[(theirs["task"] == "on_demand") & (theirs["mode"] == "intrinsic")]
    lines = ["# On-demand noisy TV: bench rerun against the published runs", "",
             "Rerun: `robo-reward bench` (`results.csv`), the env's `info` averaged over the 16 episodes (sampled "
             "actions) of the final evaluation at 200k steps. Published: `published/runs.csv`, averaged over the "
             "training episodes that ended in the last quarter of training (the removed script). IQM [95% bootstrap "
             "CI] over seeds (`robo_reward.stats`); `inside` = the rerun IQM lies in the published CI.", "",
             "| design | metric | rerun per seed | rerun IQM [95% CI] | published per seed | published IQM [95% CI] "
             "| inside |", "|---|---|---|---|---|---|---|"]
    for design, method in DESIGNS.items():
        mine = ours[ours["name"] == design].sort_values("seed")
        pub = theirs[theirs["method"] == method].sort_values("seed")
        for metric in METRICS:
            a, b = mine[f"final_info/{metric}"].to_numpy(), pub[metric].to_numpy()
            low, high = bootstrap_ci(b)
            per = ", ".join(f"s{s} {v:.3f}" for s, v in zip(mine["seed"], a, strict=True))
            per_pub = ", ".join(f"s{s} {v:.3f}" for s, v in zip(pub["seed"], b, strict=True))
            inside = "yes" if low - 1e-9 <= iqm(a) <= high + 1e-9 else "no"
            lines.append(f"| {design} | {metric} | {per} | {_cell(a)} | {per_pub} | {_cell(b)} | {inside} |")
    h = ours[ours["name"] == "hindsight_on_demand"]
    e = ours[ours["name"] == "explore_on_demand"]
    cov_h, cov_e = h["final_info/coverage"].to_numpy(), e["final_info/coverage"].to_numpy()
    tv_h, tv_e = h["final_info/tv_fraction"].to_numpy(), e["final_info/tv_fraction"].to_numpy()
    lines += ["", "Rerun, Hindsight vs Explore (ratio of IQMs; exact one-sided permutation test of the difference "
              "of means, scipy):", "",
              f"- coverage {iqm(cov_h) / iqm(cov_e):.2f}x, p = {permutation_p(cov_h, cov_e, alternative='greater'):.3f} "
              f"(n = {len(cov_h)}, {len(cov_e)}; min Hindsight {cov_h.min():.3f}, max Explore {cov_e.max():.3f})",
              f"- time on the TV {iqm(tv_h) / iqm(tv_e):.3f}x, p = {permutation_p(tv_h, tv_e, alternative='less'):.3f} "
              f"(max Hindsight {tv_h.max():.3f}, min Explore {tv_e.min():.3f})"]
    (HERE / "on_demand" / "compare_published.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
