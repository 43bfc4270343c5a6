"""Stages 2 and 3 of DeformPAM: Diffusion-DPO against the frozen Stage-1 model, and its implicit reward.

Chen et al., ICRA 2025 (arXiv 2410.11584), after Wallace et al.'s Diffusion-DPO (CVPR 2024). With the x0 error
``l(a) = ||x0_hat(a_t, t, s) - a||^2`` (mean over dimensions) and the same noise and timestep for the policy
theta and the reference, the pair loss is

    z = -beta * w(t) * [(l_theta(a_w) - l_ref(a_w)) - (l_theta(a_l) - l_ref(a_l))]
    L = -log sigmoid(z)    (Diffusion-DPO; the default here)   or   L = -sigmoid(z)    (the reference code)

and the implicit reward of an action is ``r(s, a) = -beta * w(t) * [l_theta(a) - l_ref(a)]`` averaged over
``n_draws`` shared (noise, timestep) draws with t among the least-noisy ``t_fraction`` of the schedule.

Where this build departs from (or settles what the paper leaves open): ``w(t) = 1`` (the published sources do not
fix the weighting; min-SNR is not used); the pair shares one (noise, timestep) draw between winner and loser as
well as between theta and the reference; "equal" pairs are left out of DPO (the paper's optional SFT term for
them is not built). The explicit-reward ablation is a separate network trained with the 2-way softmax ranking
cross-entropy on the same pairs.
"""

from __future__ import annotations

import copy
from typing import Literal

import numpy as np
import torch
from torch import nn

from robo_reward.methods.deformpam.diffusion import GridEncoder, PrimitiveDiffusion

LossForm = Literal["logsigmoid", "sigmoid"]


def dpo_loss(policy: PrimitiveDiffusion, reference: PrimitiveDiffusion, states: torch.Tensor,
             winners: torch.Tensor, losers: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, *, beta: float,
             form: LossForm = "logsigmoid") -> tuple[torch.Tensor, dict[str, float]]:
    """Diffusion-DPO loss of a batch of pairs at the given shared timesteps ``t`` and noise ``eps``.

    :returns: the mean loss and metrics (pair accuracy of z > 0, mean policy-minus-reference error gaps).
    """
    if form not in ("logsigmoid", "sigmoid"):
        raise ValueError(f"loss form {form!r} is not 'logsigmoid' or 'sigmoid'")
    feats = policy.encode(states)
    with torch.no_grad():
        ref_feats = reference.encode(states)
        ref_w = reference.x0_error(winners, t, eps, ref_feats)
        ref_l = reference.x0_error(losers, t, eps, ref_feats)
    gap_w = policy.x0_error(winners, t, eps, feats) - ref_w
    gap_l = policy.x0_error(losers, t, eps, feats) - ref_l
    z = -beta * (gap_w - gap_l)
    loss = -nn.functional.logsigmoid(z) if form == "logsigmoid" else -torch.sigmoid(z)
    return loss.mean(), {"accuracy": float((z > 0).float().mean()), "gap_w": float(gap_w.mean().detach()),
                         "gap_l": float(gap_l.mean().detach())}


def train_dpo(reference: PrimitiveDiffusion, states: np.ndarray, winners: np.ndarray, losers: np.ndarray, *,
              beta: float, form: LossForm = "logsigmoid", steps: int = 1000, batch_size: int = 28,
              lr: float = 1e-5, t_fraction: float = 1.0, seed: int = 0) -> tuple[PrimitiveDiffusion, list[float]]:
    """A copy of ``reference`` fine-tuned with Diffusion-DPO on win/lose pairs; ``reference`` stays frozen.

    AdamW with betas (0.9, 0.95) as in the paper. Timesteps are uniform over the first ``t_fraction`` of the
    schedule (1.0: all of it, as in Diffusion-DPO).

    :returns: the tuned copy and its loss at every step.
    """
    if not (len(states) == len(winners) == len(losers)) or len(states) == 0:
        raise ValueError(f"states, winners and losers need one row per pair (got {len(states)}, {len(winners)}, "
                         f"{len(losers)}), at least one")
    policy = copy.deepcopy(reference).requires_grad_(True)
    reference.eval().requires_grad_(False)
    s, w, l_ = (torch.as_tensor(np.asarray(x, np.float32)) for x in (states, winners, losers))
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(policy.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
    t_max = max(1, round(policy.steps * t_fraction))
    history = []
    policy.train()
    for _ in range(steps):
        idx = torch.randint(0, len(s), (min(batch_size, len(s)),), generator=gen)
        t = torch.randint(0, t_max, (len(idx),), generator=gen)
        eps = torch.randn(len(idx), policy.action_dim, generator=gen)
        loss, _ = dpo_loss(policy, reference, s[idx], w[idx], l_[idx], t, eps, beta=beta, form=form)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    policy.eval().requires_grad_(False)
    return policy, history


@torch.no_grad()
def implicit_reward(policy: PrimitiveDiffusion, reference: PrimitiveDiffusion, states: torch.Tensor,
                    candidates: torch.Tensor, generator: torch.Generator, *, beta: float, n_draws: int = 10,
                    t_fraction: float = 0.1) -> torch.Tensor:
    """``r(s, a) = -beta * mean_n [l_theta(a; t_n, eps_n) - l_ref(a; t_n, eps_n)]`` for every candidate.

    The ``n_draws`` (timestep, noise) draws of a state are shared by theta and the reference and by all of that
    state's candidates; timesteps are uniform over ``{0, ..., T * t_fraction - 1}``.

    :param states: ``(B, P, 2)``.
    :param candidates: ``(B, K, action_dim)``.
    :returns: ``(B, K)`` rewards.
    """
    b, k, d = candidates.shape
    t_max = max(1, int(policy.steps * t_fraction))
    t = torch.randint(0, t_max, (b, 1, n_draws), generator=generator).expand(b, k, n_draws).reshape(-1)
    eps = torch.randn(b, 1, n_draws, d, generator=generator).expand(b, k, n_draws, d).reshape(-1, d)
    acts = candidates[:, :, None, :].expand(b, k, n_draws, d).reshape(-1, d)
    rows = k * n_draws
    gap = (policy.x0_error(acts, t, eps, policy.encode(states).repeat_interleave(rows, dim=0))
           - reference.x0_error(acts, t, eps, reference.encode(states).repeat_interleave(rows, dim=0)))
    return -beta * gap.view(b, k, n_draws).mean(dim=-1)


class RewardHead(nn.Module):
    """Explicit reward ``r(s, a)``: its own grid encoder and an MLP over (feature, action); the ablation."""

    def __init__(self, action_dim: int = 5, grid: int = 16, target: np.ndarray | None = None,
                 hidden: int = 256, features: int = 128) -> None:
        super().__init__()
        self.encoder = GridEncoder(grid, target, features)
        self.head = nn.Sequential(nn.Linear(features + action_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden),
                                  nn.SiLU(), nn.Linear(hidden, 1))

    def forward(self, states: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """``(B, P, 2)``, ``(B, K, action_dim)`` -> ``(B, K)`` rewards."""
        b, k, _ = candidates.shape
        feats = self.encoder(states)[:, None, :].expand(b, k, -1)
        return self.head(torch.cat([feats, candidates], dim=-1)).squeeze(-1)


def train_reward_head(head: RewardHead, states: np.ndarray, winners: np.ndarray, losers: np.ndarray, *,
                      steps: int = 1500, batch_size: int = 64, lr: float = 1e-3, seed: int = 0) -> list[float]:
    """Ranking cross-entropy: ``-log softmax([r(s, a_w), r(s, a_l)])[0]`` over the pairs.

    :returns: the loss every 50 steps.
    """
    s, w, l_ = (torch.as_tensor(np.asarray(x, np.float32)) for x in (states, winners, losers))
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    history = []
    head.train()
    for step in range(steps):
        idx = torch.randint(0, len(s), (min(batch_size, len(s)),), generator=gen)
        logits = head(s[idx], torch.stack([w[idx], l_[idx]], dim=1))
        loss = nn.functional.cross_entropy(logits, torch.zeros(len(idx), dtype=torch.long))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0:
            history.append(loss.item())
    head.eval().requires_grad_(False)
    return history
