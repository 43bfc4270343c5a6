"""Compare the bench runs in ``inverted_pendulum/runs`` (finished or not) with the published seeds, step by step.

Reads only what ``robo-reward bench`` wrote (each run's ``eval.csv`` and ``tb/progress.csv``) and the published
``published/curves.csv`` and ``published/lipschitz.csv``; trains nothing. Writes ``inverted_pendulum/partial.md``.

    python benchmarks/gail/compare_published.py
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

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
    lines = ["# InvertedPendulum-v5 GAIL: bench runs so far against the published seeds", "",
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
    (HERE / "inverted_pendulum" / "partial.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
