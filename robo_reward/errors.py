"""Mistakes that are the user's to fix, and the cheap checks that find them before anything heavy loads.

A command raises :class:`UserError` (or a subclass: :class:`robo_reward.config.ConfigError` for configs) when
what it was given is wrong: a file, a name, a run folder, a checkpoint. ``robo-reward`` prints the message, which
names the problem and the fix, and exits 2; ``robo-reward --debug ...`` shows the traceback too. Any other
exception is a bug and keeps its traceback.

>>> try:
...     check_env_id("Pendulm-v1")
... except UserError as exc:
...     print(str(exc)[:55])
unknown env id 'Pendulm-v1' (did you mean 'Pendulum-v1'
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Iterable
from pathlib import Path


class UserError(Exception):
    """Something the user gave (a file, a name, a folder, a value) is wrong; the message says what and how to fix it."""


class UnknownNameError(UserError, KeyError):
    """A name that is not registered (env id, agent algo, reward); the message lists the close ones.

    A :class:`KeyError` too, so code that looks names up the dict way keeps working.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be loaded: truncated or corrupt, or written for another config."""


class RunFolderError(UserError, FileNotFoundError):
    """A folder given as a run folder lacks what the command needs (config.yaml, a complete checkpoint)."""


def did_you_mean(name: str, choices: Iterable[str], n: int = 3) -> str:
    """`` (did you mean 'a' or 'b'?)`` for the choices close to ``name`` (case-insensitive), else ``""``.

    A choice with a namespace (``robo_reward/Reach-v0``) also matches by its bare name (``reach-v0``).

    >>> did_you_mean("ppo", ["PPO", "SAC"])
    " (did you mean 'PPO'?)"
    >>> did_you_mean("Reach-v1", ["robo_reward/Reach-v0", "Pendulum-v1"])
    " (did you mean 'robo_reward/Reach-v0'?)"
    """
    by_key: dict[str, str] = {}
    for choice in choices:
        by_key.setdefault(choice.lower(), choice)
        by_key.setdefault(choice.rsplit("/", 1)[-1].lower(), choice)
    close: list[str] = []
    for key in difflib.get_close_matches(name.lower(), list(by_key), n=2 * n, cutoff=0.6):
        if by_key[key] not in close:
            close.append(by_key[key])
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close[:n]) + "?)"


def check_env_id(env_id: str) -> None:
    """Raise :class:`UnknownNameError` if Gymnasium cannot make ``env_id``, naming the registered ids close to it.

    Ids of the form ``"package.module:Env-v0"`` import ``package.module`` first, as :func:`gymnasium.make` does.
    Cheap: nothing is constructed, so commands call it before importing torch.
    """
    import gymnasium as gym

    import robo_reward  # noqa: F401  (registers the package's and plugins' envs)

    name = env_id
    if ":" in env_id:
        module, _, name = env_id.partition(":")
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            raise UnknownNameError(f"env id {env_id!r} names module {module!r}, which cannot be imported ({exc}); "
                                   "install the package that registers the env, or fix env.id") from None
    if name in gym.registry:
        return
    raise UnknownNameError(
        f"unknown env id {env_id!r}{did_you_mean(name, gym.registry)}; set env.id to a registered Gymnasium id "
        "(`robo-reward envs` lists robo_reward's tasks, gymnasium.pprint_registry() every id)")


def run_config_path(run_dir: str | os.PathLike[str]) -> Path:
    """``run_dir/config.yaml``; a :class:`RunFolderError` if ``run_dir`` is not a folder written by ``robo-reward
    train``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"run folder {run_dir} does not exist; give a folder written by `robo-reward train` "
                             "(runs/<name>-s<seed>-<date>/ by default)")
    config = run_dir / "config.yaml"
    if not config.is_file():
        raise RunFolderError(f"{run_dir} is not a run folder: it has no config.yaml; give a folder written by "
                             "`robo-reward train` (config.yaml, checkpoints/, eval.csv)")
    return config
