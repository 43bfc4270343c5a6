"""Rollouts of the Push2D task for RAPL: a behaviour family, the expert demo, and the rollout dataset file.

Behaviours are the scripted pusher of :mod:`robo_reward.envs.push2d.expert` with a random detour around the red
zone (``|detour| < 0.4`` goes through it), random action noise and, for some, an early stop (task failures), so
rollouts differ both in the task reward and in the hidden preference. Each rollout keeps its frames (s'_t after
every step) and its privileged returns; the oracle ranks by ``preference_return``.

A rollout dataset is an ``.npz`` with ``frames`` (N, T, H, W, 3) uint8 and one array per privileged score; the
labelling page (``robo-reward label``) serves such a file, and preference stores index its rollouts by row.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

SCORES = ("preference_return", "task_return", "zone_time", "is_success")


def _behaviour(rng: np.random.Generator) -> dict[str, Any]:
    stop = int(rng.integers(10, 46)) if rng.random() < 0.4 else None
    return {"detour": float(rng.uniform(-1.3, 1.3)), "noise": float(rng.uniform(0.0, 0.8)), "stop_after": stop}


def rollout(env: gym.Env, seed: int, **behaviour: Any) -> tuple[np.ndarray, dict[str, float]]:
    """One episode of the scripted pusher: its frames (T, H, W, 3) and the final step's privileged metrics."""
    from robo_reward.envs.push2d.expert import Push2DExpert

    obs, _ = env.reset(seed=seed)
    expert = Push2DExpert(env, seed=seed, **behaviour)
    frames: list[np.ndarray] = []
    done = False
    info: dict[str, Any] = {}
    while not done:
        obs, _, terminated, truncated, info = env.step(expert.act()[0])
        frames.append(obs["pixels"])
        done = terminated or truncated
    return np.stack(frames), {k: float(info[k]) for k in SCORES}


def collect_rollouts(env_id: str, n: int, seed: int, *, frame_stride: int = 1,
                     env_kwargs: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """``n`` rollouts of random behaviours (seeded); frames kept every ``frame_stride`` steps, last step included."""
    env = gym.make(env_id, **{**(env_kwargs or {}), "obs_mode": "dict"})
    rng = np.random.default_rng(seed)
    videos: list[np.ndarray] = []
    scores: dict[str, list[float]] = {k: [] for k in SCORES}
    for i in range(n):
        frames, info = rollout(env, seed * 100_003 + i, **_behaviour(rng))
        videos.append(frames[frame_stride - 1::frame_stride])
        for k in SCORES:
            scores[k].append(info[k])
    env.close()
    return {"frames": np.stack(videos), **{k: np.asarray(v) for k, v in scores.items()}}


def expert_demo(env_id: str, seed: int = 0, *, env_kwargs: dict[str, Any] | None = None) -> np.ndarray:
    """Frames of the preferred expert (detours around the zone, no noise): the OT reward's reference video."""
    env = gym.make(env_id, **{**(env_kwargs or {}), "obs_mode": "dict"})
    frames, _ = rollout(env, seed, detour=1.0, noise=0.0)
    env.close()
    return frames


def save_rollouts(path: str | os.PathLike[str], data: dict[str, np.ndarray]) -> Path:
    """Write a rollout dataset (``frames`` plus score arrays)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **data)  # type: ignore[arg-type]
    return path


def load_rollouts(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a rollout dataset, checking it holds (N, T, H, W, 3) uint8 frames."""
    with np.load(path) as f:
        data = {k: f[k] for k in f.files}
    frames = data.get("frames")
    if frames is None or frames.ndim != 5 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        shape = None if frames is None else (frames.shape, str(frames.dtype))
        raise ValueError(f"{path} is not a rollout dataset: it needs 'frames' of shape (N, T, H, W, 3) uint8, got "
                         f"{shape}; write one with robo_reward.methods.rapl.data.save_rollouts")
    return data
