"""Lipschitz-regularised GAIL: penalty, labels, reward forms, Lipschitz control, persistence (specs/lipschitz_gail.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robo_reward import SpaceMismatchError, TransitionBatch, make_reward
from robo_reward.methods.gail.reward import (
    Discriminator,
    GAILReward,
    discriminator_loss,
    gradient_penalty,
    interpolate,
    penalty_points,
    reward_from_logits,
    smoothed_targets,
)


def linear_critic(norm: float, obs_dim: int = 3, act_dim: int = 2):
    w = torch.randn(obs_dim + act_dim, generator=torch.Generator().manual_seed(0))
    w = w / w.norm() * norm
    return lambda s, a: torch.cat([s, a], dim=1) @ w


def gaussian_batch(n: int, obs_mean: float, act_mean: float, seed: int, obs_dim: int = 3) -> TransitionBatch:
    rng = np.random.default_rng(seed)
    obs = rng.normal(obs_mean, 1.0, (n, obs_dim)).astype(np.float32)
    act = np.clip(rng.normal(act_mean, 0.3, (n, 1)), -1, 1).astype(np.float32)
    return TransitionBatch(obs, act, obs + 0.1, np.zeros(n), np.zeros(n, bool), np.zeros(n, bool))


# -- gradient penalty on a linear critic with known gradient norm -------------------------------------------------
def test_one_sided_penalty_of_linear_critic_with_norm_3_is_40():
    s, a = torch.randn(16, 3), torch.randn(16, 2)
    penalty, norms = gradient_penalty(linear_critic(3.0), s, a, k=1.0, weight=10.0, one_sided=True)
    assert float(penalty) == pytest.approx(40.0, rel=1e-5)
    assert torch.allclose(norms, torch.full((16,), 3.0), atol=1e-5)


@pytest.mark.parametrize("norm", [0.5, 1.0])
def test_one_sided_penalty_vanishes_within_k(norm):
    s, a = torch.randn(16, 3), torch.randn(16, 2)
    penalty, _ = gradient_penalty(linear_critic(norm), s, a, k=1.0, weight=10.0, one_sided=True)
    assert float(penalty) == pytest.approx(0.0, abs=1e-8)


def test_two_sided_penalty_pulls_small_gradients_up_to_k():
    s, a = torch.randn(16, 3), torch.randn(16, 2)
    penalty, _ = gradient_penalty(linear_critic(0.5), s, a, k=1.0, weight=10.0, one_sided=False)
    assert float(penalty) == pytest.approx(2.5, rel=1e-5)


def test_penalty_is_differentiable_in_the_critic_parameters():
    w = torch.tensor([2.0, 2.0, 1.0], requires_grad=True)
    penalty, _ = gradient_penalty(lambda s, a: torch.cat([s, a], 1) @ w, torch.zeros(4, 2), torch.zeros(4, 1))
    penalty.backward()
    # d/dw 10 (||w|| - 1)^2 = 20 (||w|| - 1) w / ||w||
    assert torch.allclose(w.grad, 20 * 2 * torch.tensor([2.0, 2.0, 1.0]) / 3, atol=1e-4)


class LinearStandIn(torch.nn.Module):
    """The spec's deterministic stand-in for ``D``: ``logits = bias + [s, a] @ w`` (so ``||grad D|| = ||w||``)."""

    def __init__(self, w: torch.Tensor, bias: float = 0.0) -> None:
        super().__init__()
        self.w, self.bias = torch.nn.Parameter(w), torch.nn.Parameter(torch.tensor(bias))

    def forward(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.bias + torch.cat([s, a], dim=1) @ self.w


def gail_with_linear_d(norm: float, bias: float = 0.0, **kwargs) -> GAILReward:
    """A GAILReward with its paper defaults whose ``D`` (inputs as ``update`` feeds them) is linear of norm ``norm``."""
    reward = GAILReward(expert=gaussian_batch(256, 0.0, 0.5, seed=1), seed=0, **kwargs)
    w = torch.randn(4, generator=torch.Generator().manual_seed(0))
    object.__setattr__(reward.discriminator, "logits", LinearStandIn(w / w.norm() * norm, bias))  # not a submodule
    return reward


@pytest.mark.parametrize(("norm", "one_sided_penalty"), [(3.0, 40.0), (1.5, 2.5), (0.5, 0.0), (1.0, 0.0)])
def test_gail_reward_applies_the_papers_one_sided_penalty_by_default(norm, one_sided_penalty):
    """k = 1, lambda = 10, one-sided: 10 (3 - 1)^2 = 40 and 10 (1.5 - 1)^2 = 2.5; 0 within k, where the two-sided
    form would charge 10 (0.5 - 1)^2 = 2.5."""
    policy = gaussian_batch(256, 2.0, -0.5, seed=2)
    metrics = gail_with_linear_d(norm).update(policy)
    assert metrics["grad_norm"] == pytest.approx(norm, rel=1e-4)
    assert metrics["penalty"] == pytest.approx(one_sided_penalty, rel=1e-4, abs=1e-6)
    two_sided = gail_with_linear_d(norm, penalty_one_sided=False).update(policy)
    assert two_sided["penalty"] == pytest.approx(10.0 * (norm - 1.0) ** 2, rel=1e-4, abs=1e-6)


def test_gail_reward_paper_defaults():
    """specs/lipschitz_gail.md: wgan points, one-sided, k = 1, lambda = 10, expert labels U(0.7, 1.2), policy 0,
    entropy 1e-3, minimax reward, D 100-100 with spectral and layer norm, lr 5e-4, batch 64, k_f = 9."""
    reward = GAILReward(expert=gaussian_batch(256, 0.0, 0.5, seed=1), precondition=True)
    assert (reward.penalty, reward.penalty_one_sided, reward.penalty_k, reward.penalty_weight) == ("wgan", True, 1.0, 10.0)
    assert reward.label_range == (0.7, 1.2) and reward.entropy_coef == 1e-3 and reward.reward_form == "minimax"
    assert reward.batch_size == 64 and reward.optimizer.param_groups[0]["lr"] == 5e-4
    linears = [m for m in reward.discriminator.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [100, 100, 1]
    assert sum(isinstance(m, torch.nn.LayerNorm) for m in reward.discriminator.modules()) == 2
    assert all(torch.nn.utils.parametrize.is_parametrized(m) for m in linears)
    assert reward.multiplier is not None and reward.multiplier.k_f == 9.0


def test_gail_reward_trains_on_smoothed_expert_labels_and_zero_policy_labels():
    """With a constant logit c, BCE(policy, 0) + BCE(expert, t) = 2 softplus(c) - c mean(t): the targets the update
    really uses average 0.95 (U(0.7, 1.2) on expert rows, exactly 0 on policy rows); the loss subtracts 1e-3 H."""
    c = 2.0
    reward = gail_with_linear_d(0.0, bias=c)
    policy = gaussian_batch(256, 2.0, -0.5, seed=2)
    mean_targets = []
    for _ in range(40):
        m = reward.update(policy)
        mean_targets.append((2 * np.log1p(np.exp(c)) - m["bce"]) / c)
        assert m["loss"] == pytest.approx(m["bce"] + m["penalty"] - 1e-3 * m["entropy"], rel=1e-5)
    assert np.mean(mean_targets) == pytest.approx(0.95, abs=0.01)
    assert 0.5 / np.sqrt(12 * 64) * 0.5 < np.std(mean_targets) < 0.5 / np.sqrt(12 * 64) * 2  # drawn anew, 64 rows


def test_interpolation_draws_separate_coefficients_for_state_and_action():
    n = 256
    s_i, a_i = interpolate(torch.zeros(n, 1), torch.zeros(n, 1), torch.ones(n, 1), torch.ones(n, 1),
                           generator=torch.Generator().manual_seed(0))
    eps_s, eps_a = 1 - s_i.squeeze(1), 1 - a_i.squeeze(1)  # x = eps * 0 + (1 - eps) * 1
    assert ((eps_s >= 0) & (eps_s <= 1)).all() and ((eps_a >= 0) & (eps_a <= 1)).all()
    assert not torch.allclose(eps_s, eps_a)
    assert abs(float(torch.corrcoef(torch.stack([eps_s, eps_a]))[0, 1])) < 0.2  # independent draws
    # one coefficient per row, shared by every state entry
    s_wide, _ = interpolate(torch.zeros(n, 4), torch.zeros(n, 1), torch.ones(n, 4), torch.ones(n, 1),
                            generator=torch.Generator().manual_seed(0))
    assert torch.allclose(s_wide, s_wide[:, :1].expand(-1, 4))


def test_dragan_and_nagard_perturb_expert_and_policy_samples():
    g = torch.Generator().manual_seed(0)
    pol_s, pol_a, exp_s, exp_a = torch.zeros(4000, 2), torch.zeros(4000, 1), torch.full((4000, 2), 100.0), torch.full(
        (4000, 1), 100.0)
    s_d, _ = penalty_points("dragan", pol_s, pol_a, exp_s, exp_a, noise_std=10.0, generator=g)
    s_n, _ = penalty_points("nagard", pol_s, pol_a, exp_s, exp_a, noise_std=10.0, generator=g)
    assert float(s_d.mean()) == pytest.approx(100.0, abs=1.0) and float(s_d.std()) == pytest.approx(10.0, rel=0.05)
    assert float(s_n.mean()) == pytest.approx(0.0, abs=1.0) and float(s_n.std()) == pytest.approx(10.0, rel=0.05)
    with pytest.raises(ValueError, match="penalty variant"):
        penalty_points("wgan-gp", pol_s, pol_a, exp_s, exp_a)  # type: ignore[arg-type]


# -- loss ---------------------------------------------------------------------------------------------------------
def test_expert_labels_smoothed_in_range_policy_labels_exactly_zero():
    t_pol, t_exp = smoothed_targets(500, 5000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(t_pol, torch.zeros(500))
    assert float(t_exp.min()) >= 0.7 and float(t_exp.max()) <= 1.2
    assert float(t_exp.max()) > 1.0  # labels above 1 are intended
    assert float(t_exp.mean()) == pytest.approx(0.95, abs=0.01)


def test_entropy_term_lowers_the_loss_of_uncertain_discriminators():
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    zeros = torch.zeros(8)
    with_entropy, m = discriminator_loss(zeros, zeros, entropy_coef=1e-3, generator=g())
    without, _ = discriminator_loss(zeros, zeros, entropy_coef=0.0, generator=g())
    assert float(without - with_entropy) == pytest.approx(1e-3 * np.log(2), rel=1e-4)  # H(0.5) = log 2
    assert m["entropy"] == pytest.approx(np.log(2), rel=1e-5)


# -- reward forms ---------------------------------------------------------------------------------------------------
def test_minimax_reward_non_negative_and_monotone_in_d():
    logits = torch.linspace(-60, 60, 4001)
    r = reward_from_logits(logits, "minimax")
    assert bool((r >= 0).all())
    assert bool((torch.diff(r) >= 0).all())
    assert float(r[-1]) == pytest.approx(-np.log(1e-8), rel=1e-3)  # capped by the 1e-8


def test_logit_reward_equals_d():
    logits = torch.linspace(-15, 15, 301)
    assert torch.allclose(reward_from_logits(logits, "logit"), logits, atol=1e-5)
    with pytest.raises(ValueError, match="reward form"):
        reward_from_logits(logits, "airl")  # type: ignore[arg-type]


# -- the discriminator and its Lipschitz control --------------------------------------------------------------------
def test_discriminator_spectral_and_layer_norm_on_by_default():
    d = Discriminator(3, 1)
    assert any(isinstance(m, torch.nn.LayerNorm) for m in d.modules())
    assert all(torch.nn.utils.parametrize.is_parametrized(m) for m in d.modules() if isinstance(m, torch.nn.Linear))


def _train(penalty: str, steps: int = 300) -> list[float]:
    expert = gaussian_batch(512, 0.0, 0.5, seed=1)
    policy = gaussian_batch(512, 2.0, -0.5, seed=2)
    reward = GAILReward(expert=expert, penalty=penalty, batch_size=64, lr=1e-3, seed=0)
    return [reward.update(policy)["grad_norm"] for _ in range(steps)]


@pytest.mark.slow
def test_penalty_keeps_gradient_norm_near_k_and_without_it_the_norm_grows():
    with_gp = _train("wgan")
    without = _train("none")
    assert np.mean(with_gp[-50:]) <= 1.3, "one-sided penalty should hold ||grad D|| near k = 1"
    assert np.mean(without[-50:]) >= 3.0, "without the penalty the discriminator should grow steep"
    assert np.mean(without[-50:]) > 2.5 * np.mean(with_gp[-50:])


def test_update_separates_expert_from_policy_and_reward_prefers_expert():
    expert = gaussian_batch(256, 0.0, 0.5, seed=1)
    policy = gaussian_batch(256, 2.0, -0.5, seed=2)
    reward = GAILReward(expert=expert, seed=0)
    before = reward(expert).mean() - reward(policy).mean()
    for _ in range(100):
        metrics = reward.update(policy)
    after = reward(expert).mean() - reward(policy).mean()
    assert after > before + 0.2 and metrics["accuracy"] > 0.9
    assert set(metrics) >= {"loss", "bce", "entropy", "penalty", "grad_norm", "d_policy", "d_expert"}


def test_seeded_updates_are_deterministic_and_state_dict_round_trips():
    expert, policy = gaussian_batch(128, 0.0, 0.5, seed=1), gaussian_batch(128, 2.0, -0.5, seed=2)
    a, b = GAILReward(expert=expert, seed=3), GAILReward(expert=expert, seed=3)
    for _ in range(5):
        assert a.update(policy) == b.update(policy)
    np.testing.assert_array_equal(a(policy), b(policy))
    c = GAILReward(expert=expert, seed=99)
    c.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(c(policy), a(policy))
    assert c.update(policy) == a.update(policy)  # optimiser and random streams restored too


def test_reward_call_does_not_change_state():
    expert, policy = gaussian_batch(64, 0.0, 0.5, seed=1), gaussian_batch(64, 2.0, -0.5, seed=2)
    reward = GAILReward(expert=expert, seed=0)
    reward.update(policy)
    first = reward(policy)
    np.testing.assert_array_equal(first, reward(policy))


def test_bad_inputs_raise_clear_errors():
    import gymnasium as gym

    expert = gaussian_batch(32, 0.0, 0.5, seed=1)
    with pytest.raises(ValueError, match="penalty"):
        GAILReward(expert=expert, penalty="wgangp")  # type: ignore[arg-type]
    reward = GAILReward(expert=expert)
    with pytest.raises(SpaceMismatchError, match=r"shape \(3,\)"):
        reward.bind(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Box(-1, 1, (1,)), 1)
    other = GAILReward(expert=expert, precondition=True)
    with pytest.raises(Exception, match="precondition"):
        other.load_state_dict(reward.state_dict())


def test_registered_and_built_by_name():
    reward = make_reward("gail", expert=gaussian_batch(16, 0.0, 0.5, seed=1), penalty_weight=5.0)
    assert isinstance(reward, GAILReward) and reward.penalty_weight == 5.0
