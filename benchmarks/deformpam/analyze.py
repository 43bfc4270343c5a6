"""Tables for the DeformPAM benchmark from a finished ``robo-reward bench`` folder (no training here).

    python benchmarks/deformpam/analyze.py runs/bench/deformpam > benchmarks/deformpam/analysis.md

Reads the bench's ``results.csv`` (one row per design and seed: final IoU = ``final_progress``, and the eval
info metrics) and each run's checkpointed trainer metrics (selection cost and held-out preference accuracies,
also logged to ``tb/progress.csv``). Reports per design IQM [95% bootstrap CI] over seeds of the final IoU, the normalised score
``(s - uniform) / (annotator - uniform)`` and the primitives to reach the IoU threshold (``horizon + 1`` when not
reached), and one-sided exact permutation tests over seeds (difference of means).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from robo_reward.stats import bootstrap_ci, iqm, permutation_p

COMPARISONS = [("deformpam", "sft"), ("deformpam", "dpo_policy"), ("deformpam", "random_selection"),
               ("deformpam_sigmoid", "sft"), ("explicit_head", "sft"), ("random_selection", "sft"),
               ("dpo_policy", "sft"), ("deformpam", "explicit_head")]


def ci(values: np.ndarray, digits: int = 3) -> str:
    lo, hi = bootstrap_ci(values)
    return f"{iqm(values):.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def trainer_logs(bench: Path, design: str) -> pd.DataFrame:
    """The trainer's metrics of each finished run, read from its checkpoint (``tb/progress.csv`` is rewritten
    empty when a run is restored, e.g. by ``robo-reward eval``)."""
    import torch

    rows = []
    for agent in sorted((bench / "runs" / design).glob("seed*/checkpoints/step_*/agent.zip")):
        if (agent.parents[2] / "summary.json").exists():
            rows.append(torch.load(agent, weights_only=False)["metrics"])
    return pd.DataFrame(rows)


def main(bench: Path) -> str:
    res = pd.read_csv(bench / "results.csv")
    by = {name: g.sort_values("seed") for name, g in res.groupby("name")}
    lo = by["uniform"]["final_progress"].mean() if "uniform" in by else np.nan
    hi = by["annotator"]["final_progress"].mean() if "annotator" in by else np.nan
    steps_key = "final_info/steps_to_threshold"
    out = [f"Bench folder `{bench}`; normalised score = (IoU - uniform {lo:.3f}) / (annotator {hi:.3f} - uniform).",
           "", "| design | seeds | final IoU | normalised | primitives to threshold | selection s/step | "
           "held-out pref. accuracy |", "|---|---|---|---|---|---|---|"]
    order = ["sft", "dpo_policy", "deformpam", "deformpam_sigmoid", "random_selection", "explicit_head",
             "annotator", "uniform"]
    for name in [n for n in order if n in by] + sorted(set(by) - set(order)):
        g = by[name]
        final = g["final_progress"].to_numpy(float)
        logs = trainer_logs(bench, name)
        cost = logs["selection/seconds_per_step"].median() if "selection/seconds_per_step" in logs else np.nan
        acc_keys = [k for k in ("heldout/implicit_accuracy", "heldout/explicit_accuracy") if k in logs]
        acc = " / ".join(f"{k.split('/')[1].split('_')[0]} {logs[k].mean():.3f}" for k in acc_keys) or "-"
        steps = ci(g[steps_key].to_numpy(float), 2) if steps_key in g else "-"
        out.append(f"| {name} | {len(g)} | {ci(final)} | {ci((final - lo) / (hi - lo))} | {steps} | "
                   f"{cost:.4f} | {acc} |")
    out += ["", "One-sided exact permutation tests over seeds (difference of means):", "",
            "| comparison | final IoU: diff, p | primitives to threshold: diff, p |", "|---|---|---|"]
    for a, b in COMPARISONS:
        if a not in by or b not in by:
            continue
        x, y = by[a]["final_progress"].to_numpy(float), by[b]["final_progress"].to_numpy(float)
        tested = min(len(x), len(y)) >= 2
        cell = f"{x.mean() - y.mean():+.4f}, p = {permutation_p(x, y) if tested else float('nan'):.4f}"
        steps_cell = "-"
        if steps_key in by[a]:
            xs, ys = by[a][steps_key].to_numpy(float), by[b][steps_key].to_numpy(float)
            p_steps = permutation_p(xs, ys, alternative="less") if tested else float("nan")
            steps_cell = f"{xs.mean() - ys.mean():+.2f}, p = {p_steps:.4f}"
        out.append(f"| {a} > {b} | {cell} | {steps_cell} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(main(Path(sys.argv[1])))
