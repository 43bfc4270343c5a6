"""Compare the bench runs in ``inverted_pendulum/runs`` (finished or not) with the published seeds, step by step.

Reads only what ``robo-reward bench`` wrote (each run's ``eval.csv`` and ``tb/progress.csv``) and the published
``published/curves.csv``, ``published/final.csv`` and ``published/lipschitz.csv``; trains nothing. Writes
``inverted_pendulum/compare_published.md``: the final scores against the published CIs, the curves seed by seed, and the
discriminator's gradient norms.

    python benchmarks/gail/compare_published.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from robo_reward.stats import bootstrap_ci, iqm, permutation_p

HERE = Path(__file__).resolve().parent
RUNS = HERE / "inverted_pendulum" / "runs"
TASK = "InvertedPendulum-v5"


def eval_table() -> tuple[pd.DataFrame, list[str]]:
    published = pd.read_csv(HERE / "published" / "curves.csv")
    published = published[published["task"] == TASK]
    rows, names = [], []
    for csv in sorted(RUNS.glob("*/seed*/eval.csv")):
        method, seed = csv.parent.parent.name, int(csv.parent.name.removeprefix("seed"))
        ours = pd.read_csv(csv).set_index("timestep")["info/normalized_return"]
        theirs = published[(published["method"] == method) & (published["seed"] == seed)].set_index("timestep")["norm"]
        name = f"{method} s{seed}"
        names.append(name)
        for step, value in ours.items():
            if step > 0:
                rows.append({"env steps": int(step), "run": name, "rerun": value, "published": theirs.get(step)})
    return pd.DataFrame(rows), names


def final_scores() -> pd.DataFrame:
    """Per design: each finished rerun seed's final expert-normalised return (``summary.json``) and its IQM [95% CI],
    beside the published seeds' (``published/final.csv``, the same statistic), and whether the rerun IQM lies in
    the published CI."""
    published = pd.read_csv(HERE / "published" / "final.csv")
    published = published[published["task"] == TASK]
    rows = []
    for design in sorted(p.name for p in RUNS.iterdir() if p.is_dir()):
        ours = {int(s.parent.name.removeprefix("seed")): json.loads(s.read_text())["final_info/normalized_return"]
                for s in sorted((RUNS / design).glob("seed*/summary.json"))}
        theirs = published[published["method"] == design].set_index("seed")["final_norm"]
        if not ours or theirs.empty:
            continue
        low, high = bootstrap_ci(theirs.to_numpy())
        ours_iqm = iqm(list(ours.values()))
        rows.append({"design": design, "seeds": len(ours), "rerun": ours, "rerun_iqm": ours_iqm,
                     "rerun_ci": bootstrap_ci(list(ours.values())), "published": dict(theirs.items()),
                     "published_iqm": iqm(theirs.to_numpy()), "published_ci": (low, high),
                     "inside": bool(low - 1e-9 <= ours_iqm <= high + 1e-9)})
    return pd.DataFrame(rows)


def discriminator_table(start: int, upto: int) -> pd.DataFrame:
    published = pd.read_csv(HERE / "published" / "lipschitz.csv")
    rows = []
    for method in ("gail_gp", "gail_nogp"):
        progress = RUNS / method / "seed0" / "tb" / "progress.csv"
        if not progress.exists():
            continue
        log = pd.read_csv(progress)
        log = log[log["time/total_timesteps"].between(start, upto)].dropna(subset=["reward_update/grad_norm"])
        pub = published[(published["method"] == method) & published["timestep"].between(start, upto)]
        for source, frame, prefix in (("rerun", log, "reward_update/"), ("published", pub, "")):
            rows.append({"method": method, "source": source, "rows": len(frame),
                         "grad norm (mean)": frame[f"{prefix}grad_norm"].mean(),
                         "grad norm (max)": frame[f"{prefix}grad_norm"].max(),
                         "D(policy)": frame[f"{prefix}d_policy"].mean(), "D(expert)": frame[f"{prefix}d_expert"].mean()})
    return pd.DataFrame(rows)


def main() -> None:
    evals, names = eval_table()
    wide = evals.pivot_table(index="env steps", columns="run", values=["rerun", "published"])
    finals = final_scores()
    lines = ["# InvertedPendulum-v5 GAIL: bench runs against the published seeds", "",
             "Final expert-normalised return (last evaluation, 5 deterministic episodes), IQM [95% bootstrap CI] over "
             "the finished rerun seeds (`summary.json` of each bench run) and over the published seeds "
             "(`published/final.csv`, recomputed with `robo_reward.stats`); `inside` = the rerun IQM lies in the "
             "published CI.", "",
             "| design | rerun seeds | rerun per seed | rerun IQM [95% CI] | published per seed | published IQM [95% CI] "
             "| inside |", "|---|---|---|---|---|---|---|"]
    for _, r in finals.iterrows():
        per = ", ".join(f"s{k} {v:.3f}" for k, v in r["rerun"].items())
        pub = ", ".join(f"s{k} {v:.3f}" for k, v in r["published"].items())
        lines.append(f"| {r['design']} | {r['seeds']} | {per} | {r['rerun_iqm']:.3f} [{r['rerun_ci'][0]:.3f}, "
                     f"{r['rerun_ci'][1]:.3f}] | {pub} | {r['published_iqm']:.3f} [{r['published_ci'][0]:.3f}, "
                     f"{r['published_ci'][1]:.3f}] | {'yes' if r['inside'] else 'no'} |")
    by_design = {r["design"]: list(r["rerun"].values()) for _, r in finals.iterrows()}
    pairs = [(a, b) for a, b in (("gail_gp", "gail_nogp"), ("gail_gp", "true_reward")) if a in by_design and b in by_design]
    if pairs:
        lines += ["", "Rerun, two-sided exact permutation test of the difference of mean final scores (scipy):", ""]
        for a, b in pairs:
            diff = float(np.mean(by_design[a]) - np.mean(by_design[b]))
            lines.append(f"- {a} vs {b}: mean difference {diff:+.3f}, p = {permutation_p(by_design[a], by_design[b], alternative='two-sided'):.3f} "
                         f"(n = {len(by_design[a])}, {len(by_design[b])})")
    lines += ["", "## Curves, seed by seed", "",
             "Expert-normalised return of the deterministic policy (5 episodes) at each evaluation; `rerun` from the "
             "bench runs' `eval.csv` (`info/normalized_return`), `published` from `published/curves.csv` (same seed, "
             "same evaluation seeds, the removed trainer).", "",
             "| env steps | " + " | ".join(f"{n} rerun | {n} published" for n in names) + " |",
             "|---" * (1 + 2 * len(names)) + "|"]
    for step, row in wide.iterrows():
        cells = [f"{row[('rerun', n)]:.3f} | {row[('published', n)]:.3f}" for n in names]
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    upto = int(evals["env steps"].max()) if len(evals) else 0
    start = max(1000, int(0.75 * upto))
    disc = discriminator_table(start, upto)
    lines += ["", f"Discriminator over env steps {start}-{upto}, the last quarter of what ran (seed 0; rerun: `reward_update/*` in `tb/progress.csv`, "
              "published: `published/lipschitz.csv`): gradient norm of D on expert-policy interpolates, and D's mean "
              "output on policy and expert pairs (rerun: one row per SB3 log line, each a mean of the updates since the last; published: one row per update).", "",
              "| method | source | log rows | grad norm (mean) | grad norm (max) | D(policy) | D(expert) |",
              "|---|---|---|---|---|---|---|"]
    for _, r in disc.iterrows():
        lines.append(f"| {r['method']} | {r['source']} | {r['rows']} | {r['grad norm (mean)']:.2f} | "
                     f"{r['grad norm (max)']:.2f} | {r['D(policy)']:.3f} | {r['D(expert)']:.3f} |")
    (HERE / "inverted_pendulum" / "compare_published.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
