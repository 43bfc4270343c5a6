"""A Beta action distribution for SB3's PPO/A2C (Chou et al., ICML 2017), as CaRL trains its driving policy.

Each action dimension is ``low + (high - low) * x`` with ``x ~ Beta(alpha, beta)`` on ``[0, 1]``; the actor head
outputs ``alpha`` and ``beta`` through ``softplus(.) + 1``, so both stay >= 1 and the density is unimodal
(CaRL's choice). Unlike a clipped Gaussian, the distribution puts no mass outside the action bounds, so full
braking or full steering is a reachable mode rather than a clipping artefact.

SB3 integration: the policy reports ``squash_output``, so actions live in ``[-1, 1]`` (``y = 2x - 1``) and
SB3 rescales them to the action space; log-probabilities are those of ``y`` (the Beta's minus ``log 2`` per
dimension). Use it in a config as ``agent.policy: robo_reward.agents.beta_policy:BetaPolicy``.

>>> import gymnasium as gym
>>> from stable_baselines3 import PPO
>>> model = PPO(BetaPolicy, gym.make("Pendulum-v1"), n_steps=64, batch_size=64, seed=0)
>>> float(abs(model.predict(np.zeros(3, np.float32))[0][0])) <= 2.0
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import Distribution, sum_independent_dims
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn
from torch.distributions import Beta

EPS = 1e-6


class BetaDistribution(Distribution):
    """Independent Beta distributions over ``action_dim`` dimensions, reported on ``[-1, 1]``.

    :param action_dim: number of action dimensions.
    """

    distribution: Beta  # type: ignore[assignment]

    def __init__(self, action_dim: int) -> None:
        super().__init__()
        self.action_dim = int(action_dim)

    def proba_distribution_net(self, latent_dim: int) -> nn.Module:  # type: ignore[override]
        """The head mapping the actor's latent to ``2 * action_dim`` pre-softplus concentrations."""
        return nn.Linear(latent_dim, 2 * self.action_dim)

    def proba_distribution(self, params: th.Tensor) -> BetaDistribution:  # type: ignore[override]
        alpha, beta = (nn.functional.softplus(params) + 1.0).chunk(2, dim=-1)
        self.distribution = Beta(alpha, beta)
        return self

    def log_prob(self, actions: th.Tensor) -> th.Tensor:
        x = ((actions + 1.0) / 2.0).clamp(EPS, 1.0 - EPS)
        return sum_independent_dims(self.distribution.log_prob(x)) - self.action_dim * float(np.log(2.0))

    def entropy(self) -> th.Tensor:
        return sum_independent_dims(self.distribution.entropy()) + self.action_dim * float(np.log(2.0))

    def sample(self) -> th.Tensor:
        return 2.0 * self.distribution.rsample() - 1.0

    def mode(self) -> th.Tensor:
        """The density's peak ``(alpha - 1) / (alpha + beta - 2)`` (the mean where both are 1)."""
        a, b = self.distribution.concentration1, self.distribution.concentration0
        peak = th.where(a + b > 2.0 + EPS, (a - 1.0) / (a + b - 2.0).clamp_min(EPS), a / (a + b))
        return 2.0 * peak - 1.0

    def actions_from_params(self, params: th.Tensor, deterministic: bool = False) -> th.Tensor:  # type: ignore[override]
        self.proba_distribution(params)
        return self.get_actions(deterministic=deterministic)

    def log_prob_from_params(self, params: th.Tensor) -> tuple[th.Tensor, th.Tensor]:  # type: ignore[override]
        actions = self.actions_from_params(params)
        return actions, self.log_prob(actions)


class BetaPolicy(ActorCriticPolicy):
    """SB3 actor-critic MLP policy with a Beta action distribution (Box action spaces only).

    Takes :class:`~stable_baselines3.common.policies.ActorCriticPolicy`'s arguments; ``use_sde`` and
    ``squash_output`` are fixed (off, on).
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Any,
                 *args: Any, **kwargs: Any) -> None:
        if not isinstance(action_space, spaces.Box):
            raise TypeError(f"BetaPolicy needs a Box action space, got {action_space}; use MlpPolicy for discrete "
                            "actions")
        if kwargs.pop("use_sde", False):
            raise ValueError("BetaPolicy does not support use_sde=True; drop agent.kwargs.use_sde")
        kwargs.pop("squash_output", None)
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)
        self._squash_output = True  # SB3 allows the flag only with gSDE through __init__; it means "rescale"

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        self.action_dist = BetaDistribution(int(np.prod(self.action_space.shape)))  # type: ignore[arg-type]
        head = nn.Linear(self.mlp_extractor.latent_dim_pi, 2 * self.action_dist.action_dim)
        if self.ortho_init:
            nn.init.orthogonal_(head.weight, gain=0.01)
            nn.init.zeros_(head.bias)
        self.action_net = head
        del self.log_std
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1),  # type: ignore[call-arg]
                                              **self.optimizer_kwargs)

    def _get_action_dist_from_latent(self, latent_pi: th.Tensor) -> Distribution:
        return self.action_dist.proba_distribution(self.action_net(latent_pi))  # type: ignore[attr-defined]
