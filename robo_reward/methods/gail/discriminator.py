"""The discriminator of Lipschitz-regularised off-policy GAIL: network, loss, gradient penalty, reward forms.

Blondé, Strasser, Kalousis, "Lipschitzness Is All You Need To Tame Off-policy Generative Adversarial Imitation
Learning", Machine Learning 2022 (arXiv 2006.16785). The pieces, each usable and tested alone:

* :class:`Discriminator`: MLP ``D(s, a)`` with layer norm and spectral norm (both on by default, as in the paper),
  with the input standardisation of :class:`robo_reward.methods.gail.GAILReward` built in.
* :func:`smoothed_targets` / :func:`discriminator_loss`: BCE on logits, policy label 0, expert labels drawn from
  ``U(0.7, 1.2)`` (one-sided label smoothing, values above 1 intended), minus ``0.001 * H(sigmoid(D))``.
* :func:`penalty_points` / :func:`gradient_penalty`: ``lambda * max(0, ||grad_(s,a) D|| - k)^2`` at points drawn
  with *separate* interpolation coefficients for state and action ("wgan"), or around expert ("dragan") or policy
  ("nagard") samples with Gaussian noise; two-sided ``(||grad D|| - k)^2`` as an option.
* :func:`reward_from_logits`: ``-log(1 - sigmoid(D) + 1e-8)`` (minimax, >= 0, the default) or the logit
  ``log sigmoid(D) - log(1 - sigmoid(D))``.

Hidden activations are LeakyReLU(0.1) (a reconstruction: the paper fixes layer norm and spectral norm, not the
activation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

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
