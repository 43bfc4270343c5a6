"""Tabulate the annotator metrics that ONI runs logged (reward_update/annotator/* in each run's tb/progress.csv).

Reads the bench folders ``robo-reward bench`` wrote (``OUT/runs/<design>/seed<k>/tb/progress.csv``); trains
nothing. Writes a markdown table (labels, throughput, backlog, share of messages already labelled when paid)
and a plot of backlog and labelled share against env steps.

    python benchmarks/oni/annotator_log.py runs/oni/staircase runs/oni/score --out benchmarks/oni/annotator.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

PREFIX = "reward_update/"
COLUMNS = {"annotator/labelled": "labelled", "annotator/known": "distinct labels", "annotator/enqueued": "enqueued",
           "annotator/dropped": "dropped", "annotator/backlog": "backlog", "annotator/throughput": "throughput",
           "oni/known_fraction": "known_fraction"}


def load(bench: Path) -> pd.DataFrame:
    frames = []
    for csv in sorted(bench.glob("runs/*/seed*/tb/progress.csv")):
        if csv.stat().st_size == 0:
            continue
        log = pd.read_csv(csv)
        if PREFIX + "annotator/labelled" not in log:
            continue
        log = log.dropna(subset=[PREFIX + "annotator/labelled"])
        frame = log[["time/total_timesteps", *(PREFIX + k for k in COLUMNS)]].rename(
            columns={"time/total_timesteps": "step", **{PREFIX + k: v for k, v in COLUMNS.items()}})
        frame["design"], frame["seed"] = csv.parents[2].name, csv.parents[1].name
        frames.append(frame)
    return pd.concat(frames) if frames else pd.DataFrame()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benches", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    logs = pd.concat([load(b) for b in args.benches])
    rows = []
    for (design, seed), run in logs.groupby(["design", "seed"]):
        last = run.iloc[-1]
        rows.append({"design": design, "seed": seed, "env steps": int(last["step"]),
                     "labelled": int(last["labelled"]), "enqueued": int(last["enqueued"]),
                     "dropped": int(last["dropped"]), "throughput (labels/s)": round(run["throughput"].mean(), 2),
                     "backlog mean": round(run["backlog"].mean(), 2), "backlog max": int(run["backlog"].max()),
                     "messages paid with a label (last 25%)":
                         round(run["known_fraction"].iloc[int(0.75 * len(run)):].mean(), 3)})
    table = pd.DataFrame(rows)
    lines = ["# Annotator metrics over the ONI runs", "",
             "From each run's `tb/progress.csv` (`reward_update/annotator/*`, logged every reward update). "
             "Throughput is labels per wall-clock second between updates (bounded by how fast new messages "
             "appear, not by the stand-in); backlog is messages queued or in flight at an update.", "",
             "| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    args.out.write_text("\n".join(lines) + "\n")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for (design, seed), run in logs.groupby(["design", "seed"]):
        axes[0].plot(run["step"], run["backlog"], label=f"{design} {seed}", lw=1)
        axes[1].plot(run["step"], run["known_fraction"], lw=1)
    axes[0].set(xlabel="env steps", ylabel="annotator backlog")
    axes[1].set(xlabel="env steps", ylabel="messages paid with a label")
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=100)
    print(args.out)


if __name__ == "__main__":
    main()
