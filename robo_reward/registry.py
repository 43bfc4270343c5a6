"""Name -> reward class registry, resolved lazily so ``import robo_reward`` stays light.

A config names a reward by a short string (``potential_shaping``, ``dopamine``); the registry maps it to a
``"module:Class"`` path and imports the module only when a run uses it. Every reward registers one way, through
the ``robo_reward.rewards`` entry-point group (the way Gymnasium and pytest plugins do): the package's own
rewards are listed in its ``pyproject.toml`` exactly as a third-party package lists its own::

    [project.entry-points."robo_reward.rewards"]
    my_reward = "my_pkg.rewards:MyReward"

:func:`register_reward` adds one at run time (a notebook, a test).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from collections.abc import Mapping
from typing import Any

from robo_reward.protocol import Reward

ENTRY_POINT_GROUP = "robo_reward.rewards"

_REGISTRY: dict[str, str] = {}  # filled from the entry points, then by register_reward
_entry_points_loaded = False


def register_reward(name: str, target: str, *, overwrite: bool = False) -> None:
    """Register ``target`` (``"module:Class"``) under ``name``."""
    if ":" not in target:
        raise ValueError(f"reward target {target!r} must look like 'package.module:ClassName'")
    _load_entry_points()
    if name in _REGISTRY and _REGISTRY[name] != target and not overwrite:
        raise ValueError(f"reward '{name}' is already registered as {_REGISTRY[name]}; pass overwrite=True")
    _REGISTRY[name] = target


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        _REGISTRY.setdefault(ep.name, ep.value)
    if not _REGISTRY:
        raise RuntimeError("no rewards are registered: the robo_reward.rewards entry points are missing, so the "
                           "package is not installed; run `pip install -e .` in the repository")


def reward_names() -> list[str]:
    """Every registered reward name, built-in and from plugins."""
    _load_entry_points()
    return sorted(_REGISTRY)


def resolve_reward(name: str) -> type[Reward]:
    """The class registered under ``name`` (imported now)."""
    _load_entry_points()
    if name not in _REGISTRY:
        raise KeyError(f"unknown reward '{name}'; registered rewards: {', '.join(sorted(_REGISTRY))}")
    module, _, attr = _REGISTRY[name].partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, Reward)):
        raise TypeError(f"reward '{name}' resolves to {cls!r}, which is not a robo_reward.Reward subclass")
    return cls


def make_reward(name: str, **kwargs: Any) -> Reward:
    """Build a reward by registry name; nested rewards may be given as ``{"name": ..., **kwargs}`` mappings.

    The instance remembers ``{"name", "kwargs"}`` as ``reward.spec`` so wrappers can record plain data.
    """
    cls = resolve_reward(name)
    params = inspect.signature(cls.__init__).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    valid = sorted(k for k, p in params.items() if k != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown and not accepts_any:
        raise TypeError(f"reward '{name}' ({cls.__name__}) has no parameter(s) {unknown}; valid: {valid}")
    try:
        reward = cls(**kwargs)
    except TypeError as exc:
        raise TypeError(f"cannot build reward '{name}' ({cls.__name__}) from {sorted(kwargs)}: {exc}; "
                        f"valid parameters: {valid}") from exc
    reward.spec = {"name": name, "kwargs": dict(kwargs)}
    return reward


def build_reward(spec: Reward | str | Mapping[str, Any]) -> Reward:
    """A reward from an instance, a registry name, or a ``{"name": ..., "kwargs"/...: ...}`` mapping."""
    if isinstance(spec, Reward):
        return spec
    if isinstance(spec, str):
        return make_reward(spec)
    if isinstance(spec, Mapping):
        spec = dict(spec)
        if "name" not in spec:
            raise ValueError(f"reward spec {spec} has no 'name'; registered rewards: {', '.join(reward_names())}")
        name = spec.pop("name")
        kwargs = dict(spec.pop("kwargs", {}))
        kwargs.update(spec)
        return make_reward(name, **kwargs)
    raise TypeError(f"cannot build a reward from {type(spec).__name__}; give a Reward, a name or a mapping")
