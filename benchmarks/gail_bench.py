"""Benchmark of Lipschitz-regularised off-policy GAIL (issue 6): expert-normalised return against env steps.

For each task: train an in-house SAC expert on the true reward, record <= 10 demos as a Minari dataset, then run
over seeds: GAIL with the gradient penalty (paper defaults), GAIL without it (everything else equal), BC from the
same demos, and SAC on the true reward. Normalised score = (return - random) / (expert - random). Results are
appended as runs finish (``curves.csv``, ``final.csv``), so a killed run keeps what it has and a rerun skips the
finished runs; ``results.md`` and ``curves.png`` are rewritten after every run.

    python benchmarks/gail_bench.py --seeds 5     # demos go to runs/minari (MINARI_DATASETS_PATH)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from robo_reward.stats import bootstrap_ci, iqm

TASKS: dict[str, dict[str, Any]] = {
    "Pendulum-v1": {"dataset": "pendulum/expert-v0", "expert_steps": 8_000, "steps": 8_000,
                    "agent_kwargs": {"learning_rate": 1e-3}},
    "InvertedPendulum-v5": {"dataset": "invertedpendulum/expert-v0", "expert_steps": 10_000, "steps": 12_000,
                            "agent_kwargs": {}},
    # The task suite's Reach: demos from the scripted expert (`robo-reward collect-demos robo_reward/Reach-v0
    # --episodes 10 --root runs/minari`); the return is the sparse success, so random = 0 and expert = 1.
    "robo_reward/Reach-v0": {"dataset": "robo_reward/Reach/expert-v0", "steps": 20_000, "eval_every": 2_000,
                             "agent_kwargs": {"learning_starts": 1000}, "refs": {"random": 0.0, "expert": 1.0}},
}
METHODS = ("gail_gp", "gail_nogp", "true_reward", "bc")
OUT = Path(__file__).resolve().parent / "results" / "gail"


def ensure_dataset(task: str, spec: dict[str, Any], refs: dict[str, Any]) -> dict[str, float]:
    from robo_reward.agents.experts import make_expert_dataset
    from robo_reward.datasets import dataset_reference_scores, load_episodes

    if task not in refs and "refs" in spec:
        demos = [float(ep["rewards"].sum()) for ep in load_episodes(spec["dataset"])]
        refs[task] = {**spec["refs"], "demo_returns": demos}
    if task not in refs:
        try:
            lo, hi = dataset_reference_scores(spec["dataset"])
        except FileNotFoundError:
            start = time.perf_counter()
            rep = make_expert_dataset(task, spec["dataset"], steps=spec["expert_steps"], n_demos=10,
                                      reference_episodes=10, agent_kwargs=spec["agent_kwargs"])
            print(f"[expert] {task}: {rep} in {time.perf_counter() - start:.0f}s", flush=True)
            lo, hi = rep.random_return, rep.expert_return
        demos = [float(ep["rewards"].sum()) for ep in load_episodes(spec["dataset"])]
        refs[task] = {"random": lo, "expert": hi, "demo_returns": demos}
    return refs[task]


def run_one(task: str, method: str, seed: int, spec: dict[str, Any]) -> list[dict[str, float]]:
    from robo_reward.agents.gail import GAILConfig, evaluate, train

    if method == "bc":
        import gymnasium as gym

        from robo_reward.agents.bc import train_bc

        policy = train_bc(spec["dataset"], gym.make(task).action_space, max_demos=10, seed=seed)
        returns = evaluate(policy, task, episodes=10, seed=10_000 + seed, absorbing=False)  # type: ignore[arg-type]
        return [{"timestep": 0.0, "return": float(returns.mean())}]
    cfg = GAILConfig(
        env_id=task, demos=spec["dataset"], max_demos=10, reward="env" if method == "true_reward" else "gail",
        total_steps=spec["steps"], eval_every=spec.get("eval_every", 1000), d_every=20, eval_episodes=5, seed=seed, agent_kwargs=spec["agent_kwargs"],
        reward_kwargs={"penalty": "none"} if method == "gail_nogp" else {},
    )
    result = train(cfg)
    return result["curve"]


def summarise(refs: dict[str, Any]) -> None:
    import pandas as pd

    final = pd.read_csv(OUT / "final.csv")
    curves = pd.read_csv(OUT / "curves.csv")
    lines = ["# Off-policy GAIL benchmark (issue 6)", "",
             "Expert-normalised return (return - random) / (expert - random); IQM over seeds with a 95% "
             "percentile bootstrap CI over seeds (10k resamples). `final` = last evaluation (5 "
             "deterministic episodes, 10 for BC); `late` = mean of the evaluations in the second half of training.",
             "Benchmark script: `benchmarks/gail_bench.py`; raw data: `curves.csv`, `final.csv`.", "",
             "| task | expert | random | demo returns (mean) |", "|---|---|---|---|"]
    for task, r in refs.items():
        lines.append(f"| {task} | {r['expert']:.1f} | {r['random']:.1f} | {np.mean(r['demo_returns']):.1f} |")
    lines += ["", "| task | method | seeds | env steps | final IQM [95% CI] | late IQM [95% CI] | min final | "
              "steps to 0.9 (median; runs reaching) | wall s/run |", "|---|---|---|---|---|---|---|---|---|"]
    for (task, method), grp in final.groupby(["task", "method"], sort=False):
        f, late = grp["final_norm"].to_numpy(), grp["late_norm"].to_numpy()
        lo, hi = bootstrap_ci(f, resamples=10_000)
        llo, lhi = bootstrap_ci(late, resamples=10_000)
        reach = []
        for seed in grp["seed"]:
            c = curves[(curves.task == task) & (curves.method == method) & (curves.seed == seed)]
            hit = c[c["norm"] >= 0.9]["timestep"]
            if len(hit):
                reach.append(float(hit.min()))
        to_09 = f"{np.median(reach):.0f} ({len(reach)}/{len(grp)})" if reach else f"- (0/{len(grp)})"
        lines.append(f"| {task} | {method} | {len(grp)} | {int(grp['steps'].max())} | {iqm(f):.3f} [{lo:.3f}, {hi:.3f}] "
                     f"| {iqm(late):.3f} [{llo:.3f}, {lhi:.3f}] | {f.min():.3f} | {to_09} | {grp['wall_s'].mean():.0f} |")
    lines += ["", "Permutation test, GAIL+GP vs GAIL without GP (difference of means of the final normalised score, "
              "two-sided, scipy.stats.permutation_test):", ""]
    from scipy.stats import permutation_test

    for task in final["task"].unique():
        a = final[(final.task == task) & (final.method == "gail_gp")]["final_norm"].to_numpy()
        b = final[(final.task == task) & (final.method == "gail_nogp")]["final_norm"].to_numpy()
        if len(a) >= 2 and len(b) >= 2:
            res = permutation_test((a, b), lambda x, y: np.mean(x) - np.mean(y), n_resamples=10_000,
                                   alternative="two-sided", random_state=0)
            lines.append(f"- {task}: mean difference {res.statistic:+.3f}, p = {res.pvalue:.3f} "
                         f"(n = {len(a)}, {len(b)}); min over seeds GP {a.min():.3f}, no GP {b.min():.3f}")
    (OUT / "results.md").write_text("\n".join(lines) + "\n")
    _plot(curves)


def _plot(curves: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(curves["task"].unique())
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        sub = curves[curves.task == task]
        for method, grp in sub.groupby("method"):
            if method == "bc":
                ax.axhline(grp["norm"].mean(), ls="--", color="grey", label="bc (0 env steps)")
                continue
            table = grp.pivot_table(index="timestep", columns="seed", values="norm")
            mean, sem = table.mean(1), table.std(1).fillna(0) / np.sqrt(table.count(1))
            ax.plot(table.index, mean, label=f"{method} (n={table.shape[1]})")
            ax.fill_between(table.index, mean - 1.96 * sem, mean + 1.96 * sem, alpha=0.2)
        ax.axhline(1.0, color="k", lw=0.5)
        ax.set(title=task, xlabel="env steps", ylabel="expert-normalised return", ylim=(-0.3, 1.3))
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "curves.png", dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--tasks", nargs="*", default=list(TASKS))
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--summarise-only", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="tiny budgets into results/gail_smoke (checks the script)")
    args = parser.parse_args()
    global OUT
    if args.smoke:
        OUT = OUT.parent / "gail_smoke"
        for spec in TASKS.values():
            spec.update(steps=1200, eval_every=600)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("MINARI_DATASETS_PATH", str(Path("runs/minari").resolve()))
    OUT.mkdir(parents=True, exist_ok=True)
    refs_path = OUT / "references.json"
    refs: dict[str, Any] = json.loads(refs_path.read_text()) if refs_path.exists() else {}
    if args.summarise_only:
        summarise(refs)
        return
    done: set[tuple[str, str, int]] = set()
    if (OUT / "final.csv").exists():
        with open(OUT / "final.csv") as f:
            done = {(r["task"], r["method"], int(r["seed"])) for r in csv.DictReader(f)}
    for seed in range(args.seeds):
        for task in args.tasks:
            ref = ensure_dataset(task, TASKS[task], refs)
            refs_path.write_text(json.dumps(refs, indent=2))
            for method in args.methods:
                if (task, method, seed) in done:
                    continue
                start = time.perf_counter()
                curve = run_one(task, method, seed, TASKS[task])
                wall = time.perf_counter() - start
                span = ref["expert"] - ref["random"]
                norm = [(row["return"] - ref["random"]) / span for row in curve]
                half = [n for row, n in zip(curve, norm, strict=True) if row["timestep"] >= curve[-1]["timestep"] / 2]
                _append(OUT / "curves.csv", ["task", "method", "seed", "timestep", "return", "norm"],
                        [[task, method, seed, row["timestep"], row["return"], n] for row, n in zip(curve, norm,
                                                                                                  strict=True)])
                _append(OUT / "final.csv", ["task", "method", "seed", "steps", "final_return", "final_norm",
                                             "late_norm", "wall_s"],
                        [[task, method, seed, curve[-1]["timestep"], curve[-1]["return"], norm[-1],
                          float(np.mean(half)), wall]])
                print(f"[run] {task} {method} seed={seed}: final {norm[-1]:.3f} late {np.mean(half):.3f} "
                      f"({wall:.0f}s)", flush=True)
                summarise(refs)


def _append(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(header)
        writer.writerows(rows)


if __name__ == "__main__":
    main()
