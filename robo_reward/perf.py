"""Speed of the reward path: SB3 VecEnv steps/s raw, with a batched MLP reward, and with one call per env.

The cost to beat is the per-call overhead of the model: the batched path makes one ``inference_mode`` forward
pass per vector step on a zero-copy float32 view of the observations; the per-env path calls the same net once
per env, as many hand-written reward wrappers do. Time is this process's CPU time (everything runs in it with
``DummyVecEnv``), so other jobs on a shared machine slow the measurement less than they would wall time; modes
are interleaved over repeats and ratios are to ``raw`` within the same run.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv

from robo_reward.models import MLPReward, as_tensor
from robo_reward.protocol import FunctionReward, TransitionBatch
from robo_reward.sb3 import RewardVecEnvWrapper


class TorchMLPReward(MLPReward):
    """The same MLP run by torch (eager, inference mode) instead of the numpy fast path."""

    def infer(self, batch: TransitionBatch) -> np.ndarray:
        with torch.inference_mode():
            return self.forward(batch).numpy().astype(np.float64)


class PerEnvMLPReward(MLPReward):
    """The same MLP called once per env in torch (the pattern the batched protocol replaces)."""

    def infer(self, batch: TransitionBatch) -> np.ndarray:
        assert self.module is not None
        feats = self.features(batch)
        with torch.inference_mode():
            return np.array([self.module(as_tensor(feats[i : i + 1])).item() for i in range(batch.num)])


def _venv(mode: str, env_id: str, n_envs: int, hidden: tuple[int, ...]) -> VecEnv:
    venv = make_vec_env(env_id, n_envs=n_envs, seed=0)
    if mode == "raw":
        return venv
    if mode == "numpy":
        return RewardVecEnvWrapper(venv, FunctionReward(lambda b: -np.square(b.action).sum(1), label="ctrl"))
    models = {"batched_mlp": MLPReward, "batched_mlp_torch": TorchMLPReward, "per_env_mlp": PerEnvMLPReward}
    return RewardVecEnvWrapper(venv, models[mode](hidden=hidden))


def _steps_per_second(venv: VecEnv, steps: int) -> float:
    n = venv.num_envs
    space = venv.action_space
    actions = np.stack([space.sample() for _ in range(64)])  # type: ignore[union-attr]
    actions = np.repeat(actions[:, None], n, axis=1)
    venv.reset()
    start = time.process_time()
    for t in range(steps):
        venv.step(actions[t % 64])
    return steps * n / (time.process_time() - start)


def _ppo_steps_per_second(venv: VecEnv, steps: int) -> float:
    """Env steps/s of SB3 PPO collecting and learning (n_steps 256 per env) on ``venv``."""
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", venv, n_steps=256, batch_size=256, n_epochs=5, seed=0, device="cpu")
    start = time.process_time()
    model.learn(steps)
    return model.num_timesteps / (time.process_time() - start)


def run_perf(env_id: str = "HalfCheetah-v5", n_envs: tuple[int, ...] = (1, 8), steps: int = 2000,
             repeats: int = 3, hidden: tuple[int, ...] = (64, 64), out: str | Path | None = None,
             learn_steps: int = 0) -> pd.DataFrame:
    """Measure every mode at every env count; returns (and writes as CSV/markdown) steps/s and ratios to raw.

    With ``learn_steps``, also times SB3 PPO training on the raw env and with the batched MLP reward (the cost
    a user sees in a training run, where the policy's own per-step work dilutes the reward's).
    """
    torch.set_num_threads(1)
    modes = ("raw", "numpy", "batched_mlp", "batched_mlp_torch", "per_env_mlp")
    rows = []
    for n in n_envs:
        venvs = {m: _venv(m, env_id, n, hidden) for m in modes}
        for m in modes:
            _steps_per_second(venvs[m], 100)
        rates: dict[str, list[float]] = {m: [] for m in modes}
        if learn_steps:
            rates.update({"ppo_raw": [], "ppo_batched_mlp": []})
        for _ in range(repeats):
            for m in modes:
                rates[m].append(_steps_per_second(venvs[m], max(1, steps // n)))
            if learn_steps:
                rates["ppo_raw"].append(_ppo_steps_per_second(venvs["raw"], learn_steps))
                rates["ppo_batched_mlp"].append(_ppo_steps_per_second(venvs["batched_mlp"], learn_steps))
        for m, values in rates.items():
            med = float(np.median(values))
            raw = float(np.median(rates["ppo_raw" if m.startswith("ppo_") else "raw"]))
            rows.append({"env": env_id, "n_envs": n, "mode": m, "steps_per_s": med, "ratio_to_raw": med / raw})
        for v in venvs.values():
            v.close()
    table = pd.DataFrame(rows)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "perf.csv", index=False)
        lines = [f"# Reward-path speed on {env_id} (MLP hidden {list(hidden)}, torch threads 1, process CPU time, "
                 f"median of {repeats} interleaved repeats)", "",
                 "| n_envs | mode | env steps/s | ratio to raw |", "|---|---|---|---|"]
        lines += [f"| {r.n_envs} | {r.mode} | {r.steps_per_s:.0f} | {r.ratio_to_raw:.2f} |" for r in table.itertuples()]
        (out / "perf.md").write_text("\n".join(lines) + "\n")
    return table
