"""Analyse a KAGI ``robo-reward bench`` folder: permutation tests, steps to first 50% success, success at the budget.

Reads only what the bench wrote (each run's ``summary.json`` and ``eval.csv``); trains nothing. Writes
``analysis.md`` into the output folder::

    python benchmarks/kagi/analyse.py runs/kagi/bench_pickplace benchmarks/kagi/pickplace
    python benchmarks/kagi/analyse.py runs/kagi/bench_a,runs/kagi/bench_b benchmarks/kagi/both   # several folders
    python benchmarks/kagi/analyse.py benchmarks/kagi/push_20k/results.csv@2000,runs/kagi/bench_c out

A source ``results.csv@EVERY`` is a bench table committed earlier, for when its run folders are gone: it gives each
run's final success, final progress and first step at 50% success (the runner's ``steps_to_threshold``, the same
definition), but not its best evaluation; ``EVERY`` is that bench's ``eval.every``, for the censored steps.

Steps to first 50% success: the first evaluation at which the greedy policy's success rate is >= 0.5; a run that
never gets there counts as ``budget + eval.every`` (censored) in the test and is shown as "not reached".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from robo_reward.stats import bootstrap_ci, iqm, permutation_p

PAIRS = [("kagi_oracle", "sparse_demos"), ("kagi_oracle", "sparse"), ("kagi_noise_low", "sparse_demos"),
         ("kagi_noise_high", "sparse_demos"), ("kagi_oracle_fifth", "sparse_demos_fifth"),
         ("kagi_oracle", "kagi_oracle_fifth"), ("kagi_oracle", "kagi_noise_high"),
         ("push_kagi_oracle", "push_sparse_demos"), ("push_kagi_noise_high", "push_sparse_demos"),
         ("push_kagi_oracle", "push_kagi_noise_high"), ("kagi_oracle_fifth", "sparse_demos"),
         ("kagi_oracle_fifth", "sparse"), ("sparse_demos", "sparse"), ("kagi_oracle", "kagi_noise_low"),
         ("kagi_noise_low", "kagi_noise_high"), ("push_kagi_oracle", "push_sparse"),
         ("push_kagi_noise_low", "push_sparse_demos"), ("push_kagi_oracle", "push_kagi_noise_low"),
         ("push_sparse_demos", "push_sparse")]


def load(bench: Path) -> pd.DataFrame:
    rows = []
    summaries = sorted(bench.glob("runs/*/seed*/summary.json"))
    if not summaries:
        raise SystemExit(f"no finished runs (runs/*/seed*/summary.json) under {bench}")
    for summary in summaries:
        s = json.loads(summary.read_text())
        ev = pd.read_csv(summary.parent / "eval.csv")
        reached = ev.loc[ev["success_rate"] >= 0.5, "timestep"]
        every = float(ev["timestep"].diff().dropna().median()) if len(ev) > 1 else 0.0
        rows.append({"design": summary.parent.parent.name, "seed": s["seed"], "budget": s["timesteps"],
                     "final_success": s["final_success"] or 0.0, "best_success": float(ev["success_rate"].max()),
                     "final_progress": s.get("final_progress") or 0.0,
                     "steps_to_50": float(reached.iloc[0]) if len(reached) else np.nan,
                     "censored_steps": float(reached.iloc[0]) if len(reached) else s["timesteps"] + every})
    return pd.DataFrame(rows)


def load_table(source: str) -> pd.DataFrame:
    """Read a committed bench ``results.csv`` given as ``path@eval_every``."""
    path, _, every = source.partition("@")
    if not every:
        raise SystemExit(f"{source}: a results.csv source needs its bench's eval.every, as {path}@2000")
    table = pd.read_csv(path)
    if not (table["metric"] == "success_rate").all() or not (table["threshold"] == 0.5).all():
        raise SystemExit(f"{path}: steps_to_threshold is not the first step at 50% success in every row")
    steps = table["steps_to_threshold"].astype(float)
    return pd.DataFrame({"design": table["name"], "seed": table["seed"], "budget": table["timesteps"],
                         "final_success": table["final_success"].fillna(0.0), "best_success": np.nan,
                         "final_progress": table["final_progress"].fillna(0.0), "steps_to_50": steps,
                         "censored_steps": steps.fillna(table["timesteps"] + float(every))})


def _fmt(x: np.ndarray) -> str:
    if np.isnan(x).any():
        return "-"
    lo, hi = bootstrap_ci(x)
    return f"{iqm(x):.2f} [{lo:.2f}, {hi:.2f}]"


def main(bench: str, out: str) -> None:
    runs = pd.concat([load_table(b) if ".csv" in b else load(Path(b)) for b in bench.split(",")],
                     ignore_index=True)
    lines = ["# KAGI benchmark analysis", "", f"From `{bench}` ({len(runs)} finished runs). IQM [95% bootstrap CI] "
             "over seeds; exact one-sided permutation tests (first design better; the smallest attainable p "
             "is 1/C(n_a+n_b, n_a): 0.05 for 3 vs 3 runs, 0.004 for 5 vs 5).", "",
             "| design | seeds | budget | final success | best eval success | final progress | runs reaching 50% | "
             "steps to first 50% (reached runs) |", "|---|---|---|---|---|---|---|---|"]
    for name, g in runs.groupby("design", sort=False):
        reached = g["steps_to_50"].dropna()
        steps = f"{reached.median():.0f} (median)" if len(reached) else "not reached"
        lines.append(f"| {name} | {len(g)} | {int(g['budget'].max())} | {_fmt(g['final_success'].to_numpy())} | "
                     f"{_fmt(g['best_success'].to_numpy())} | {_fmt(g['final_progress'].to_numpy())} | "
                     f"{len(reached)}/{len(g)} | {steps} |")
    lines += ["", "| comparison | final success p | final progress p | steps to 50% p (censored, fewer is better) |",
              "|---|---|---|---|"]
    by = {name: g for name, g in runs.groupby("design")}
    for a, b in PAIRS:
        if a not in by or b not in by:
            continue
        ga, gb = by[a], by[b]
        if min(len(ga), len(gb)) < 2:
            lines.append(f"| {a} vs {b} | - (fewer than 2 runs) | - | - |")
            continue
        cells = []
        for key, sign in (("final_success", 1.0), ("final_progress", 1.0), ("censored_steps", -1.0)):
            x, y = sign * ga[key].to_numpy(), sign * gb[key].to_numpy()
            tied = np.ptp(np.concatenate([x, y])) == 0
            cells.append("- (every run equal)" if tied else f"{permutation_p(x, y):.3f}")
        lines.append(f"| {a} vs {b} | " + " | ".join(cells) + " |")
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "analysis.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
