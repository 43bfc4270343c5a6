"""Each ablation against the base design at the same seeds: IQM [95% CI], per-seed values, exact permutation test.

Reads ``results.csv`` here (the ablation bench) and ``../reach_learned_gold_80k/results.csv`` (the base design,
``dopamine_learned_success_gold``, not rerun), keeps the base's seeds that the ablations ran, and writes
``compare.md``. The p-value is an exact two-sided permutation test on the difference of mean final success
(all C(n+m, n) relabellings of the pooled per-seed values). Usage: python compare.py [metric]
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from robo_reward.stats import bootstrap_ci, iqm, permutation_p

HERE = Path(__file__).resolve().parent
BASE_NAME = "dopamine_learned_success_gold"


def main(metric: str = "final_success") -> None:
    res = pd.read_csv(HERE / "results.csv")
    base_all = pd.read_csv(HERE.parent / "reach_learned_gold_80k" / "results.csv")
    seeds = sorted(int(s) for s in res["seed"].unique())
    base = base_all[(base_all["name"] == BASE_NAME) & base_all["seed"].isin(seeds)].sort_values("seed")
    rows = [f"# Ablations vs the base design at seeds {seeds} ({metric})", "",
            f"Base: `{BASE_NAME}` from `../reach_learned_gold_80k/results.csv` (not rerun). p: exact two-sided "
            "permutation test on the difference of means against the base.", "",
            "| design | seeds | IQM [95% CI] | mean | per-seed (seed order) | mean - base | p vs base |",
            "|---|---|---|---|---|---|---|"]
    b = base[metric].to_numpy()
    designs = [(BASE_NAME + " (base)", base)] + [(n, g.sort_values("seed")) for n, g in res.groupby("name", sort=False)]
    for name, g in designs:
        x = g[metric].to_numpy()
        lo, hi = bootstrap_ci(x)
        per_seed = ", ".join(f"{v:.3g}" for v in x)
        if name.endswith("(base)"):
            diff, p = "-", "-"
        else:
            diff, p = f"{x.mean() - b.mean():+.3f}", f"{permutation_p(x, b, alternative='two-sided'):.3f}"
        rows.append(f"| {name} | {len(x)} | {iqm(x):.3g} [{lo:.3g}, {hi:.3g}] | {x.mean():.3f} | {per_seed} | "
                    f"{diff} | {p} |")
    text = "\n".join(rows) + "\n"
    (HERE / ("compare.md" if metric == "final_success" else f"compare_{metric}.md")).write_text(text)
    print(text)


if __name__ == "__main__":
    main(*sys.argv[1:])
