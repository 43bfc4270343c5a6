"""Lipschitz-regularised off-policy GAIL: a discriminator reward with a gradient penalty.

Blondé, Strasser, Kalousis, "Lipschitzness Is All You Need To Tame Off-policy Generative Adversarial Imitation
Learning", Machine Learning 2022 (arXiv 2006.16785). A discriminator ``D(s, a)`` (logits) separates expert pairs
from the learner's replay pairs; the learner maximises a reward derived from ``D``. The paper's claim is that
*local Lipschitzness of the learned reward* is what makes the off-policy version work, enforced by a gradient
penalty on ``D`` evaluated between policy and expert samples.

Pieces, each usable alone (the tests pin them):

* :class:`Discriminator`: MLP ``D(s, a)`` with layer norm and spectral norm (both on by default, as in the paper).
* :func:`smoothed_targets` / :func:`discriminator_loss`: BCE on logits, policy label 0, expert labels drawn from
  ``U(0.7, 1.2)`` (one-sided label smoothing, values above 1 intended), minus ``0.001 * H(sigmoid(D))``.
* :func:`penalty_points` / :func:`gradient_penalty`: ``lambda * max(0, ||grad_(s,a) D|| - k)^2`` at points drawn
  with *separate* interpolation coefficients for state and action ("wgan"), or around expert ("dragan") or policy
  ("nagard") samples with Gaussian noise; two-sided ``(||grad D|| - k)^2`` as an option.
* :func:`reward_from_logits`: ``-log(1 - sigmoid(D) + 1e-8)`` (minimax, >= 0, the default) or the logit
  ``log sigmoid(D) - log(1 - sigmoid(D))``.
* :class:`GAILReward`: the stateless :class:`~robo_reward.protocol.Reward`. ``__call__`` recomputes rewards with
  the current ``D`` for any transitions, so a relabelling replay buffer patches stale rewards at sample time
  ("historical patching"); ``update(batch)`` trains ``D`` on policy transitions against expert transitions;
  optionally the reward is scaled by the pessimistic multiplier of :mod:`robo_reward.methods.forward_model`.

Where this small build departs from the paper (reconstructions, see ``specs/lipschitz_gail.md``):

* Observations are standardised with running statistics of the expert data and of the policy batches ``D`` is
  trained on (updated only in :meth:`GAILReward.update`, so ``D`` is a fixed function between updates and rewards
  are recomputed with the current statistics). The gradient penalty, ``k`` and the DRAGAN/NAGARD noise act on
  these standardised inputs; actions are mapped to ``[-1, 1]`` from the action space bounds when the reward is
  bound to an env. Standardising with the expert's statistics alone (an option) fails where the expert's states
  are narrow (InvertedPendulum: std ~0.01): every learner state is then tens of units away, ``D`` saturates there
  and the reward is flat at ~0.
* Hidden activations are LeakyReLU(0.1) (the paper fixes layer norm and spectral norm, not the activation).
* With absorbing states (DAC, :mod:`robo_reward.absorbing`) the action of an absorbing-state transition is zeroed
  before ``D`` sees it, so the absorbing state earns one learned reward whatever the learner did there. DAC's
  absorbing state is ``[0, ..., 0, 1]``; where 0 is also the expert's typical state (InvertedPendulum's upright
  pole), a ``k``-Lipschitz ``D`` could not score ``s_a`` more than ``k`` below the expert, so the minimax reward
  would pay the learner to terminate. The flag therefore enters ``D`` scaled by ``absorbing_scale`` (10), which
  lets ``D`` separate ``s_a`` from expert states by up to ``10 k``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robo_reward.protocol import Reward, RewardError, RewardOutput, SpaceMismatchError, TransitionBatch

RewardForm = Literal["minimax", "logit"]
PenaltyVariant = Literal["wgan", "dragan", "nagard", "none"]
REWARD_FORMS: tuple[str, ...] = ("minimax", "logit")
PENALTY_VARIANTS: tuple[str, ...] = ("wgan", "dragan", "nagard", "none")
MINIMAX_EPS = 1e-8

Critic = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Discriminator(nn.Module):
    """``D(s, a)`` -> one logit per row: an MLP with layer norm and optional spectral norm on every linear layer.

    ``forward(obs, act)`` standardises its inputs (:meth:`features`) and applies the network (:meth:`logits`);
    the gradient penalty differentiates :meth:`logits` with respect to the standardised inputs.

    >>> d = Discriminator(3, 1, hidden=(8,))
    >>> d(torch.zeros(5, 3), torch.zeros(5, 1)).shape
    torch.Size([5])
    """

    obs_mean: torch.Tensor
    obs_std: torch.Tensor
    obs_var: torch.Tensor
    obs_count: torch.Tensor
    act_low: torch.Tensor
    act_high: torch.Tensor

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int] = (100, 100),
        *,
        spectral_norm: bool = True,
        layer_norm: bool = True,
        absorbing: bool = False,
        absorbing_scale: float = 10.0,
    ) -> None:
        super().__init__()
        if obs_dim < 1 or act_dim < 1:
            raise ValueError(f"Discriminator needs obs_dim and act_dim >= 1, got {obs_dim} and {act_dim}")
        self.obs_dim, self.act_dim, self.absorbing, self.absorbing_scale = obs_dim, act_dim, absorbing, absorbing_scale
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))
        self.register_buffer("obs_var", torch.ones(obs_dim))
        self.register_buffer("obs_count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("act_low", -torch.ones(act_dim))
        self.register_buffer("act_high", torch.ones(act_dim))
        layers: list[nn.Module] = []
        width = obs_dim + act_dim
        for h in hidden:
            layers.append(self._linear(width, h, spectral_norm))
            if layer_norm:
                layers.append(nn.LayerNorm(h))
            layers.append(nn.LeakyReLU(0.1))
            width = h
        layers.append(self._linear(width, 1, spectral_norm))
        self.net = nn.Sequential(*layers)

    @staticmethod
    def _linear(n_in: int, n_out: int, spectral_norm: bool) -> nn.Module:
        layer = nn.Linear(n_in, n_out)
        return nn.utils.parametrizations.spectral_norm(layer) if spectral_norm else layer

    def observe(self, obs: torch.Tensor) -> None:
        """Fold a batch of (non-absorbing) observations into the running mean and variance of the inputs."""
        if self.absorbing:
            obs = obs[obs[:, -1] == 0]
        if len(obs) == 0:
            return
        n, count = float(len(obs)), float(self.obs_count)
        mean, var = obs.mean(0), obs.var(0, unbiased=False)
        total = count + n
        delta = mean - self.obs_mean
        self.obs_mean += delta * n / total
        self.obs_var.copy_((self.obs_var * count + var * n + delta.pow(2) * count * n / total) / total)
        self.obs_count.fill_(total)
        std = self.obs_var.sqrt().clamp(min=1e-2)
        if self.absorbing:
            self.obs_mean[-1], std[-1] = 0.0, 1.0
        self.obs_std.copy_(std)

    def features(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised ``(s, a)``; with absorbing states, the absorbing flag (last obs entry) enters scaled by
        ``absorbing_scale`` and zeroes the action."""
        s = (obs - self.obs_mean) / self.obs_std
        a = 2.0 * (act - self.act_low) / (self.act_high - self.act_low) - 1.0
        if self.absorbing:
            flag = obs[:, -1:]
            s = torch.cat([s[:, :-1], self.absorbing_scale * flag], dim=1)
            a = a * (1.0 - flag)
        return s, a

    def logits(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([s, a], dim=1)).squeeze(-1)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.logits(*self.features(obs, act))


# -- loss --------------------------------------------------------------------------------------------------------
def smoothed_targets(
    n_policy: int, n_expert: int, *, low: float = 0.7, high: float = 1.2, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """BCE targets: exactly 0 for policy rows, ``U(low, high)`` for expert rows (one-sided label smoothing)."""
    if not low <= high:
        raise ValueError(f"expert label range must have low <= high, got ({low}, {high})")
    policy = torch.zeros(n_policy)
    expert = torch.empty(n_expert).uniform_(low, high, generator=generator)
    return policy, expert


def bernoulli_entropy(logits: torch.Tensor) -> torch.Tensor:
    """``H(sigmoid(l))`` per row, computed stably from logits."""
    return F.binary_cross_entropy_with_logits(logits, torch.sigmoid(logits), reduction="none")


def discriminator_loss(
    logits_policy: torch.Tensor,
    logits_expert: torch.Tensor,
    *,
    label_range: tuple[float, float] = (0.7, 1.2),
    entropy_coef: float = 1e-3,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """``BCE(policy, 0) + BCE(expert, U(0.7, 1.2)) - entropy_coef * H(sigmoid(D))`` (higher entropy lowers it)."""
    t_policy, t_expert = smoothed_targets(
        len(logits_policy), len(logits_expert), low=label_range[0], high=label_range[1], generator=generator
    )
    bce = F.binary_cross_entropy_with_logits(logits_policy, t_policy) + F.binary_cross_entropy_with_logits(
        logits_expert, t_expert
    )
    entropy = bernoulli_entropy(torch.cat([logits_policy, logits_expert])).mean()
    loss = bce - entropy_coef * entropy
    return loss, {"bce": float(bce.detach()), "entropy": float(entropy.detach())}


# -- gradient penalty --------------------------------------------------------------------------------------------
def interpolate(
    obs_policy: torch.Tensor,
    act_policy: torch.Tensor,
    obs_expert: torch.Tensor,
    act_expert: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``eps * x_policy + (1 - eps) * x_expert`` with ``eps ~ U(0, 1)`` drawn *separately* for state and action."""
    n = len(obs_policy)
    eps_s = torch.rand(n, 1, generator=generator)
    eps_a = torch.rand(n, 1, generator=generator)
    return eps_s * obs_policy + (1 - eps_s) * obs_expert, eps_a * act_policy + (1 - eps_a) * act_expert


def penalty_points(
    variant: PenaltyVariant,
    obs_policy: torch.Tensor,
    act_policy: torch.Tensor,
    obs_expert: torch.Tensor,
    act_expert: torch.Tensor,
    *,
    noise_std: float = 10.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the penalty is evaluated: interpolates ("wgan"), expert + noise ("dragan"), policy + noise ("nagard")."""
    if variant == "wgan":
        return interpolate(obs_policy, act_policy, obs_expert, act_expert, generator=generator)
    if variant in ("dragan", "nagard"):
        obs, act = (obs_expert, act_expert) if variant == "dragan" else (obs_policy, act_policy)
        noise_s = torch.randn(obs.shape, generator=generator) * noise_std
        noise_a = torch.randn(act.shape, generator=generator) * noise_std
        return obs + noise_s, act + noise_a
    raise ValueError(f"unknown penalty variant {variant!r}; choose one of {PENALTY_VARIANTS}")


def gradient_penalty(
    critic: Critic,
    obs: torch.Tensor,
    act: torch.Tensor,
    *,
    k: float = 1.0,
    weight: float = 10.0,
    one_sided: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``weight * mean(max(0, ||grad_[s,a] critic|| - k)^2)`` (or the two-sided square) and the per-row norms.

    >>> w = torch.tensor([2.0, 2.0, 1.0])  # ||w|| = 3
    >>> linear = lambda s, a: torch.cat([s, a], 1) @ w
    >>> float(gradient_penalty(linear, torch.zeros(4, 2), torch.zeros(4, 1))[0])
    40.0
    """
    norm = input_gradient_norm(critic, obs, act, create_graph=True)
    excess = (norm - k).clamp(min=0.0) if one_sided else norm - k
    return weight * excess.pow(2).mean(), norm.detach()


def input_gradient_norm(
    critic: Critic, obs: torch.Tensor, act: torch.Tensor, *, create_graph: bool = False
) -> torch.Tensor:
    """``||grad_[s,a] critic(s, a)||_2`` per row (differentiable when ``create_graph``)."""
    obs = obs.detach().requires_grad_(True)
    act = act.detach().requires_grad_(True)
    out = critic(obs, act)
    g_obs, g_act = torch.autograd.grad(out.sum(), (obs, act), create_graph=create_graph)
    return torch.sqrt(g_obs.pow(2).sum(1) + g_act.pow(2).sum(1) + 1e-12)


# -- reward ------------------------------------------------------------------------------------------------------
def reward_from_logits(logits: torch.Tensor, form: RewardForm = "minimax") -> torch.Tensor:
    """``-log(1 - sigmoid(D) + 1e-8)`` ("minimax", >= 0) or ``log sigmoid(D) - log(1 - sigmoid(D))`` ("logit")."""
    if form == "minimax":
        return -torch.log(1.0 - torch.sigmoid(logits) + MINIMAX_EPS)
    if form == "logit":
        return F.logsigmoid(logits) - F.logsigmoid(-logits)
    raise ValueError(f"unknown reward form {form!r}; choose one of {REWARD_FORMS}")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"GAILReward: {name}={value!r} is not one of {choices}")


class GAILReward(Reward):
    """Discriminator reward of Lipschitz-regularised off-policy GAIL (Blondé et al. 2022; module doc).

    Stateless: the reward of a transition depends on ``(s, a)`` and the current ``D`` only, so a relabelling
    replay buffer recomputes every sampled reward with the current ``D`` (historical patching).

    :param expert: the expert transitions: a demonstration source (:mod:`robo_reward.demos`: Minari dataset id or
        folder, ``.npz``) or a :class:`TransitionBatch`.
    :param max_expert_episodes: use the first episodes of the source only (``None``: all).
    :param hidden: discriminator hidden widths (paper: 100-100).
    :param spectral_norm: spectral norm on every linear layer of ``D`` (paper default: on).
    :param layer_norm: layer norm after every hidden linear layer (paper default: on).
    :param lr: Adam learning rate of ``D`` (paper: 5e-4).
    :param batch_size: policy and expert rows per discriminator step (paper: 64).
    :param d_steps: discriminator steps per :meth:`update` call.
    :param update_every: vector steps between :meth:`update` calls, for trainers that follow the reward's schedule.
    :param label_range: expert labels are drawn from ``U(*label_range)``; policy labels are 0.
    :param entropy_coef: the loss subtracts ``entropy_coef * H(sigmoid(D))``.
    :param penalty: "wgan" (interpolates), "dragan" (expert + noise), "nagard" (policy + noise) or "none".
    :param penalty_k: target gradient norm ``k``.
    :param penalty_weight: ``lambda``.
    :param penalty_one_sided: ``max(0, ||grad D|| - k)^2`` (True) or ``(||grad D|| - k)^2``.
    :param penalty_noise_std: noise std of "dragan" and "nagard", in standardised input units.
    :param reward_form: "minimax" (``-log(1 - sigmoid(D) + 1e-8)``) or "logit" (``D``).
    :param absorbing: observations carry the absorbing-state flag of :class:`robo_reward.absorbing.AbsorbingStateWrapper`;
        expert transitions are padded the same way.
    :param absorbing_scale: scale of the absorbing flag in ``D``'s input (module doc).
    :param obs_normalization: standardise observations with running statistics of the expert data and every
        policy batch ``D`` trains on ("running", default) or with the expert data's alone ("expert").
    :param precondition: scale rewards by the pessimistic multiplier of a learned forward model.
    :param precondition_k: ``k_f`` of the multiplier (paper: 9).
    :param seed: seeds the networks, the labels, the penalty points and the minibatches.
    """

    name = "gail"
    stateless = True

    def __init__(
        self,
        *,
        expert: str | TransitionBatch,
        max_expert_episodes: int | None = None,
        hidden: Sequence[int] = (100, 100),
        spectral_norm: bool = True,
        layer_norm: bool = True,
        lr: float = 5e-4,
        batch_size: int = 64,
        d_steps: int = 1,
        update_every: int | None = 100,
        label_range: tuple[float, float] = (0.7, 1.2),
        entropy_coef: float = 1e-3,
        penalty: PenaltyVariant = "wgan",
        penalty_k: float = 1.0,
        penalty_weight: float = 10.0,
        penalty_one_sided: bool = True,
        penalty_noise_std: float = 10.0,
        reward_form: RewardForm = "minimax",
        absorbing: bool = False,
        absorbing_scale: float = 10.0,
        obs_normalization: Literal["running", "expert"] = "running",
        precondition: bool = False,
        precondition_k: float = 9.0,
        seed: int = 0,
        name: str = "gail",
    ) -> None:
        _check_choice("penalty", penalty, PENALTY_VARIANTS)
        _check_choice("reward_form", reward_form, REWARD_FORMS)
        if batch_size < 1 or d_steps < 1:
            raise ValueError(f"GAILReward: batch_size and d_steps must be >= 1, got {batch_size} and {d_steps}")
        self.name, self.update_every = name, update_every
        self.batch_size, self.d_steps = batch_size, d_steps
        self.label_range, self.entropy_coef = (float(label_range[0]), float(label_range[1])), entropy_coef
        self.penalty, self.penalty_k, self.penalty_weight = penalty, penalty_k, penalty_weight
        self.penalty_one_sided, self.penalty_noise_std = penalty_one_sided, penalty_noise_std
        self.reward_form, self.absorbing = reward_form, absorbing
        self.expert = self._load_expert(expert, max_expert_episodes, absorbing)
        obs_dim, act_dim = self.expert.obs.shape[1], self.expert.action.shape[1]
        self.generator = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.discriminator = Discriminator(
                obs_dim, act_dim, hidden, spectral_norm=spectral_norm, layer_norm=layer_norm, absorbing=absorbing,
                absorbing_scale=absorbing_scale,
            )
        self.obs_normalization = obs_normalization
        _check_choice("obs_normalization", obs_normalization, ("running", "expert"))
        self.discriminator.observe(torch.from_numpy(self.expert.obs))
        self.optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=lr)
        self.multiplier = None
        if precondition:
            from robo_reward.methods.forward_model import PessimisticMultiplier

            self.multiplier = PessimisticMultiplier(obs_dim, act_dim, k_f=precondition_k, seed=seed + 1)
        self.num_updates = 0

    @staticmethod
    def _load_expert(expert: str | TransitionBatch, max_episodes: int | None, absorbing: bool) -> TransitionBatch:
        if isinstance(expert, TransitionBatch):
            batch = expert
        else:
            from robo_reward.demos import load_transitions

            batch = load_transitions(expert, max_episodes=max_episodes)
        if not isinstance(batch.obs, np.ndarray) or batch.obs.ndim != 2:
            raise ValueError("GAILReward needs flat array expert observations of shape (N, obs_dim)")
        if absorbing:
            from robo_reward.absorbing import add_absorbing_states

            batch = add_absorbing_states(batch)
        action = np.asarray(batch.action, dtype=np.float32).reshape(batch.num, -1)
        return batch.__class__(
            obs=np.asarray(batch.obs, dtype=np.float32), action=action,
            next_obs=np.asarray(batch.next_obs, dtype=np.float32), reward=batch.reward,
            terminated=batch.terminated, truncated=batch.truncated,
        )

    # -- protocol ----------------------------------------------------------------------------------------------
    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        d = self.discriminator
        if not (isinstance(observation_space, gym.spaces.Box) and observation_space.shape == (d.obs_dim,)):
            hint = " (absorbing=True expects the AbsorbingStateWrapper's extra flag entry)" if self.absorbing else ""
            raise SpaceMismatchError(
                f"GAILReward's expert observations have shape ({d.obs_dim},) but the env's observation space is "
                f"{observation_space}{hint}; use demos recorded on this env"
            )
        if not (isinstance(action_space, gym.spaces.Box) and action_space.shape == (d.act_dim,)):
            raise SpaceMismatchError(
                f"GAILReward's expert actions have shape ({d.act_dim},) but the env's action space is {action_space}"
            )

    def bind(self, observation_space: gym.Space, action_space: gym.Space, num_envs: int) -> None:
        """Check the spaces and map actions from the action space's bounds to [-1, 1] inside ``D``."""
        super().bind(observation_space, action_space, num_envs)
        assert isinstance(action_space, gym.spaces.Box)
        if np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high)):
            d = self.discriminator
            low, high = action_space.low.astype(np.float32), action_space.high.astype(np.float32)
            same = np.allclose(d.act_low.numpy(), low) and np.allclose(d.act_high.numpy(), high)
            if not same and self.num_updates > 0:
                raise SpaceMismatchError(
                    f"GAILReward was trained with action bounds [{d.act_low.tolist()}, {d.act_high.tolist()}] "
                    f"but is now bound to {action_space}; bind it before training"
                )
            d.act_low.copy_(torch.as_tensor(low))
            d.act_high.copy_(torch.as_tensor(high))

    def _tensors(self, batch: TransitionBatch) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.discriminator
        obs = np.asarray(batch.obs, dtype=np.float32)
        act = np.asarray(batch.action, dtype=np.float32).reshape(batch.num, -1)
        if obs.ndim != 2 or obs.shape[1] != d.obs_dim or act.shape[1] != d.act_dim:
            raise RewardError(
                f"GAILReward expects observations (N, {d.obs_dim}) and actions (N, {d.act_dim}), got {obs.shape} "
                f"and {act.shape}"
            )
        return torch.from_numpy(obs), torch.from_numpy(act)

    def logits(self, batch: TransitionBatch) -> np.ndarray:
        """``D(s, a)`` per row."""
        obs, act = self._tensors(batch)
        self.discriminator.eval()
        with torch.no_grad():
            return self.discriminator(obs, act).numpy().astype(np.float64)

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        obs, act = self._tensors(batch)
        self.discriminator.eval()
        with torch.no_grad():
            reward = reward_from_logits(self.discriminator(obs, act), self.reward_form)
        if self.multiplier is not None:
            reward = reward * self.multiplier(*self.discriminator.features(obs, act))
        return reward.numpy().astype(np.float64)

    def evaluate(self, batch: TransitionBatch) -> RewardOutput:
        total = self(batch)
        return RewardOutput(total, {self.name: total})

    def update(self, batch: TransitionBatch) -> dict[str, float]:
        """``d_steps`` discriminator steps on policy rows of ``batch`` against expert rows; returns mean metrics."""
        obs_p, act_p = self._tensors(batch)
        d = self.discriminator
        d.train()
        if self.obs_normalization == "running":
            d.observe(obs_p)
        sums: dict[str, float] = {}
        for _ in range(self.d_steps):
            n = min(self.batch_size, len(obs_p))
            idx_p = torch.from_numpy(self.rng.choice(len(obs_p), n, replace=False))
            idx_e = torch.from_numpy(self.rng.integers(0, self.expert.num, n))
            s_p, a_p = d.features(obs_p[idx_p], act_p[idx_p])
            s_e, a_e = d.features(*[torch.from_numpy(x[idx_e.numpy()]) for x in (self.expert.obs, self.expert.action)])
            logits = d.logits(torch.cat([s_p, s_e]), torch.cat([a_p, a_e]))
            loss, metrics = discriminator_loss(
                logits[:n], logits[n:], label_range=self.label_range, entropy_coef=self.entropy_coef,
                generator=self.generator,
            )
            if self.penalty != "none":
                s_x, a_x = penalty_points(
                    self.penalty, s_p, a_p, s_e, a_e, noise_std=self.penalty_noise_std, generator=self.generator
                )
                gp, norms = gradient_penalty(
                    d.logits, s_x, a_x, k=self.penalty_k, weight=self.penalty_weight, one_sided=self.penalty_one_sided
                )
                loss = loss + gp
            else:
                s_x, a_x = interpolate(s_p, a_p, s_e, a_e, generator=self.generator)
                gp, norms = torch.zeros(()), input_gradient_norm(d.logits, s_x, a_x)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            with torch.no_grad():
                p_pol, p_exp = torch.sigmoid(logits[:n]), torch.sigmoid(logits[n:])
            metrics.update(
                loss=float(loss.detach()), penalty=float(gp.detach()), grad_norm=float(norms.mean()),
                d_policy=float(p_pol.mean()), d_expert=float(p_exp.mean()),
                accuracy=float(((p_pol < 0.5).float().mean() + (p_exp > 0.5).float().mean()) / 2),
            )
            if self.multiplier is not None:
                nxt = torch.from_numpy(np.asarray(batch.next_obs, dtype=np.float32)[idx_p.numpy()])
                s_next = (nxt - d.obs_mean) / d.obs_std
                metrics.update(self.multiplier.update(s_p.detach(), a_p.detach(), s_next))
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + v
        self.num_updates += 1
        return {k: v / self.d_steps for k, v in sums.items()}

    # -- persistence -------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "discriminator": self.discriminator.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "rng": self.rng.bit_generator.state,
            "num_updates": self.num_updates,
        }
        if self.multiplier is not None:
            state["multiplier"] = self.multiplier.extra_state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        expected = {"discriminator", "optimizer", "generator", "rng", "num_updates"}
        if self.multiplier is not None:
            expected.add("multiplier")
        if set(state) != expected:
            raise RewardError(
                f"checkpoint for '{self.name}' has entries {sorted(state)} but this GAILReward expects "
                f"{sorted(expected)}; was it saved with a different precondition setting?"
            )
        try:
            self.discriminator.load_state_dict(state["discriminator"])
        except RuntimeError as exc:
            raise RewardError(
                f"discriminator checkpoint for '{self.name}' does not match this network (hidden sizes, "
                f"spectral_norm, layer_norm or input sizes differ): {exc}"
            ) from exc
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.rng.bit_generator.state = state["rng"]
        self.num_updates = int(state["num_updates"])
        if self.multiplier is not None:
            self.multiplier.load_extra_state_dict(state["multiplier"])
