"""Warm-start an SB3 actor-critic policy by behaviour cloning on demonstrations before RL.

A learned reward is trustworthy only near the states its training data covered. Robo-Dopamine (arXiv 2512.23703)
runs its RL from pretrained policies (PPO on OpenVLA-OFT, ReinFlow on pi0) or offline-to-online (Cal-QL on the
demo), so early rollouts stay where the progress model is accurate; PPO from scratch wanders off and exploits the
model (``benchmarks/dopamine/reach_80k/NOTE.md``). This module fits the policy's action mean to demonstration
actions by mean-squared error and sets its log standard deviation, leaving the critic untouched: the same warm
start can be given to every design of a benchmark, sparse baseline included.

Config (``agent.warm_start``): ``{dataset: <Minari id or folder>, episodes: N, epochs: 200, lr: 1e-3,
log_std: -1.0}``; the observation key defaults to ``env.policy_obs``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy


def demo_pairs(episodes: Sequence[Any], obs_key: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stack (observation, action) pairs of :class:`robo_reward.datasets.Episode` objects (the last observation
    of each episode has no action and is dropped)."""
    if not episodes:
        raise ValueError("warm start: the demonstration dataset has no episodes")
    obs, actions = [], []
    for ep in episodes:
        o = ep.observations
        if isinstance(o, dict):
            if obs_key is None or obs_key not in o:
                raise KeyError(f"warm start: demonstrations hold dict observations {sorted(o)}; set env.policy_obs "
                               f"(or agent.warm_start.obs_key) to the key the policy sees")
            o = o[obs_key]
        elif obs_key is not None:
            raise KeyError(f"warm start: obs_key {obs_key!r} given but the demonstrations hold flat observations")
        obs.append(np.asarray(o)[: ep.length])
        actions.append(np.asarray(ep.actions))
    return np.concatenate(obs).astype(np.float32), np.concatenate(actions).astype(np.float32)


def _action_mean(policy: ActorCriticPolicy, obs: torch.Tensor) -> torch.Tensor:
    dist = policy.get_distribution(obs)
    assert isinstance(dist, DiagGaussianDistribution)
    return dist.distribution.mean


def behaviour_clone(policy: BasePolicy, obs: np.ndarray, actions: np.ndarray, *, epochs: int = 200,
                    batch_size: int = 256, lr: float = 1e-3, log_std: float | None = -1.0,
                    seed: int = 0) -> float:
    """Fit the Gaussian policy's mean to ``actions`` (clipped to the action space) with Adam on the actor's
    parameters only; set ``log_std`` if given. Returns the final mean-squared error on all pairs."""
    if not isinstance(policy, ActorCriticPolicy) or not isinstance(policy.action_dist, DiagGaussianDistribution):
        raise TypeError(f"warm start needs an actor-critic policy with Gaussian actions (PPO/A2C on a Box action "
                        f"space), got {type(policy).__name__}")
    space = policy.action_space
    assert isinstance(space, gym.spaces.Box)
    if obs.shape[1:] != policy.observation_space.shape:
        raise ValueError(f"warm start: demonstration observations have shape {obs.shape[1:]}, the policy expects "
                         f"{policy.observation_space.shape}")
    if actions.shape[1:] != space.shape:
        raise ValueError(f"warm start: demonstration actions have shape {actions.shape[1:]}, the policy's action "
                         f"space is {space.shape}")
    target = torch.as_tensor(np.clip(actions, space.low, space.high), device=policy.device)
    inputs = torch.as_tensor(obs, device=policy.device)
    actor = [*policy.mlp_extractor.policy_net.parameters(), *policy.action_net.parameters()]
    if policy.share_features_extractor:
        actor += list(policy.features_extractor.parameters())
    else:
        actor += list(policy.pi_features_extractor.parameters())
    optimiser = torch.optim.Adam(actor, lr=lr)
    generator = torch.Generator().manual_seed(seed)
    policy.set_training_mode(True)
    n = len(inputs)
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            mean = _action_mean(policy, inputs[idx])
            loss = torch.nn.functional.mse_loss(mean, target[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    policy.set_training_mode(False)
    if log_std is not None:
        with torch.no_grad():
            policy.log_std.fill_(float(log_std))
    with torch.no_grad():
        return float(torch.nn.functional.mse_loss(_action_mean(policy, inputs), target))
