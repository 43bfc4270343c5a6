"""Pessimistic reward preconditioning: scale a reward down where the learned dynamics are locally non-Lipschitz.

Blondé et al. 2022 (arXiv 2006.16785), reward type "gail_mod_f". A forward model ``f(s, a) -> s'`` (MLP 100-100,
LeakyReLU 0.1) is fitted to the learner's transitions. For each transition

    g = max(0, ||grad_(s,a) f|| - k_f)^2            (k_f = 9)
    m = clamp(exp(-g / sigma_g), 0.7, 1)

where ``sigma_g`` is the standard deviation of the last 10 batch means of ``g``; the reward paid is ``r * m``.

Reconstructions (the paper leaves them open): ``||grad f||`` of the vector-valued ``f`` is the Frobenius norm of
its Jacobian (an upper bound on its spectral norm); the batch means that feed ``sigma_g`` are recorded when the
model is trained (:meth:`PessimisticMultiplier.update`), so computing a reward never changes state; before two
batch means exist the multiplier is 1 (an untrained model is no evidence of rough dynamics), and a zero ``sigma_g``
is floored at 1e-8 (any excess then gets the floor 0.7).

>>> pm = PessimisticMultiplier(2, 1, seed=0)
>>> m = pm(torch.zeros(4, 2), torch.zeros(4, 1))
>>> bool(((m >= 0.7) & (m <= 1.0)).all())
True
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def mlp(n_in: int, n_out: int, hidden: Sequence[int] = (100, 100), slope: float = 0.1) -> nn.Sequential:
    """Plain MLP with LeakyReLU hidden layers."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(n_in, h), nn.LeakyReLU(slope)]
        n_in = h
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


class PessimisticMultiplier(nn.Module):
    """Learned forward model and the reward multiplier ``clamp(exp(-g / sigma_g), floor, 1)`` (module doc).

    :param obs_dim: state size (the forward model predicts ``s'`` of this size).
    :param act_dim: action size.
    :param k_f: gradient-norm threshold below which the dynamics count as smooth (paper: 9).
    :param floor: lower clamp of the multiplier (paper: 0.7).
    :param history: number of batch means of ``g`` whose std normalises ``g`` (paper: 10).
    :param model: a forward model ``(s, a) -> s'`` to use instead of the default MLP (tests pass a known one).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        *,
        k_f: float = 9.0,
        floor: float = 0.7,
        history: int = 10,
        hidden: Sequence[int] = (100, 100),
        lr: float = 1e-3,
        model: nn.Module | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not 0.0 <= floor <= 1.0:
            raise ValueError(f"multiplier floor must lie in [0, 1], got {floor}")
        if history < 2:
            raise ValueError(f"history must be >= 2 to have a standard deviation, got {history}")
        self.obs_dim, self.act_dim, self.k_f, self.floor = obs_dim, act_dim, k_f, floor
        if model is None:
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                model = mlp(obs_dim + act_dim, obs_dim, hidden)
        self.model = model
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr) if any(
            p.requires_grad for p in self.model.parameters()
        ) else None
        self.batch_means: deque[float] = deque(maxlen=history)

    def predict(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.model(torch.cat([obs, act], dim=1))

    def jacobian_norm(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Per-row Frobenius norm of ``d f(s, a) / d (s, a)``."""
        x = torch.cat([obs, act], dim=1).detach()

        def single(row: torch.Tensor) -> torch.Tensor:
            return self.model(row.unsqueeze(0)).squeeze(0)

        jac = torch.func.vmap(torch.func.jacrev(single))(x)
        return jac.flatten(1).norm(dim=1)

    def excess(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """``g = max(0, ||grad f|| - k_f)^2`` per row."""
        return (self.jacobian_norm(obs, act) - self.k_f).clamp(min=0.0).pow(2)

    @property
    def sigma(self) -> float | None:
        """Std of the recorded batch means of ``g`` (None before two exist)."""
        if len(self.batch_means) < 2:
            return None
        return max(float(np.std(np.asarray(self.batch_means))), 1e-8)

    def record(self, obs: torch.Tensor, act: torch.Tensor) -> float:
        """Push this batch's mean ``g`` into the history; returns it."""
        with torch.no_grad():
            mean_g = float(self.excess(obs, act).mean())
        self.batch_means.append(mean_g)
        return mean_g

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """The multiplier in ``[floor, 1]`` per row."""
        sigma = self.sigma
        if sigma is None:
            return torch.ones(len(obs))
        with torch.no_grad():
            g = self.excess(obs, act)
        return torch.exp(-g / sigma).clamp(min=self.floor, max=1.0)

    def update(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> dict[str, float]:
        """One regression step of ``f`` on ``(s, a) -> s'``, then record the batch mean of ``g``."""
        metrics: dict[str, float] = {}
        if self.optimizer is not None:
            loss = F.mse_loss(self.predict(obs, act), next_obs)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            metrics["forward_loss"] = float(loss)
        metrics["forward_excess"] = self.record(obs, act)
        return metrics

    def extra_state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
            "batch_means": list(self.batch_means),
        }

    def load_extra_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        if self.optimizer is not None and state.get("optimizer") is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        self.batch_means.clear()
        self.batch_means.extend(float(v) for v in state["batch_means"])
