"""Name -> reward class registry, resolved lazily so ``import robo_reward`` stays light.

A config names a reward by a short string (``potential_shaping``, ``dopamine``); the registry maps it to a
``"module:Class"`` path and imports the module only when a run uses it. Third-party packages add rewards through
the ``robo_reward.rewards`` entry-point group, the way Gymnasium and pytest plugins do::

    [project.entry-points."robo_reward.rewards"]
    my_reward = "my_pkg.rewards:MyReward"
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from collections.abc import Mapping
from typing import Any

from robo_reward.protocol import Reward

ENTRY_POINT_GROUP = "robo_reward.rewards"

_REGISTRY: dict[str, str] = {
    "extrinsic": "robo_reward.shaping:Extrinsic",
    "weighted_sum": "robo_reward.shaping:WeightedSum",
    "potential_shaping": "robo_reward.shaping:PotentialShaping",
    "normalize": "robo_reward.shaping:RunningNormalize",
    "clip": "robo_reward.shaping:Clip",
    "preference_sigmoid": "robo_reward.shaping:PreferenceSigmoid",
    "gated_accumulation": "robo_reward.shaping:GatedAccumulation",
    "process_clip": "robo_reward.shaping:ProcessRewardClip",
    "process_delta": "robo_reward.shaping:ProcessRewardDelta",
    "goal_distance": "robo_reward.potentials:GoalDistanceReward",
    "mlp": "robo_reward.models:MLPReward",
    "info_value": "robo_reward.testing:InfoReward",
    "dopamine": "robo_reward.methods.dopamine:DopamineReward",
    "gail": "robo_reward.methods.gail.reward:GAILReward",
    "byol_explore": "robo_reward.methods.curiosity.byol:BYOLExplore",
    "byol_hindsight": "robo_reward.methods.curiosity.byol:BYOLHindsight",
    "rnd": "robo_reward.methods.curiosity.rnd:RND",
    "carl": "robo_reward.methods.carl:CarlReward",
    "oni_retrieval": "robo_reward.methods.oni:ONIRetrieval",
    "oni_classification": "robo_reward.methods.oni:ONIClassification",
    "oni_ranking": "robo_reward.methods.oni:ONIRanking",
    "carl": "robo_reward.methods.carl:CarlReward",
    "aux_reward": "robo_reward.methods.barfi:AuxReward",
    "aux_potential": "robo_reward.methods.barfi:AuxPotentialShaping",
    "barfi_blend": "robo_reward.methods.barfi:BlendedReward",
}
_entry_points_loaded = False


def register_reward(name: str, target: str, *, overwrite: bool = False) -> None:
    """Register ``target`` (``"module:Class"``) under ``name``."""
    if ":" not in target:
        raise ValueError(f"reward target {target!r} must look like 'package.module:ClassName'")
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
