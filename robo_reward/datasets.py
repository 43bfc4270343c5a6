"""Demonstration datasets in Minari's format (Farama's offline-RL format, HDF5 underneath), for every method.

Minari is what users of D4RL-style data already read, and it keeps the env spec with the data so
``dataset.recover_environment()`` rebuilds the exact variant. Per episode a dataset holds ``observations`` (T+1, a
dict of arrays in pixel modes: camera frames are stored losslessly unless ``jpeg=True``), ``actions``,
``rewards``, ``terminations`` and ``truncations`` (T each), and ``infos`` (T+1: the reset info, then each
step's). Phase-labelled demos carry ``infos["expert_phase"]`` (entry t: the phase of the action chosen at t), from
which :func:`keyframes` gives K_0..K_N. ``robo_reward.envs.demos`` records the task suite's scripted experts into
this format; any other recorder that fills the same fields works with every method that reads demos.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np


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


def keyframes(phases: Sequence[int], num_phases: int) -> np.ndarray:
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
    import minari

    path = _resolve(dataset, root)
    ds = minari.MinariDataset(path)
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


def _resolve(dataset: str | os.PathLike, root: str | os.PathLike | None) -> Path:
    """The ``data`` folder Minari reads: from a dataset folder, a ``data`` folder or a dataset id."""
    p = Path(dataset)
    for candidate in (p / "data", p):
        if (candidate / "metadata.json").exists():
            return candidate
    with _minari_root(root):
        from minari.storage import get_dataset_path

        by_id = Path(get_dataset_path(str(dataset))) / "data"
    if (by_id / "metadata.json").exists():
        return by_id
    raise FileNotFoundError(
        f"no Minari dataset at {str(dataset)!r}, nor with that id under {by_id.parents[1]}"
    )


@contextlib.contextmanager
def _minari_root(root: str | os.PathLike | None) -> Iterator[None]:
    """Point Minari at ``root`` for the duration (it reads ``MINARI_DATASETS_PATH`` on every call)."""
    if root is None:
        yield
        return
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if old is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = old
