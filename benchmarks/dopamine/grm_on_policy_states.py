"""How well a Dopamine reward's progress tracks the task's true progress on and off the demonstrations' manifold.

Rolls out 8 envs of an experiment config's task for 100 vector steps with random actions and with the scripted
expert at several action-noise levels, pays the config's Dopamine reward, and reports the mean fused and per-mode
progress against the env's privileged ``info["progress"]`` and their correlation. A GRM that tracks progress on
expert-like states but is biased and uncorrelated on random ones is what an RL policy exploits.

    python benchmarks/dopamine/grm_on_policy_states.py configs/dopamine/reach_full.yaml [--set key=value ...] \\
        [--out benchmarks/dopamine/reach_80k/grm_on_policy_states.md --label adapted]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env import DummyVecEnv

import robo_reward  # noqa: F401  (registers the tasks)
from robo_reward.config import load_config
from robo_reward.envs.experts import make_expert
from robo_reward.runner import build_design
from robo_reward.sb3 import RewardVecEnvWrapper

KEYS = ("phi", "phi_incremental", "phi_forward", "phi_backward")
POLICIES = (("random", 0.0), ("expert", 0.0), ("expert", 0.3), ("expert", 0.8))


def rollout(cfg_path: str, overrides: list[str], policy: str, noise: float, n_envs: int = 8,
            steps: int = 100) -> np.ndarray:
    """Rows of (true progress, fused, incremental, forward, backward) for every env step."""
    cfg = load_config(cfg_path, overrides)
    term = cfg.reward.terms[0]["name"]
    venv = DummyVecEnv([lambda: gym.make(cfg.env.id, **cfg.env.kwargs)] * n_envs)
    reward = build_design(cfg.reward)
    wrapped = RewardVecEnvWrapper(venv, reward)
    reward.set_discount(0.99)
    venv.seed(0)
    venv.action_space.seed(0)
    wrapped.reset()
    experts = [make_expert(e, noise=noise, seed=i) for i, e in enumerate(venv.envs)]
    for e in experts:
        e.reset()
    rows = []
    for _ in range(steps):
        if policy == "random":
            actions = np.stack([venv.action_space.sample() for _ in range(n_envs)])
        else:
            actions = np.stack([e.act().action for e in experts])
        _, _, dones, infos = wrapped.step(actions)
        for i, info in enumerate(infos):
            rows.append([info["progress"]] + [info[f"reward/{term}/{k}"] for k in KEYS])
            if dones[i]:
                experts[i].reset()
    wrapped.close()
    return np.asarray(rows, dtype=np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--label", default="GRM")
    parser.add_argument("--out", type=Path, default=None, help="append the table rows to this markdown file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    header = ("| GRM | rollouts | true progress | fused | incremental | forward | backward | corr(true, fused) |\n"
              "|---|---|---|---|---|---|---|---|\n")
    lines = []
    for policy, noise in POLICIES:
        r = rollout(args.config, args.overrides, policy, noise)
        corr = np.corrcoef(r[:, 0], r[:, 1])[0, 1]
        name = "random actions" if policy == "random" else f"expert, noise {noise}"
        lines.append(f"| {args.label} | {name} | " + " | ".join(f"{v:.3f}" for v in r.mean(0)) + f" | {corr:.2f} |")
        print(lines[-1], flush=True)
    if args.out is not None:
        new = not args.out.exists()
        with open(args.out, "a") as f:
            f.write((header if new else "") + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
