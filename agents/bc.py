"""Behavioural cloning from the same demonstrations: the imitation baseline GAIL is compared against.

A deterministic MLP policy ``s -> a`` (tanh output mapped onto the action bounds) fitted by mean-squared error to
the expert's ``(s, a)`` pairs. It needs no env steps; the imitation library's users found it often beats GAIL
(imitation #582), so the benchmark reports it beside GAIL.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from robo_reward.datasets import load_transitions
from robo_reward.methods.gail.forward_model import mlp


class BCPolicy(nn.Module):
    """MLP policy with outputs squashed into the action space's bounds."""

    low: torch.Tensor
    high: torch.Tensor

    def __init__(self, obs_dim: int, action_space: gym.spaces.Box, hidden: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        self.net = mlp(obs_dim, action_space.shape[0], hidden, slope=0.0)
        self.register_buffer("low", torch.as_tensor(action_space.low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(action_space.high, dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.low + 0.5 * (torch.tanh(self.net(obs)) + 1.0) * (self.high - self.low)

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> tuple[np.ndarray, None]:
        """SB3-style ``predict`` so the same evaluation code runs BC and RL policies."""
        with torch.no_grad():
            return self(torch.as_tensor(np.asarray(obs, dtype=np.float32))).numpy(), None


def train_bc(
    demos: str,
    action_space: gym.spaces.Box,
    *,
    max_demos: int | None = 10,
    steps: int = 3000,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
) -> BCPolicy:
    """Fit a :class:`BCPolicy` to the first ``max_demos`` expert episodes."""
    batch = load_transitions(demos, max_episodes=max_demos)
    obs = torch.as_tensor(np.asarray(batch.obs, dtype=np.float32))
    act = torch.as_tensor(np.asarray(batch.action, dtype=np.float32).reshape(batch.num, -1))
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        policy = BCPolicy(obs.shape[1], action_space)
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
    for _ in range(steps):
        idx = torch.randint(0, len(obs), (min(batch_size, len(obs)),), generator=gen)
        loss = nn.functional.mse_loss(policy(obs[idx]), act[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return policy
