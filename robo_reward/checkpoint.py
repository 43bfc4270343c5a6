"""Saving and loading rewards and other run artefacts, atomically.

A reward checkpoint holds the reward's class, its registry spec (so it can be rebuilt from plain data), the
spaces it was bound to, and its ``state_dict``. Files are written to a temporary name and renamed, so a run killed
mid-write never leaves a truncated checkpoint. Checkpoints are pickles (like SB3's): load only files you trust.
A file that is missing, unreadable or saved from another reward raises :class:`CheckpointError` naming it.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from robo_reward.errors import CheckpointError
from robo_reward.protocol import Reward, RewardError
from robo_reward.registry import build_reward

FORMAT = 1


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)`` and rename the result onto ``path`` (same directory, so the rename is atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _class_path(obj: object) -> str:
    return f"{type(obj).__module__}:{type(obj).__qualname__}"


def save_reward(reward: Reward, path: str | os.PathLike[str]) -> Path:
    """Write ``reward`` (spec, bound spaces and state) to ``path`` atomically."""
    payload = {
        "format": FORMAT, "class": _class_path(reward), "spec": reward.spec,
        "observation_space": reward.observation_space, "action_space": reward.action_space,
        "state": reward.state_dict(),
    }
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


UNREADABLE = (OSError, EOFError, RuntimeError, ValueError, KeyError, pickle.UnpicklingError, zipfile.BadZipFile,
              AttributeError, ImportError)
"""What loading a damaged or foreign pickle/zip raises (torch, pickle, zipfile and SB3 loaders)."""


def _read(path: str | os.PathLike[str]) -> dict[str, Any]:
    if not Path(path).is_file():
        raise CheckpointError(f"reward checkpoint {path} does not exist; check the path (reward.checkpoint, or a run "
                              "folder's checkpoints/step_N/reward.pt)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except UNREADABLE as exc:
        raise CheckpointError(f"reward checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); the file is "
                              "truncated or corrupt: save it again, or use an earlier checkpoint") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a robo_reward reward checkpoint (format {FORMAT}); give a file "
                              "written by robo_reward.checkpoint.save_reward (a run's reward.pt)")
    return payload


def _load_state(reward: Reward, state: dict[str, Any], path: str | os.PathLike[str]) -> None:
    try:
        reward.load_state_dict(state)
    except (RewardError, KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"reward checkpoint {path} does not fit this reward '{reward.name}' "
                              f"({type(exc).__name__}: {exc}); load it into a reward built from the config it was "
                              "saved with") from exc


def load_reward_state(reward: Reward, path: str | os.PathLike[str]) -> None:
    """Load the state saved at ``path`` into an existing (bound) reward of the same class."""
    payload = _read(path)
    if payload["class"] != _class_path(reward):
        raise CheckpointError(f"checkpoint {path} holds a {payload['class']} reward, not a {_class_path(reward)}; "
                              "load it into a reward built from the same config")
    _load_state(reward, payload["state"], path)


def load_reward(path: str | os.PathLike[str]) -> Reward:
    """Rebuild a reward from its checkpoint (it must have been made through the registry) and load its state."""
    payload = _read(path)
    if payload["spec"] is None:
        raise CheckpointError(f"checkpoint {path} has no registry spec; build the reward yourself and call "
                              "load_reward_state(reward, path)")
    reward = build_reward(dict(payload["spec"]["kwargs"], name=payload["spec"]["name"]))
    if payload["observation_space"] is not None:
        reward.bind(payload["observation_space"], payload["action_space"], 1)
    _load_state(reward, payload["state"], path)
    return reward
