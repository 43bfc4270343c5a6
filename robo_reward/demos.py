"""Expert demonstrations as :class:`~robo_reward.protocol.TransitionBatch`, read from and written to Minari.

Imitation rewards (GAIL's discriminator, optimal-transport matching, progress models) need the expert's
transitions ``(s, a, s', terminated, truncated)``. The package stores them as Minari datasets (the Farama
offline-RL format, HDF5 underneath), which users already read, and accepts a plain ``.npz`` file as a fallback.

A *source* is any of:

* a Minari dataset id in the local store (``MINARI_DATASETS_PATH``, default ``~/.minari/datasets``);
* a path to a Minari dataset folder (the one holding ``data/``);
* a path to an ``.npz`` file with flat per-transition arrays ``obs, action, next_obs, reward, terminated,
  truncated`` (shapes ``(N, obs_dim)``, ``(N, act_dim)``, ``(N, obs_dim)``, ``(N,)`` x 3) and optionally
  ``episode_id`` (``(N,)`` ints) to keep episodes apart.

Nothing is downloaded: a dataset id that is not in the local store is an error.

>>> import tempfile, os
>>> eps = [dict(observations=np.zeros((3, 2)), actions=np.ones((2, 1)), rewards=np.zeros(2),
...             terminations=np.array([False, True]), truncations=np.array([False, False]))]
>>> path = os.path.join(tempfile.mkdtemp(), "demo.npz")
>>> save_npz(path, eps)
>>> load_transitions(path).num
2
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from robo_reward.protocol import TransitionBatch

NPZ_KEYS = ("obs", "action", "next_obs", "reward", "terminated", "truncated")
Episode = Mapping[str, np.ndarray]


def episodes_to_transitions(episodes: Sequence[Episode]) -> tuple[TransitionBatch, np.ndarray]:
    """Flatten Minari-style episodes (``observations`` has one row more than ``actions``) into transitions.

    Returns the batch and the episode index of every row.
    """
    if not episodes:
        raise ValueError("no episodes given; a demonstration source must hold at least one episode")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in NPZ_KEYS}
    ids = []
    for i, ep in enumerate(episodes):
        obs = np.asarray(ep["observations"], dtype=np.float32)
        act = np.asarray(ep["actions"], dtype=np.float32)
        if obs.ndim != 2 or len(obs) != len(act) + 1:
            raise ValueError(
                f"episode {i}: expected flat observations with one row more than actions, got shapes "
                f"{obs.shape} and {act.shape} (dict or image observations are not supported here)"
            )
        parts["obs"].append(obs[:-1])
        parts["next_obs"].append(obs[1:])
        parts["action"].append(act.reshape(len(act), -1))
        parts["reward"].append(np.asarray(ep["rewards"], dtype=np.float64))
        parts["terminated"].append(np.asarray(ep["terminations"], dtype=bool))
        parts["truncated"].append(np.asarray(ep["truncations"], dtype=bool))
        ids.append(np.full(len(act), i))
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    return TransitionBatch(**cat), np.concatenate(ids)


def load_episodes(source: str | os.PathLike[str], *, max_episodes: int | None = None) -> list[dict[str, np.ndarray]]:
    """Episodes (``observations, actions, rewards, terminations, truncations``) from a source (module doc)."""
    path = Path(source)
    if path.suffix == ".npz":
        if not path.exists():
            raise FileNotFoundError(f"demonstration file {path} does not exist")
        episodes = _npz_episodes(path)
    else:
        episodes = [
            {
                "observations": np.asarray(ep.observations), "actions": np.asarray(ep.actions),
                "rewards": np.asarray(ep.rewards), "terminations": np.asarray(ep.terminations),
                "truncations": np.asarray(ep.truncations),
            }
            for ep in open_minari(source).iterate_episodes()
        ]
    if max_episodes is not None:
        if max_episodes < 1:
            raise ValueError(f"max_episodes must be >= 1, got {max_episodes}")
        episodes = episodes[:max_episodes]
    return episodes


def load_transitions(source: str | os.PathLike[str], *, max_episodes: int | None = None) -> TransitionBatch:
    """All transitions of the first ``max_episodes`` episodes of a source, as one batch."""
    return episodes_to_transitions(load_episodes(source, max_episodes=max_episodes))[0]


def open_minari(source: str | os.PathLike[str]) -> Any:
    """A ``minari.MinariDataset`` from a local dataset id or a dataset folder; never downloads."""
    import minari

    path = Path(source)
    for candidate in (path / "data", path):
        if (candidate / "metadata.json").exists():
            return minari.MinariDataset(candidate)
    try:
        return minari.load_dataset(str(source), download=False)
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"no demonstrations at {str(source)!r}: not an .npz file, not a Minari dataset folder, and not a dataset "
            f"id in the local Minari store ({minari.storage.get_dataset_path()}); create it first, e.g. "
            "`robo-reward gail expert ENV_ID`, or set MINARI_DATASETS_PATH"
        ) from exc


def dataset_reference_scores(source: str | os.PathLike[str]) -> tuple[float | None, float | None]:
    """``(ref_min_score, ref_max_score)`` (random and expert returns) of a Minari dataset, if it records them."""
    if Path(source).suffix == ".npz":
        with np.load(source) as data:
            lo = float(data["ref_min_score"]) if "ref_min_score" in data else None
            hi = float(data["ref_max_score"]) if "ref_max_score" in data else None
        return lo, hi
    ds = open_minari(source)
    meta = ds.storage.metadata
    lo, hi = meta.get("ref_min_score"), meta.get("ref_max_score")
    return (None if lo is None else float(lo)), (None if hi is None else float(hi))


def save_npz(
    path: str | os.PathLike[str], episodes: Sequence[Episode], *, ref_min_score: float | None = None,
    ref_max_score: float | None = None,
) -> None:
    """Write episodes as the flat ``.npz`` format of the module doc."""
    batch, ids = episodes_to_transitions(episodes)
    extra = {}
    if ref_min_score is not None:
        extra["ref_min_score"] = np.float64(ref_min_score)
    if ref_max_score is not None:
        extra["ref_max_score"] = np.float64(ref_max_score)
    np.savez(path, episode_id=ids, **{k: getattr(batch, k) for k in NPZ_KEYS}, **extra)


def save_minari(
    dataset_id: str,
    episodes: Sequence[Episode],
    *,
    env: str | gym.Env,
    ref_min_score: float,
    ref_max_score: float,
    algorithm_name: str = "unspecified",
    description: str = "expert demonstrations made in-house by robo_reward",
) -> Any:
    """Create a Minari dataset in the local store from episodes, with random/expert reference returns.

    Replaces an existing dataset of the same id (the store is a cache of in-house generated demos).
    """
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer

    if dataset_id in minari.list_local_datasets():
        minari.delete_dataset(dataset_id)
    buffers = [
        EpisodeBuffer(
            id=i,
            observations=np.asarray(ep["observations"], dtype=np.float32),
            actions=np.asarray(ep["actions"], dtype=np.float32),
            rewards=np.asarray(ep["rewards"], dtype=np.float64),
            terminations=np.asarray(ep["terminations"], dtype=bool),
            truncations=np.asarray(ep["truncations"], dtype=bool),
            infos={},
        )
        for i, ep in enumerate(episodes)
    ]
    return minari.create_dataset_from_buffers(
        dataset_id=dataset_id, buffer=buffers, env=env, algorithm_name=algorithm_name,
        ref_min_score=ref_min_score, ref_max_score=ref_max_score, description=description,
        data_format="hdf5", author="robo_reward", author_email="n/a", eval_env=env,
    )


def _npz_episodes(path: Path) -> list[dict[str, np.ndarray]]:
    with np.load(path) as data:
        missing = [k for k in NPZ_KEYS if k not in data]
        if missing:
            raise KeyError(f"{path} lacks arrays {missing}; a demonstration .npz needs {list(NPZ_KEYS)}")
        arrays = {k: data[k] for k in NPZ_KEYS}
        ids = data["episode_id"] if "episode_id" in data else np.zeros(len(arrays["reward"]), dtype=int)
    episodes = []
    for i in np.unique(ids):
        rows = ids == i
        obs = arrays["obs"][rows]
        episodes.append({
            "observations": np.concatenate([obs, arrays["next_obs"][rows][-1:]]),
            "actions": arrays["action"][rows], "rewards": arrays["reward"][rows],
            "terminations": arrays["terminated"][rows], "truncations": arrays["truncated"][rows],
        })
    return episodes
