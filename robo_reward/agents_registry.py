"""Name -> learner class, resolved lazily: SB3, sb3-contrib, and trainers from ``robo_reward.agents`` or plugins.

Trainers added through the ``robo_reward.agents`` entry-point group must behave like an SB3 algorithm
(``cls(policy, env, seed=..., **kwargs)``, ``learn``, ``save``, ``cls.load``, ``predict``).
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Any

from robo_reward.errors import UnknownNameError, UserError, did_you_mean

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
    "DeformPAM": "robo_reward.agents.deformpam:DeformPAM",
    "BARFI": "robo_reward.agents.barfi:BARFI",
    "EpisodicSAC": "robo_reward.agents.episodic:EpisodicSAC",
    "EpisodicPPO": "robo_reward.agents.episodic:EpisodicPPO",
}
OFF_POLICY = {"SAC", "TD3", "DDPG", "DQN", "TQC", "CrossQ", "EpisodicSAC"}


def algo_names() -> list[str]:
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        ALGOS.setdefault(ep.name, ep.value)
    return sorted(ALGOS)


def check_algo(name: str) -> None:
    """Raise :class:`UnknownNameError` (a KeyError) unless ``name`` is registered; imports nothing."""
    names = algo_names()
    if name not in ALGOS:
        raise UnknownNameError(f"unknown agent.algo {name!r}{did_you_mean(name, names)}; set agent.algo to one of "
                               f"{', '.join(names)}, or register a trainer in the {ENTRY_POINT_GROUP!r} entry-point "
                               "group")


BACKENDS: dict[str, str] = {"rllib": "robo_reward.agents.rllib:train"}
PERF_BACKENDS: dict[str, str] = {"rllib": "robo_reward.agents.rllib:scaling_benchmark"}


def resolve_backend(name: str, table: dict[str, str] = BACKENDS) -> Any:
    """The ``train(cfg, run_dir, seed=, progress=)`` of a non-SB3 training backend (``agent.backend``), or the
    entry of another backend table (``PERF_BACKENDS``)."""
    if name not in table:
        raise KeyError(f"unknown agent.backend '{name}'; available: sb3, {', '.join(sorted(table))}")
    module, _, attr = table[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def resolve_algo(name: str) -> Any:
    """The learner class registered as ``name``."""
    check_algo(name)
    module, _, attr = ALGOS[name].partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module.startswith(exc.name):
            raise
        raise UserError(f"agent.algo {name!r} comes from {module!r}, which is not installed; install it "
                        f"(pip install {exc.name.replace('_', '-')}) or choose another agent.algo") from exc


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
