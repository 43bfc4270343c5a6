"""RAPL's OT video distance, per-frame reward and triplet loss: the identities of specs/rapl.md."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from robo_reward.methods.rapl.align import triplet_loss, triplet_probability
from robo_reward.methods.rapl.encoder import FrameEncoder
from robo_reward.methods.rapl.pipeline import step_spearman
from robo_reward.methods.rapl.sinkhorn import (
    closest_demo_rewards,
    cosine_cost,
    marginal_error,
    ot_distance,
    per_frame_rewards,
    sinkhorn,
)


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(1)


@pytest.mark.parametrize("eps", [0.05, 0.1, 1.0])
def test_marginals_are_uniform(eps: float) -> None:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(7, 5, generator=gen), torch.randn(11, 5, generator=gen)
    plan = sinkhorn(cosine_cost(x, y), eps, 100, check=True, tol=1e-4)
    assert torch.allclose(plan.sum(1), torch.full((7,), 1 / 7, dtype=plan.dtype), atol=1e-4)
    assert torch.allclose(plan.sum(0), torch.full((11,), 1 / 11, dtype=plan.dtype), atol=1e-4)
    assert marginal_error(plan) < 1e-4


def test_small_eps_concentrates_on_the_permutation() -> None:
    perm = torch.tensor([3, 0, 4, 1, 2])
    cost = torch.ones(5, 5, dtype=torch.float64)
    cost[torch.arange(5), perm] = 0.0
    plan = sinkhorn(cost, 0.01, 200)
    target = torch.zeros(5, 5, dtype=torch.float64)
    target[torch.arange(5), perm] = 0.2
    assert torch.allclose(plan, target, atol=1e-6)
    assert float((sinkhorn(cost, 1.0, 200) - target).abs().max()) > 0.05


def test_large_eps_tends_to_the_uniform_plan() -> None:
    cost = torch.rand(4, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2
    plan = sinkhorn(cost, 1e4, 50)
    assert torch.allclose(plan, torch.full((4, 6), 1 / 24, dtype=torch.float64), atol=1e-5)


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match="eps"):
        sinkhorn(torch.zeros(2, 2), 0.0)
    with pytest.raises(ValueError, match="did not converge"):
        sinkhorn(torch.rand(30, 30, generator=torch.Generator().manual_seed(0)) * 2, 0.001, 1, check=True)


def test_distance_symmetric_and_zero_on_itself() -> None:
    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn(6, 8, generator=gen, dtype=torch.float64), torch.randn(6, 8, generator=gen, dtype=torch.float64)
    assert torch.allclose(ot_distance(x, y, 0.1), ot_distance(y, x, 0.1), atol=1e-8)
    assert float(ot_distance(x, x, 0.01, 300)) < 1e-3
    assert float(ot_distance(x, y, 0.01, 300)) > 0.1


@pytest.mark.parametrize("eps", [0.05, 0.1, 1.0])
def test_per_frame_rewards_sum_to_minus_the_distance(eps: float) -> None:
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(9, 4, generator=gen, dtype=torch.float64), torch.randn(13, 4, generator=gen, dtype=torch.float64)
    r = per_frame_rewards(x, y, eps, 200)
    assert r.shape == (9,)
    assert torch.allclose(r.sum(), -ot_distance(x, y, eps, 200), atol=1e-6)
    assert (r <= 0).all()


def _tiny_encoder() -> FrameEncoder:
    torch.manual_seed(0)
    return FrameEncoder(embed_dim=4, channels=(2, 3, 3)).double()


def _distance(encoder: torch.nn.Module, a: torch.Tensor, b: torch.Tensor, *, detach: bool = False) -> torch.Tensor:
    x, y = encoder(a), encoder(b)
    cost = cosine_cost(x, y)
    plan = sinkhorn(cost, 1e-3, 300)
    return ((plan.detach() if detach else plan) * cost).sum()


def test_gradient_reaches_the_encoder_and_matches_finite_differences() -> None:
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 255, (9, 1, 1, 3))
    frames = np.broadcast_to(colours, (9, 64, 64, 3)).copy()
    frames[:, :32] = 255 - frames[:, :32]
    frames = torch.as_tensor(frames.astype(np.uint8))
    a, b = frames[:5], frames[5:]
    enc = _tiny_encoder()
    _distance(enc, a, b).backward()
    weight = enc.head.weight
    assert weight.grad is not None and float(weight.grad.abs().sum()) > 0
    conv = enc.conv[0].weight
    assert conv.grad is not None and float(conv.grad.abs().sum()) > 0
    analytic, detached = weight.grad.clone(), None
    enc.zero_grad()
    _distance(enc, a, b, detach=True).backward()
    detached = weight.grad.clone()
    h = 1e-6
    for idx in [(0, 0), (1, 5), (3, 17), (2, 40)]:
        with torch.no_grad():
            weight[idx] += h
            up = float(_distance(enc, a, b))
            weight[idx] -= 2 * h
            down = float(_distance(enc, a, b))
            weight[idx] += h
        numeric = (up - down) / (2 * h)
        assert math.isclose(float(analytic[idx]), numeric, rel_tol=1e-4, abs_tol=1e-8)
    # the plan's own gradient matters: detaching it gives another (wrong) gradient
    assert float((detached - analytic).abs().max()) > 1e-3 * float(analytic.abs().max())


def test_probability_and_loss_identities() -> None:
    d1 = torch.tensor([0.1, 0.5, 1.0, 0.3])
    d2 = torch.tensor([0.9, 0.5, 0.2, 0.3])
    p = triplet_probability(d1, d2)
    assert ((p > 0) & (p < 1)).all()
    assert torch.allclose(p, torch.exp(-d1) / (torch.exp(-d1) + torch.exp(-d2)))
    same = torch.tensor([0.4, 0.4])
    assert math.isclose(float(triplet_loss(same, same)), math.log(2), rel_tol=1e-6)
    assert float(triplet_loss(d1[:1], d2[:1])) < math.log(2) < float(triplet_loss(d1[2:3], d2[2:3]))
    eq = torch.tensor([True, True])
    assert math.isclose(float(triplet_loss(same, same, eq)), math.log(2), rel_tol=1e-6)
    assert math.isclose(float(triplet_loss(same, same, kind="l2")), math.sqrt(2) * 0.5, rel_tol=1e-6)
    assert float(triplet_loss(same, same, eq, kind="l2")) < 1e-7
    with pytest.raises(ValueError, match="loss"):
        triplet_loss(same, same, kind="hinge")


def test_closest_demo_rewards_score_each_rollout_against_its_nearest_demo() -> None:
    gen = torch.Generator().manual_seed(3)
    rollouts = torch.randn(4, 9, 6, generator=gen)
    demos = torch.stack([torch.randn(9, 6, generator=gen), rollouts[2, torch.randperm(9, generator=gen)],
                         torch.randn(9, 6, generator=gen)])
    got = closest_demo_rewards(rollouts, demos, 0.05, 200)
    assert got.shape == (4, 9)
    for i in range(4):
        distances = torch.stack([ot_distance(rollouts[i], d, 0.05, 200) for d in demos])
        best = int(distances.argmin())
        torch.testing.assert_close(got[i], per_frame_rewards(rollouts[i], demos[best], 0.05, 200))
        assert torch.isclose(got[i].sum(), -distances.min(), atol=1e-5)
    assert float(-got[2].sum()) < 0.05, "rollout 2 is demo 1 reordered: its nearest demo is itself"
    one = closest_demo_rewards(rollouts, demos[:1], 0.1, 100)
    torch.testing.assert_close(one[3], per_frame_rewards(rollouts[3], demos[0], 0.1, 100))
    with pytest.raises(ValueError, match=r"\(K, T', d\)"):
        closest_demo_rewards(rollouts, demos[0], 0.1, 10)


def test_step_spearman_averages_the_within_rollout_rank_correlation() -> None:
    rng = np.random.default_rng(0)
    target = rng.normal(size=(5, 20))
    assert step_spearman(target, 3 * target + 1) == pytest.approx(1.0)
    assert step_spearman(target, -np.exp(target)) == pytest.approx(-1.0)
    mixed = np.concatenate([target[:2], -target[2:4]])
    assert step_spearman(target[:4], mixed) == pytest.approx(0.0)
    flat = target.copy()
    flat[0] = 1.0
    assert step_spearman(flat, target) == pytest.approx(1.0), "a constant rollout has no rank correlation to average"
    assert np.isnan(step_spearman(np.ones((2, 5)), target[:2, :5]))
