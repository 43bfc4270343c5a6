"""Name -> learner class, resolved lazily: SB3, sb3-contrib, and trainers from ``robo_reward.agents`` or plugins.

Trainers added through the ``robo_reward.agents`` entry-point group must behave like an SB3 algorithm
(``cls(policy, env, seed=..., **kwargs)``, ``learn``, ``save``, ``cls.load``, ``predict``).
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Any

ENTRY_POINT_GROUP = "robo_reward.agents"

ALGOS: dict[str, str] = {
    "PPO": "stable_baselines3:PPO",
    "A2C": "stable_baselines3:A2C",
    "SAC": "stable_baselines3:SAC",
    "TD3": "stable_baselines3:TD3",
    "DDPG": "stable_baselines3:DDPG",
    "DQN": "stable_baselines3:DQN",
    "TQC": "sb3_contrib:TQC",
    "CrossQ": "sb3_contrib:CrossQ",
    "RecurrentPPO": "sb3_contrib:RecurrentPPO",
}
OFF_POLICY = {"SAC", "TD3", "DDPG", "DQN", "TQC", "CrossQ"}


def algo_names() -> list[str]:
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        ALGOS.setdefault(ep.name, ep.value)
    return sorted(ALGOS)


def resolve_algo(name: str) -> Any:
    """The learner class registered as ``name``."""
    names = algo_names()
    if name not in ALGOS:
        raise KeyError(f"unknown agent algo '{name}'; available: {', '.join(names)}")
    module, _, attr = ALGOS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def is_off_policy(name: str) -> bool:
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

    return name in OFF_POLICY or issubclass(resolve_algo(name), OffPolicyAlgorithm)

def resolve_policy(name: str) -> Any:
    """A policy given as an SB3 alias (``MlpPolicy``) or a ``"module:Class"`` path (for custom policies, e.g.
    ``robo_reward.agents.beta_policy:BetaPolicy``); aliases pass through for the algorithm to resolve."""
    if ":" not in name:
        return name
    module, _, attr = name.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"agent.policy {name!r} does not name an importable class ({exc}); give an SB3 alias "
                         "such as MlpPolicy or 'package.module:PolicyClass'") from None
