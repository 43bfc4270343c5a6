"""Noisy-TV exploration benchmark: SB3 PPO paid by BYOL-Hindsight, BYOL-Explore, RND or the env's own reward.

Each run trains PPO (8 envs) on one noisy-TV task through :class:`robo_reward.sb3.RewardVecEnvWrapper` and
records, over the episodes that end in the last quarter of training: coverage (cells visited in an episode /
cells reachable), the fraction of steps on the TV (``tv_noise``: the remote pressed for the on-demand task, the
TV cell in view for the cell task; on the control, where no noise is shown, remote presses and TV-in-view are
reported instead), success rate and extrinsic return; plus the fraction of reachable cells visited at least once
during the whole run. Each run's row is appended to ``runs.csv`` as soon as it ends and ``summary.md`` (IQM and
95% percentile-bootstrap CI over seeds) is rewritten after every run, so a stopped benchmark keeps its results.

    python benchmarks/noisy_tv.py --out benchmarks/results/noisy_tv --steps 150000
    python benchmarks/noisy_tv.py --summarize benchmarks/results/noisy_tv
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv

import robo_reward  # noqa: F401  (registers the robo_reward/ envs)
from robo_reward.sb3 import RewardCallback, RewardVecEnvWrapper
from robo_reward.stats import bootstrap_ci, iqm

TASKS = {"on_demand": "robo_reward/NoisyTVOnDemand-v0", "cell": "robo_reward/NoisyTVCell-v0",
         "control": "robo_reward/NoisyTVControl-v0"}
METHODS: dict[str, dict[str, Any]] = {
    "hindsight": {"name": "byol_hindsight"},
    "explore": {"name": "byol_explore"},
    "rnd": {"name": "rnd", "hidden": 128, "features": 32, "lr": 1e-3, "epochs": 2},
    "extrinsic": {"name": "extrinsic"},
}
MIXED_WEIGHT = 0.01
N_ENVS, N_STEPS = 8, 128
FIELDS = ["task", "method", "mode", "seed", "steps", "coverage", "tv_fraction", "pressed_fraction",
          "in_view_fraction", "success", "extrinsic_return", "visited_fraction", "episodes", "wall_s"]

# (task, method, mode, seeds): the on-demand comparison with 5 seeds, the rest with 3.
PLAN = [("on_demand", m, "intrinsic", 5) for m in ("hindsight", "explore", "rnd", "extrinsic")] + [
    ("cell", m, "intrinsic", 3) for m in ("hindsight", "explore")] + [
    ("control", m, "intrinsic", 3) for m in ("hindsight", "explore")] + [
    ("on_demand", m, "mixed", 3) for m in ("hindsight", "explore")]


class ExplorationMetrics(BaseCallback):
    """Per-episode coverage, time on the TV and success, and the cells visited over the whole run."""

    def __init__(self) -> None:
        super().__init__()
        self.episodes: list[dict[str, float]] = []
        self.visited: set[tuple[int, int]] = set()
        self._counts = np.zeros((N_ENVS, 4))

    def _on_step(self) -> bool:
        infos, dones = self.locals["infos"], self.locals["dones"]
        for i, info in enumerate(infos):
            self.visited.add(info["agent_pos"])
            self._counts[i] += (1, info["tv_noise"], info["tv_pressed"], info["tv_in_view"])
            if dones[i]:
                n, noise, pressed, in_view = self._counts[i]
                self.episodes.append({
                    "t": self.num_timesteps, "coverage": info["coverage"], "tv_fraction": noise / n,
                    "pressed_fraction": pressed / n, "in_view_fraction": in_view / n,
                    "success": float(info.get("original_env_rew", 0.0) > 0), "extrinsic_return": info.get(
                        "original_env_rew", 0.0)})
                self._counts[i] = 0
        return True


def run(task: str, method: str, mode: str, seed: int, steps: int) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """Train one PPO agent; returns its summary row and its episodes."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    venv = DummyVecEnv([lambda: gym.make(TASKS[task])] * N_ENVS)
    venv.seed(seed)
    spec = dict(METHODS[method])
    if method == "extrinsic":
        extrinsic_weight = 0.0
    else:
        spec.update(seed=seed, coef=1.0 if mode == "intrinsic" else MIXED_WEIGHT, update_every=N_STEPS)
        extrinsic_weight = 0.0 if mode == "intrinsic" else 1.0
    env = RewardVecEnvWrapper(venv, spec, extrinsic_weight=extrinsic_weight)
    model = PPO("MlpPolicy", env, n_steps=N_STEPS, batch_size=256, n_epochs=4, learning_rate=2.5e-4,
                ent_coef=0.01, gamma=0.99, gae_lambda=0.95, seed=seed, device="cpu", verbose=0,
                policy_kwargs={"net_arch": [64, 64]})
    metrics = ExplorationMetrics()
    start = time.perf_counter()
    model.learn(steps, callback=[RewardCallback(), metrics])
    wall = time.perf_counter() - start
    reachable = env.venv.envs[0].unwrapped.num_reachable
    late = [e for e in metrics.episodes if e["t"] > 0.75 * steps] or metrics.episodes[-N_ENVS:]
    row: dict[str, Any] = {"task": task, "method": method, "mode": mode, "seed": seed, "steps": steps,
                           "visited_fraction": len(metrics.visited) / reachable, "episodes": len(late),
                           "wall_s": round(wall, 1)}
    for key in ("coverage", "tv_fraction", "pressed_fraction", "in_view_fraction", "success", "extrinsic_return"):
        row[key] = float(np.mean([e[key] for e in late]))
    env.close()
    return row, metrics.episodes


def summarize(out: Path) -> str:
    """Markdown table of IQM [95% CI] per (task, mode, method) from ``runs.csv``."""
    with open(out / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    groups: dict[tuple[str, str, str], list[dict[str, str]]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["mode"], r["method"]), []).append(r)
    cols = ["coverage", "tv_fraction", "pressed_fraction", "in_view_fraction", "visited_fraction", "success"]
    lines = ["| task | reward | method | seeds | steps | " + " | ".join(cols) + " |",
             "|" + "---|" * (5 + len(cols))]
    for (task, mode, method), rs in sorted(groups.items()):
        cells = []
        for c in cols:
            values = np.array([float(r[c]) for r in rs])
            lo, hi = bootstrap_ci(values)
            cells.append(f"{iqm(values):.3f} [{lo:.3f}, {hi:.3f}]")
        lines.append(f"| {task} | {mode} | {method} | {len(rs)} | {rs[0]['steps']} | " + " | ".join(cells) + " |")
    lines += ["", "Hindsight / Explore (ratio of IQMs, 95% bootstrap CI resampling the seeds of each method):", "",
              "| task | reward | coverage | tv_fraction | pressed_fraction |", "|---|---|---|---|---|"]
    for task, mode in sorted({(t, m) for t, m, _ in groups}):
        if (task, mode, "hindsight") not in groups or (task, mode, "explore") not in groups:
            continue
        cells = []
        for c in ("coverage", "tv_fraction", "pressed_fraction"):
            h = np.array([float(r[c]) for r in groups[(task, mode, "hindsight")]])
            e = np.array([float(r[c]) for r in groups[(task, mode, "explore")]])
            cells.append(ratio_ci(h, e))
        lines.append(f"| {task} | {mode} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text)
    return text


def ratio_ci(num: np.ndarray, den: np.ndarray, n_boot: int = 2000, seed: int = 0) -> str:
    """IQM(num) / IQM(den) with a 95% percentile-bootstrap CI (seeds resampled within each group)."""
    rng = np.random.default_rng(seed)
    point = iqm(num) / max(iqm(den), 1e-9)
    boots = [iqm(rng.choice(num, len(num))) / max(iqm(rng.choice(den, len(den))), 1e-9) for _ in range(n_boot)]
    return f"{point:.3f} [{np.percentile(boots, 2.5):.3f}, {np.percentile(boots, 97.5):.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/noisy_tv"))
    parser.add_argument("--steps", type=int, default=150_000, help="env steps per run (all envs together)")
    parser.add_argument("--only", nargs="*", default=None, help="restrict to task:method:mode entries")
    parser.add_argument("--seeds", type=int, default=None, help="override the number of seeds of every entry")
    parser.add_argument("--summarize", type=Path, default=None, help="only rewrite summary.md of this folder")
    args = parser.parse_args()
    if args.summarize:
        print(summarize(args.summarize))
        return
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    runs_csv = args.out / "runs.csv"
    done = set()
    if runs_csv.exists():
        with open(runs_csv) as f:
            done = {(r["task"], r["method"], r["mode"], int(r["seed"])) for r in csv.DictReader(f)}
    plan = [(t, m, mode, n if args.seeds is None else args.seeds) for t, m, mode, n in PLAN
            if args.only is None or f"{t}:{m}:{mode}" in args.only]
    queue = [(t, m, mode, s) for s in range(max(n for *_, n in plan)) for t, m, mode, n in plan if s < n]
    for task, method, mode, seed in queue:
        if (task, method, mode, seed) in done:
            continue
        row, episodes = run(task, method, mode, seed, args.steps)
        new = not runs_csv.exists()
        with open(runs_csv, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            if new:
                writer.writeheader()
            writer.writerow(row)
        curves = args.out / "curves"
        curves.mkdir(exist_ok=True)
        (curves / f"{task}-{method}-{mode}-{seed}.json").write_text(json.dumps(episodes))
        print(json.dumps(row), flush=True)
        summarize(args.out)


if __name__ == "__main__":
    main()
