"""SAC and PPO that learn from episode-end rewards (:mod:`robo_reward.episodic`), e.g. RAPL's OT reward.

``EpisodicSAC`` stores transitions in an :class:`~robo_reward.episodic.EpisodicReplayBuffer`, which adds each
finished episode's rewards to its slots when the episode ends (before any later gradient step samples them).
``EpisodicPPO`` collects into an :class:`~robo_reward.episodic.EpisodicRolloutBuffer`, which does the same before
``compute_returns_and_advantage``, so GAE sees the episode-end rewards; its ``n_steps`` must be a multiple of the
episode length (the buffer raises otherwise). Both attach the env's episodic reward whenever learning starts; on an env without one they are plain SAC and PPO.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from stable_baselines3 import PPO, SAC

from robo_reward.episodic import (
    EpisodicDictReplayBuffer,
    EpisodicReplayBuffer,
    EpisodicRolloutBuffer,
    attach_episodic,
)


def _env_space(env: Any) -> gym.Space | None:
    return getattr(env, "observation_space", None)


class EpisodicSAC(SAC):
    """SAC whose replay buffer receives episode-end rewards (``replay_buffer_class`` defaults to an episodic one)."""

    def __init__(self, policy: Any, env: Any, **kwargs: Any) -> None:
        if kwargs.get("replay_buffer_class") is None:
            dict_obs = isinstance(_env_space(env), gym.spaces.Dict)
            kwargs["replay_buffer_class"] = EpisodicDictReplayBuffer if dict_obs else EpisodicReplayBuffer
        super().__init__(policy, env, **kwargs)

    def _setup_learn(self, *args: Any, **kwargs: Any) -> Any:
        out = super()._setup_learn(*args, **kwargs)
        attach_episodic(self)
        return out


class EpisodicPPO(PPO):
    """PPO whose rollout buffer receives episode-end rewards before returns and advantages are computed."""

    def __init__(self, policy: Any, env: Any, **kwargs: Any) -> None:
        if isinstance(_env_space(env), gym.spaces.Dict):
            raise ValueError("EpisodicPPO supports array observations; show the policy one key (env.policy_obs)")
        kwargs.setdefault("rollout_buffer_class", EpisodicRolloutBuffer)
        super().__init__(policy, env, **kwargs)

    def _setup_learn(self, *args: Any, **kwargs: Any) -> Any:
        out = super()._setup_learn(*args, **kwargs)
        attach_episodic(self)
        return out
