"""Scripted-expert demonstrations of the task suite, recorded as Minari datasets (see :mod:`robo_reward.datasets`).

The infos carry the env's privileged ``phase``, ``progress`` and ``is_success`` and the expert's ``expert_phase``:
entry t is the phase of the expert when it chose action t (the last entry repeats the last action's phase), so
:func:`robo_reward.datasets.keyframes` of it gives K_0..K_N. ``load_demos`` and ``write_dataset`` live in the core
(``robo_reward.datasets``) so that reward methods read demos without importing the envs; they are re-exported here.

>>> import tempfile, robo_reward
>>> root = tempfile.mkdtemp()
>>> episodes = collect_demos("robo_reward/Reach-v0", episodes=2, seed=0)
>>> path = write_dataset("robo_reward/Reach/expert-v0", episodes, root=root)
>>> demos = load_demos(path)
>>> [d.success for d in demos], demos[0].keyframes.tolist() == [0, len(demos[0].actions)]
([True, True], True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from robo_reward.datasets import Episode, load_demos, write_dataset
from robo_reward.envs.experts import make_expert

__all__ = ["Episode", "collect_demos", "default_dataset_id", "load_demos", "rollout_expert", "write_dataset"]


def rollout_expert(env: gym.Env, *, seed: int, noise: float = 0.0) -> Episode:
    """Run the task's scripted expert for one episode from ``env.reset(seed=seed)``."""
    expert = make_expert(env, noise=noise, seed=seed)
    obs, info = env.reset(seed=seed)
    expert.reset()
    observations, infos, actions, rewards, terms, truncs, phases = [obs], [info], [], [], [], [], []
    done = False
    while not done:
        action, phase = expert.act()
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        infos.append(info)
        actions.append(action)
        rewards.append(reward)
        terms.append(terminated)
        truncs.append(truncated)
        phases.append(phase)
        done = terminated or truncated
    stacked = _stack(infos)
    stacked["expert_phase"] = np.array([*phases, phases[-1]], dtype=np.int64)
    return Episode(
        observations=_stack(observations) if isinstance(obs, dict) else np.stack(observations),
        actions=np.stack(actions).astype(np.float32),
        rewards=np.asarray(rewards, dtype=np.float64),
        terminations=np.asarray(terms, dtype=bool),
        truncations=np.asarray(truncs, dtype=bool),
        infos=stacked,
        seed=seed,
        num_phases=expert.num_phases,
        env_spec=env.spec,
    )


def collect_demos(
    env_id: str,
    *,
    episodes: int,
    noise: float = 0.0,
    pixels: bool = False,
    cameras: Sequence[str] = ("front", "wrist"),
    image_size: int = 64,
    seed: int = 0,
    only_success: bool = False,
    env_kwargs: Mapping[str, Any] | None = None,
    max_attempts: int | None = None,
) -> list[Episode]:
    """Expert episodes on ``env_id`` (episode i from seed ``seed + i``), optionally with camera frames.

    With ``only_success`` failed episodes are dropped and more seeds are tried, up to ``max_attempts`` (default
    ``2 * episodes``) in all.
    """
    if episodes < 1:
        raise ValueError(f"episodes={episodes} must be >= 1")
    kwargs = dict(env_kwargs or {})
    if pixels:
        kwargs.update(obs_mode="state+pixels", cameras=tuple(cameras), image_size=image_size)
    env = gym.make(env_id, **kwargs)
    try:
        out: list[Episode] = []
        attempts = max_attempts or (2 * episodes if only_success else episodes)
        for i in range(attempts):
            ep = rollout_expert(env, seed=seed + i, noise=noise)
            if ep.success or not only_success:
                out.append(ep)
            if len(out) == episodes:
                return out
        if only_success:
            raise RuntimeError(
                f"only {len(out)} of {attempts} expert episodes succeeded on {env_id} (noise={noise}); lower the "
                "noise or raise max_attempts"
            )
        return out
    finally:
        env.close()


def default_dataset_id(env_id: str, noise: float, pixels: bool) -> str:
    """``robo_reward/<Task>/expert[-noise<x>][-pixels]-v0`` (a dot in the noise level becomes ``p``)."""
    task = env_id.split("/")[-1].split("-v")[0]
    name = "expert" + (f"-noise{noise:g}".replace(".", "p") if noise else "") + ("-pixels" if pixels else "")
    return f"robo_reward/{task}/{name}-v0"


def _stack(items: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    return {k: np.stack([np.asarray(it[k]) for it in items]) for k in items[0]}
