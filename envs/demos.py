"""Scripted-expert demonstrations as Minari datasets, and the loader the reward methods read them with.

Minari (Farama's offline-RL format, HDF5 underneath) is what users of D4RL-style data already read, and it keeps
the env spec with the data so ``dataset.recover_environment()`` rebuilds the exact variant. Per episode it holds
``observations`` (T+1, a dict of arrays in pixel modes: camera frames are stored losslessly unless ``jpeg=True``),
``actions``, ``rewards``, ``terminations`` and ``truncations`` (T each), and ``infos`` (T+1: the reset info, then
each step's). The infos carry the env's privileged ``phase``, ``progress`` and ``is_success`` and the expert's
``expert_phase``: entry t is the phase of the expert when it chose action t (the last entry repeats the last
action's phase), so :func:`~robo_reward.envs.experts.keyframes` of it gives K_0..K_N.

>>> import tempfile, robo_reward
>>> root = tempfile.mkdtemp()
>>> episodes = collect_demos("robo_reward/Reach-v0", episodes=2, seed=0)
>>> path = write_dataset("robo_reward/Reach/expert-v0", episodes, root=root)
>>> demos = load_demos(path)
>>> [d.success for d in demos], demos[0].keyframes.tolist() == [0, len(demos[0].actions)]
([True, True], True)
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

from robo_reward.envs.experts import keyframes, make_expert


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


def default_dataset_id(env_id: str, noise: float, pixels: bool) -> str:
    """``robo_reward/<Task>/expert[-noise<x>][-pixels]-v0`` (a dot in the noise level becomes ``p``)."""
    task = env_id.split("/")[-1].split("-v")[0]
    name = "expert" + (f"-noise{noise:g}".replace(".", "p") if noise else "") + ("-pixels" if pixels else "")
    return f"robo_reward/{task}/{name}-v0"


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


def _stack(items: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    return {k: np.stack([np.asarray(it[k]) for it in items]) for k in items[0]}
