"""Rollouts of the Push2D task for RAPL: a behaviour family, the expert demo, and the rollout dataset file.

Behaviours are the scripted pusher of :mod:`robo_reward.envs.push2d.expert` with a random detour around the red
zone (``|detour| < 0.4`` goes through it), random action noise and, for some, an early stop (task failures), so
rollouts differ both in the task reward and in the hidden preference. Each rollout keeps its frames (s'_t after
every step), its privileged returns (the oracle ranks by ``preference_return``) and the per-step privileged rewards
``step_preference`` / ``step_task`` that the per-step Spearman of :mod:`.pipeline` compares with a reward's r_t.

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
STEP_SCORES = ("step_preference", "step_task")


def _behaviour(rng: np.random.Generator) -> dict[str, Any]:
    stop = int(rng.integers(10, 46)) if rng.random() < 0.4 else None
    return {"detour": float(rng.uniform(-1.3, 1.3)), "noise": float(rng.uniform(0.0, 0.8)), "stop_after": stop}


def rollout(env: gym.Env, seed: int, **behaviour: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """One episode of the scripted pusher: its frames (T, H, W, 3), the final step's privileged metrics and the
    per-step preference and task rewards (``step_preference``, ``step_task``, arrays of length T)."""
    from robo_reward.envs.push2d.expert import Push2DExpert

    obs, _ = env.reset(seed=seed)
    expert = Push2DExpert(env, seed=seed, **behaviour)
    frames: list[np.ndarray] = []
    preference: list[float] = []
    task: list[float] = []
    done = False
    info: dict[str, Any] = {}
    while not done:
        obs, reward, terminated, truncated, info = env.step(expert.act()[0])
        frames.append(obs["pixels"])
        preference.append(float(info["preference_reward"]))
        task.append(float(reward))
        done = terminated or truncated
    return np.stack(frames), {**{k: float(info[k]) for k in SCORES}, "step_preference": np.asarray(preference),
                              "step_task": np.asarray(task)}


def collect_rollouts(env_id: str, n: int, seed: int, *, frame_stride: int = 1,
                     env_kwargs: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """``n`` rollouts of random behaviours (seeded); frames (and per-step rewards) kept every ``frame_stride`` steps,
    last step included."""
    env = gym.make(env_id, **{**(env_kwargs or {}), "obs_mode": "dict"})
    rng = np.random.default_rng(seed)
    videos: list[np.ndarray] = []
    scores: dict[str, list[Any]] = {k: [] for k in (*SCORES, *STEP_SCORES)}
    for i in range(n):
        frames, info = rollout(env, seed * 100_003 + i, **_behaviour(rng))
        videos.append(frames[frame_stride - 1::frame_stride])
        for k in SCORES:
            scores[k].append(info[k])
        for k in STEP_SCORES:
            scores[k].append(info[k][frame_stride - 1::frame_stride])
    env.close()
    return {"frames": np.stack(videos), **{k: np.asarray(v) for k, v in scores.items()}}


def expert_demo(env_id: str, seed: int = 0, *, env_kwargs: dict[str, Any] | None = None) -> np.ndarray:
    """Frames of the preferred expert (detours around the zone, no noise): the OT reward's reference video."""
    return expert_demos(env_id, 1, seed=seed, env_kwargs=env_kwargs)[0]


def expert_demos(env_id: str, n: int = 1, *, seed: int = 0, env_kwargs: dict[str, Any] | None = None) -> np.ndarray:
    """``n`` preferred expert videos (n, T, H, W, 3): demo i detours around the zone on one side for even i and on
    the other for odd i, from start seed ``seed + i // 2``; ``n = 1`` is the paper's single demo.

    The reference evaluation scores a rollout against the closest of 5 expert demos (see
    :func:`~robo_reward.methods.rapl.sinkhorn.closest_demo_rewards`); demos on both sides of the zone keep a rollout
    that avoids it the other way from being far from every demo. The demos are the scripted expert's, not curated:
    the seed-0 demo touches the zone for 1 of 50 steps, and of the first 6 demos one grazes it for 4 steps and one
    stops short of the goal.
    """
    if n < 1:
        raise ValueError(f"n={n} expert demos; give at least 1")
    env = gym.make(env_id, **{**(env_kwargs or {}), "obs_mode": "dict"})
    videos = [rollout(env, seed + i // 2, detour=1.0 if i % 2 == 0 else -1.0, noise=0.0)[0] for i in range(n)]
    env.close()
    return np.stack(videos)


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
