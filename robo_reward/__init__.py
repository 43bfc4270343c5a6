"""robo_reward: learned and shaped rewards for embodied and robotics RL, as Gymnasium and SB3 wrappers.

>>> import robo_reward
>>> {'extrinsic', 'potential_shaping'} <= set(robo_reward.reward_names())
True

Heavy pieces (SB3 adapters, torch models, reward methods) load on first use, so this import stays light. Env
plugins (the package's own ``robo_reward.envs`` and third-party ones) register with Gymnasium here through the
``robo_reward.plugins`` entry-point group, which keeps the core free of imports of ``envs``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Any

from robo_reward.protocol import (
    FunctionReward,
    Reward,
    RewardError,
    RewardOutput,
    SpaceMismatchError,
    TransitionBatch,
)
from robo_reward.registry import build_reward, make_reward, register_reward, reward_names

__version__ = "0.1.0"

_LAZY = {
    "RewardWrapper": "robo_reward.wrappers",
    "RewardVectorWrapper": "robo_reward.wrappers",
    "RewardVecEnvWrapper": "robo_reward.sb3",
    "RelabelingReplayBuffer": "robo_reward.sb3",
    "RelabelingDictReplayBuffer": "robo_reward.sb3",
    "RewardCallback": "robo_reward.sb3",
    "PotentialShaping": "robo_reward.shaping",
    "WeightedSum": "robo_reward.shaping",
}

__all__ = [
    "FunctionReward",
    "Reward",
    "RewardError",
    "RewardOutput",
    "SpaceMismatchError",
    "TransitionBatch",
    "build_reward",
    "make_reward",
    "register_reward",
    "reward_names",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'robo_reward' has no attribute {name!r}")


def _load_plugins() -> None:
    for ep in importlib.metadata.entry_points(group="robo_reward.plugins"):
        ep.load()()


_load_plugins()
