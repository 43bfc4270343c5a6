"""Stage 3 of DeformPAM: reward-guided action selection (RAS) and the policy wrapper that runs it.

K candidates come from one sampler (the supervised Stage-1 model for RAS, Chen et al., arXiv 2410.11584); a
scorer rates them and the argmax is executed. Scorers: the DPO model's implicit reward (RAS), an explicit
reward head (the ablation), uniform random scores (random selection), or any callable, e.g. an oracle in tests.
The wrapper chooses actions only; it pays no reward, so it runs in any Gymnasium loop:

>>> import numpy as np, torch
>>> from robo_reward.methods.deformpam.diffusion import PrimitiveDiffusion
>>> policy = PrimitivePolicy(PrimitiveDiffusion(grid=8, hidden=32), k=4, scorer=RandomScorer(), seed=0)
>>> policy(np.random.default_rng(0).random((300, 2))).shape
(5,)
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from robo_reward.methods.deformpam.alignment import RewardHead, implicit_reward
from robo_reward.methods.deformpam.diffusion import PrimitiveDiffusion


class Scorer(Protocol):
    """Scores ``(B, K, action_dim)`` candidates of ``(B, P, 2)`` states, ``(B, K)`` (higher is better)."""

    def __call__(self, states: torch.Tensor, candidates: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        ...


class ImplicitRewardScorer:
    """The DPO model's implicit reward against the frozen reference (see :func:`implicit_reward`)."""

    def __init__(self, policy: PrimitiveDiffusion, reference: PrimitiveDiffusion, *, beta: float,
                 n_draws: int = 10, t_fraction: float = 0.1) -> None:
        self.policy, self.reference = policy, reference
        self.beta, self.n_draws, self.t_fraction = beta, n_draws, t_fraction

    def __call__(self, states: torch.Tensor, candidates: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return implicit_reward(self.policy, self.reference, states, candidates, generator, beta=self.beta,
                               n_draws=self.n_draws, t_fraction=self.t_fraction)


class ExplicitRewardScorer:
    """An explicit reward head trained with the ranking cross-entropy."""

    def __init__(self, head: RewardHead) -> None:
        self.head = head

    @torch.no_grad()
    def __call__(self, states: torch.Tensor, candidates: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.head(states, candidates)


class RandomScorer:
    """Uniform random scores: the argmax is a uniformly random candidate (the random-selection control)."""

    def __call__(self, states: torch.Tensor, candidates: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return torch.rand(candidates.shape[:2], generator=generator)


class PrimitivePolicy:
    """One primitive per state: ``k`` candidates from ``sampler``, the one ``scorer`` rates highest.

    With ``scorer=None`` it executes the sampler's first candidate (``k`` is then 1: plain sampling). Seeded:
    the same ``seed`` and the same states give the same actions.

    :param sampler: the diffusion model candidates are drawn from.
    :param k: candidates per state (the paper's K = 16).
    :param scorer: rates the candidates; None: no selection.
    :param seed: seed of the candidate noise and of the scorer's draws.
    :param ddim_steps: DDIM steps per sample.
    """

    def __init__(self, sampler: PrimitiveDiffusion, *, k: int = 16, scorer: Scorer | None = None, seed: int = 0,
                 ddim_steps: int = 10) -> None:
        if k < 1:
            raise ValueError(f"k={k} candidates: need at least one")
        self.sampler, self.scorer, self.ddim_steps = sampler, scorer, ddim_steps
        self.k = k if scorer is not None else 1
        self.generator = torch.Generator()
        self.reseed(seed)
        self.last_candidates: np.ndarray | None = None
        self.last_scores: np.ndarray | None = None

    def reseed(self, seed: int) -> None:
        self.generator.manual_seed(int(seed))

    @torch.no_grad()
    def select(self, states: np.ndarray) -> np.ndarray:
        """``(B, P, 2)`` states -> ``(B, action_dim)`` chosen actions."""
        s = torch.as_tensor(np.asarray(states, np.float32))
        candidates = self.sampler.sample(s, self.k, self.generator, self.ddim_steps)
        if self.scorer is None:
            self.last_candidates, self.last_scores = candidates.numpy(), None
            return candidates[:, 0].numpy()
        scores = self.scorer(s, candidates, self.generator)
        self.last_candidates, self.last_scores = candidates.numpy(), scores.numpy()
        best = scores.argmax(dim=1)
        return candidates[torch.arange(len(s)), best].numpy()

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """One state ``(P, 2)`` -> ``(action_dim,)``, or a batch ``(B, P, 2)`` -> ``(B, action_dim)``."""
        obs = np.asarray(obs, np.float32)
        if obs.ndim == 2:
            return self.select(obs[None])[0]
        return self.select(obs)

    def predict(self, obs: np.ndarray, state: object = None, episode_start: object = None,
                deterministic: bool = True) -> tuple[np.ndarray, None]:
        """SB3-style ``predict``, so SB3's ``evaluate_policy`` runs it too."""
        return self(obs), None
