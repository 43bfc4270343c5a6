"""Pessimistic reward preconditioning (specs/lipschitz_gail.md): multiplier range, where it bites, persistence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from robo_reward import TransitionBatch
from robo_reward.methods.gail.forward_model import PessimisticMultiplier
from robo_reward.methods.gail.reward import GAILReward


class Quadratic(nn.Module):
    """f(s, a) = c * s^2 (1-D state): ||grad f|| = 2 c |s|, so it exceeds k_f = 9 exactly where |s| > 4.5 / c."""

    def __init__(self, c: float = 1.0) -> None:
        super().__init__()
        self.c = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c * x[:, :1] ** 2


def fitted_multiplier() -> PessimisticMultiplier:
    pm = PessimisticMultiplier(1, 1, model=Quadratic())
    for scale in (4.0, 6.0, 8.0, 10.0):  # batches with different mean excess, so sigma_g > 0
        s = torch.linspace(-scale, scale, 64).unsqueeze(1)
        pm.record(s, torch.zeros(64, 1))
    return pm


def test_jacobian_norm_matches_closed_form():
    pm = PessimisticMultiplier(1, 1, model=Quadratic(c=1.5))
    s = torch.tensor([[-2.0], [0.0], [3.0]])
    assert torch.allclose(pm.jacobian_norm(s, torch.zeros(3, 1)), 3.0 * s.abs().squeeze(1), atol=1e-5)


def test_multiplier_in_range_one_where_smooth_lower_where_steep():
    pm = fitted_multiplier()
    s = torch.linspace(-1000, 1000, 4001).unsqueeze(1)
    m = pm(s, torch.zeros(len(s), 1))
    assert bool(((m >= 0.7) & (m <= 1.0)).all())
    smooth = s.abs().squeeze(1) <= 4.5
    assert torch.equal(m[smooth], torch.ones(int(smooth.sum())))
    assert float(m[~smooth].max()) < 1.0 and float(m.min()) == pytest.approx(0.7)
    pos = s.squeeze(1) >= 0
    assert bool((torch.diff(m[pos]) <= 0).all()), "the multiplier must not rise as the gradient grows"


def test_multiplier_divides_by_sigma_once():
    pm = fitted_multiplier()
    sigma = float(np.std(list(pm.batch_means)))
    s = torch.tensor([[5.0]])  # ||grad f|| = 10, g = 1
    assert float(pm(s, torch.zeros(1, 1))) == pytest.approx(max(np.exp(-1.0 / sigma), 0.7), rel=1e-5)


def test_untrained_multiplier_is_one_and_history_is_bounded():
    pm = PessimisticMultiplier(2, 1, seed=0)
    assert torch.equal(pm(torch.randn(5, 2), torch.randn(5, 1)), torch.ones(5))
    for _ in range(25):
        pm.update(torch.randn(8, 2), torch.randn(8, 1), torch.randn(8, 2))
    assert len(pm.batch_means) == 10


def test_gail_reward_with_preconditioning_scales_reward_and_round_trips():
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(64, 2)).astype(np.float32)
    act = rng.uniform(-1, 1, (64, 1)).astype(np.float32)
    batch = TransitionBatch(obs, act, obs * 3, np.zeros(64), np.zeros(64, bool), np.zeros(64, bool))
    plain = GAILReward(expert=batch, seed=0)
    pess = GAILReward(expert=batch, precondition=True, precondition_k=0.0, seed=0)
    for _ in range(5):
        plain.update(batch)
        pess.update(batch)
    ratio = pess(batch) / plain(batch)
    assert np.all(ratio >= 0.7 - 1e-6) and np.all(ratio <= 1.0 + 1e-6) and ratio.min() < 1.0
    clone = GAILReward(expert=batch, precondition=True, precondition_k=0.0, seed=1)
    clone.load_state_dict(pess.state_dict())
    np.testing.assert_allclose(clone(batch), pess(batch), rtol=1e-6)
