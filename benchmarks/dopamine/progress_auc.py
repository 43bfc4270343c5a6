"""Mean and best evaluation progress over training for every design of a `robo-reward bench` folder.

Success at the end of the budget hides designs that move the agent most of the way and then stall or regress;
the area under the eval-progress curve (divided by the budget) and the best eval progress show them.

    python benchmarks/dopamine/progress_auc.py runs/bench/dopamine_reach [--budget 80000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from robo_reward.stats import bootstrap_ci, iqm


def _fmt(values: np.ndarray) -> str:
    lo, hi = bootstrap_ci(values)
    return f"{iqm(values):.3f} [{lo:.3f}, {hi:.3f}]"


def table(bench: Path, budget: float) -> str:
    lines = ["| design | seeds | mean eval progress over training (IQM [95% CI]) | best eval progress (IQM [95% CI]) |",
             "|---|---|---|---|"]
    for design in sorted(p for p in (bench / "runs").iterdir() if p.is_dir()):
        mean, best = [], []
        for csv in sorted(design.glob("seed*/eval.csv")):
            ev = pd.read_csv(csv)
            ev = ev[ev["timestep"] <= budget]
            x, y = ev["timestep"].to_numpy(), ev["final_progress"].to_numpy()
            mean.append(float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2) / budget))
            best.append(float(y.max()))
        if mean:
            lines.append(f"| {design.name} | {len(mean)} | {_fmt(np.array(mean))} | {_fmt(np.array(best))} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench", type=Path)
    parser.add_argument("--budget", type=float, default=80_000)
    args = parser.parse_args()
    print(table(args.bench, args.budget), end="")


if __name__ == "__main__":
    main()
