"""Measurements of the tabletop tasks themselves (no training): env throughput and scripted-expert success.

    python benchmarks/envs_tasks/bench_tasks.py --out benchmarks/envs_tasks     # full run (minutes)
    python benchmarks/envs_tasks/bench_tasks.py --out /tmp/b --quick            # a smoke test

RL on the tasks is benchmarked by ``robo-reward bench`` over configs (``configs/envs_tasks/``), not here.
Writes ``envs_tasks_throughput.csv``, ``envs_tasks_experts.csv`` and a
summary ``envs_tasks.md`` into ``--out``, rewriting the summary after every measurement so a long run leaves
partial results. Throughput is random-action stepping of one env in one process (MuJoCo physics plus, in pixel
mode, software EGL rendering); the machine's load average is recorded next to each number because shared
machines make absolute speeds unreliable, and the pixels/state ratios are measured within the same run.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import robo_reward  # noqa: F401  (registers the tasks)
from robo_reward.envs import TASKS
from robo_reward.envs.demos import rollout_expert

VIEWS: dict[str, tuple[str, tuple[str, ...]]] = {
    "state": ("state", ()),
    "pixels, 2 cameras": ("pixels", ("front", "wrist")),
    "pixels, 3 cameras": ("pixels", ("front", "side", "wrist")),
}


def throughput(
    configs: Sequence[tuple[str, str, Sequence[str]]], steps: int, repeats: int
) -> list[dict[str, Any]]:
    """Median env steps/s of each ``(env_id, obs_mode, cameras)`` over ``repeats`` timed runs of ``steps``
    random-action steps at 64x64; the runs are interleaved across configurations so load changes on a shared
    machine hit them alike."""
    envs = [
        gym.make(env_id, obs_mode=mode, cameras=tuple(cams) or ("front",), image_size=64)
        for env_id, mode, cams in configs
    ]
    actions = np.random.default_rng(0).uniform(-1, 1, size=(steps, 4)).astype(np.float32)
    rates: list[list[float]] = [[] for _ in envs]
    loads: list[float] = []
    for r in range(repeats + 1):
        loads.append(os.getloadavg()[0])
        for k, env in enumerate(envs):
            env.reset(seed=r)
            start = time.perf_counter()
            for a in actions if r else actions[:50]:
                if any(env.step(a)[2:4]):
                    env.reset()
            if r:
                rates[k].append(steps / (time.perf_counter() - start))
    for env in envs:
        env.close()
    load = float(np.mean(loads))
    return [{"steps_per_s": statistics.median(rs), "load_avg_1min": load} for rs in rates]


def expert_success(env_id: str, episodes: int, noise: float) -> dict[str, Any]:
    """Success rate and episode length of the scripted expert over seeds 0..episodes-1."""
    env = gym.make(env_id)
    eps = [rollout_expert(env, seed=s, noise=noise) for s in range(episodes)]
    env.close()
    lengths = [ep.length for ep in eps]
    return {
        "success": float(np.mean([ep.success for ep in eps])),
        "mean_length": float(np.mean(lengths)),
        "max_length": int(np.max(lengths)),
    }


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


class Report:
    """CSV files plus a markdown summary rewritten after every row."""

    def __init__(self, out: Path, argv: dict[str, Any], keep: Sequence[str]) -> None:
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.rows: dict[str, list[dict[str, Any]]] = {"throughput": [], "experts": []}
        self.argv = argv
        for name in self.rows:
            path = out / f"envs_tasks_{name}.csv"
            if name in keep and path.exists():
                with path.open() as f:
                    self.rows[name] = [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]
            else:
                path.unlink(missing_ok=True)

    def add(self, table: str, row: dict[str, Any]) -> None:
        path = self.out / f"envs_tasks_{table}.csv"
        new = not path.exists()
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        self.rows[table].append(row)
        self.write_summary()
        print(table, row, flush=True)

    def write_summary(self) -> None:
        lines = [
            "# Tabletop task benchmarks",
            "",
            f"Written by `python benchmarks/envs_tasks/bench_tasks.py` with {self.argv}. Machine: {platform.processor() or platform.machine()}, "
            f"{len(os.sched_getaffinity(0))} cores available to the process, MUJOCO_GL={os.environ.get('MUJOCO_GL')}, "
            f"software EGL; the machine was shared with other jobs (load averages below). Sections named in "
            "`skip` were kept from the previous run's CSV files.",
            "",
        ]
        if self.rows["throughput"]:
            lines += [
                "## Env steps per second (one env, one process, random actions, 64x64 images)",
                "",
                "| task | observation | steps/s | vs state | load avg (1 min) |",
                "|---|---|---|---|---|",
            ]
            state = {r["task"]: r["steps_per_s"] for r in self.rows["throughput"] if r["view"] == "state"}
            for r in self.rows["throughput"]:
                ratio = r["steps_per_s"] / state[r["task"]] if r["task"] in state else float("nan")
                lines.append(
                    f"| {r['task']} | {r['view']} | {r['steps_per_s']:.0f} | {ratio:.2f} | {r['load_avg_1min']:.1f} |"
                )
            lines.append("")
        if self.rows["experts"]:
            lines += [
                "## Scripted experts (seeds 0..N-1)",
                "",
                "| task | noise | episodes | success | mean length | max length |",
                "|---|---|---|---|---|---|",
            ]
            for r in self.rows["experts"]:
                lines.append(
                    f"| {r['task']} | {r['noise']} | {r['episodes']} | {r['success']:.2f} | "
                    f"{r['mean_length']:.1f} | {r['max_length']} |"
                )
            lines.append("")
        (self.out / "envs_tasks.md").write_text("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    p.add_argument("--quick", action="store_true", help="tiny budgets, for a smoke test")
    p.add_argument("--skip", nargs="*", default=[], choices=["throughput", "experts"])
    p.add_argument("--steps", type=int, default=1500, help="timed steps per throughput measurement")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--expert-episodes", type=int, default=100)
    a = p.parse_args(argv)
    if a.quick:
        a.steps, a.repeats, a.expert_episodes = 200, 1, 10
    report = Report(a.out, {k: v for k, v in vars(a).items() if k != "out"}, keep=a.skip)

    if "throughput" not in a.skip:
        configs = [(task, view, (f"robo_reward/{task}-v0", *VIEWS[view])) for task in TASKS for view in VIEWS]
        rows = throughput([c for *_, c in configs], a.steps, a.repeats)
        for (task, view, _), row in zip(configs, rows, strict=True):
            report.add("throughput", {"task": task, "view": view, **row})
    if "experts" not in a.skip:
        for task in TASKS:
            for noise in (0.0, 0.1, 0.3):
                row = expert_success(f"robo_reward/{task}-v0", a.expert_episodes, noise)
                report.add("experts", {"task": task, "noise": noise, "episodes": a.expert_episodes, **row})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
