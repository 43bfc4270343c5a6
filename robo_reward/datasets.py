"""Demonstration datasets in Minari's format (Farama's offline-RL format, HDF5 underneath), for every method.

Minari is what users of D4RL-style data already read, and it keeps the env spec with the data so
``dataset.recover_environment()`` rebuilds the exact variant. Per episode a dataset holds ``observations`` (T+1, a
dict of arrays in pixel modes: camera frames are stored losslessly unless ``jpeg=True``), ``actions``,
``rewards``, ``terminations`` and ``truncations`` (T each), and ``infos`` (T+1: the reset info, then each
step's). Phase-labelled demos carry ``infos["expert_phase"]`` (entry t: the phase of the action chosen at t), from
which :func:`keyframes` gives K_0..K_N. ``robo_reward.envs.demos`` records the task suite's scripted experts into
this format; any other recorder that fills the same fields works with every method that reads demos.

Imitation rewards (GAIL's discriminator) read the same datasets as flat transitions ``(s, a, s', terminated,
truncated)`` (:func:`load_transitions`), or a plain ``.npz`` file with the arrays ``obs, action, next_obs,
reward, terminated, truncated`` (and optionally ``episode_id``). Nothing is downloaded: a dataset id that is not
in the local store is an error.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from robo_reward.protocol import TransitionBatch


@dataclass
class Episode:
    """One recorded episode, arrays stacked over time (observations and infos have T+1 rows)."""

    observations: np.ndarray | dict[str, np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    infos: dict[str, np.ndarray]
    seed: int | None = None
    num_phases: int = 0
    env_spec: gym.envs.registration.EnvSpec | None = field(default=None, repr=False)

    @property
    def length(self) -> int:
        return len(self.actions)

    @property
    def success(self) -> bool:
        """Whether the episode ended in success."""
        return bool(self.infos["is_success"][-1])

    @property
    def phases(self) -> np.ndarray:
        """The expert's phase label per observation (T+1)."""
        return self.infos["expert_phase"]

    @property
    def progress(self) -> np.ndarray:
        """The env's privileged progress in [0, 1] per observation (T+1)."""
        return self.infos["progress"]

    @property
    def keyframes(self) -> np.ndarray:
        """Indices K_0..K_N of the observations where each expert phase begins, and the last one."""
        return keyframes(self.phases, self.num_phases)

    def frames(self, camera: str) -> np.ndarray:
        """The camera's frames ``(T+1, H, W, 3)``; needs a dataset collected with pixels."""
        if not isinstance(self.observations, dict) or camera not in self.observations:
            have = sorted(self.observations) if isinstance(self.observations, dict) else "state vectors only"
            raise KeyError(
                f"no frames of camera {camera!r} in this dataset ({have}); collect it with --pixels"
            )
        return self.observations[camera]


def keyframes(phases: Sequence[int] | np.ndarray, num_phases: int) -> np.ndarray:
    """Keyframes K_0..K_N of a demonstration from its per-step phase labels.

    K_j (j < N) is the first step labelled with phase j or later, K_N the last step. Phases the demo never
    entered get the next phase's keyframe, so the result is always non-decreasing and of length N + 1.

    >>> keyframes([0, 0, 1, 1, 1, 2, 2], 3).tolist()
    [0, 2, 5, 6]
    """
    p = np.asarray(phases)
    if p.ndim != 1 or len(p) == 0:
        raise ValueError("phases must be a non-empty 1-D sequence of phase indices")
    running = np.maximum.accumulate(p)
    ks = [int(np.searchsorted(running, j, side="left")) for j in range(num_phases)]
    ks = [min(k, len(p) - 1) for k in ks]
    return np.array([*ks, len(p) - 1])


def write_dataset(
    dataset_id: str,
    episodes: Sequence[Episode],
    *,
    root: str | os.PathLike | None = None,
    overwrite: bool = False,
    jpeg: bool = False,
    description: str | None = None,
    algorithm_name: str = "robo_reward scripted expert",
) -> Path:
    """Write episodes as the Minari dataset ``dataset_id`` under ``root`` (default: Minari's own data root,
    ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``); returns the dataset's folder.

    Frames are stored losslessly unless ``jpeg`` (smaller files, lossy).
    """
    import minari
    from minari.data_collector import EpisodeBuffer
    from minari.dataset.minari_dataset import parse_dataset_id

    parse_dataset_id(dataset_id)
    if not episodes:
        raise ValueError("no episodes to write")
    spec = episodes[0].env_spec
    if spec is None:
        raise ValueError("episodes carry no env spec; record them with rollout_expert on a gym.make env")
    with _minari_root(root):
        from minari.storage import get_dataset_path

        path = Path(get_dataset_path(dataset_id))
        if path.exists():
            if not overwrite:
                raise FileExistsError(
                    f"dataset {dataset_id!r} already exists at {path}; pass overwrite=True (--overwrite)"
                )
            shutil.rmtree(path)
        env = gym.make(spec)
        buffers = [
            EpisodeBuffer(
                id=i,
                seed=ep.seed,
                observations=ep.observations,
                actions=ep.actions,
                rewards=ep.rewards,
                terminations=ep.terminations,
                truncations=ep.truncations,
                infos=ep.infos,
            )
            for i, ep in enumerate(episodes)
        ]
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r"`(code_permalink|author_email)` is set to None")
                minari.create_dataset_from_buffers(
                    dataset_id=dataset_id,
                    buffer=buffers,
                    env=env,
                    eval_env=spec,
                    algorithm_name=algorithm_name,
                    author="robo_reward",
                    description=description or f"Scripted-expert demonstrations on {spec.id}",
                    jpeg_encoding=jpeg,
                )
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        finally:
            env.close()
    return path


def load_demos(dataset: str | os.PathLike, *, root: str | os.PathLike | None = None) -> list[Episode]:
    """Read a demo dataset back: a Minari dataset id (looked up under ``root``) or a dataset folder."""
    ds = open_minari(dataset, root=root)
    spec = ds.spec.env_spec
    num_phases = _num_phases(spec)
    seeds = {int(m["id"]): m.get("seed") for m in ds.storage.get_episode_metadata(ds.episode_indices)}
    out = []
    for ep in ds.iterate_episodes():
        infos = {k: np.asarray(v) for k, v in ep.infos.items()}
        out.append(
            Episode(
                observations=ep.observations,
                actions=np.asarray(ep.actions),
                rewards=np.asarray(ep.rewards),
                terminations=np.asarray(ep.terminations, dtype=bool),
                truncations=np.asarray(ep.truncations, dtype=bool),
                infos=infos,
                seed=seeds.get(int(ep.id)),
                num_phases=num_phases,
                env_spec=spec,
            )
        )
    return out


def _num_phases(spec: gym.envs.registration.EnvSpec | None) -> int:
    if spec is None:
        return 0
    entry = spec.entry_point
    if isinstance(entry, str):
        module, _, name = entry.partition(":")
        import importlib

        entry = getattr(importlib.import_module(module), name)
    return len(getattr(entry, "PHASES", ()))


@contextlib.contextmanager
def _minari_root(root: str | os.PathLike | None) -> Iterator[None]:
    """Point Minari at ``root`` for the duration (it reads ``MINARI_DATASETS_PATH`` on every call). The path is
    made absolute: Minari joins a relative root onto itself when it writes, and the dataset lands nowhere."""
    if root is None:
        yield
        return
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(Path(root).resolve())
    try:
        yield
    finally:
        if old is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


NPZ_KEYS = ("obs", "action", "next_obs", "reward", "terminated", "truncated")
EpisodeArrays = Mapping[str, np.ndarray]
"""An episode as plain arrays: ``observations`` (T+1 rows), ``actions``, ``rewards``, ``terminations``, ``truncations``."""


def episodes_to_transitions(episodes: Sequence[EpisodeArrays]) -> tuple[TransitionBatch, np.ndarray]:
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
    batch = TransitionBatch(cat["obs"], cat["action"], cat["next_obs"], cat["reward"], cat["terminated"],
                            cat["truncated"])
    return batch, np.concatenate(ids)


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


def open_minari(source: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None) -> Any:
    """A ``minari.MinariDataset`` from a dataset folder or a dataset id (in ``root`` or the local store).

    Never downloads: an id that is not stored locally is an error.
    """
    import minari

    path = Path(source)
    for candidate in (path / "data", path):
        if (candidate / "metadata.json").exists():
            return minari.MinariDataset(candidate)
    with _minari_root(root):
        store = minari.storage.get_dataset_path()
        try:
            return minari.load_dataset(str(source), download=False)
        except FileNotFoundError as exc:
            raise FileNotFoundError(
                f"no Minari dataset at {str(source)!r}: not a dataset folder, and not a dataset id in the local "
                f"store ({store}); record it first (`robo-reward collect-demos ...`, `robo-reward gail expert ...`) "
                "or point MINARI_DATASETS_PATH (or root=) at the store that has it"
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
    path: str | os.PathLike[str], episodes: Sequence[EpisodeArrays], *, ref_min_score: float | None = None,
    ref_max_score: float | None = None,
) -> None:
    """Write episodes as the flat ``.npz`` format of the module doc."""
    batch, ids = episodes_to_transitions(episodes)
    extra = {}
    if ref_min_score is not None:
        extra["ref_min_score"] = np.float64(ref_min_score)
    if ref_max_score is not None:
        extra["ref_max_score"] = np.float64(ref_max_score)
    np.savez(path, episode_id=ids, **{k: getattr(batch, k) for k in NPZ_KEYS}, **extra)  # type: ignore[arg-type]


def save_minari(
    dataset_id: str,
    episodes: Sequence[EpisodeArrays],
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
