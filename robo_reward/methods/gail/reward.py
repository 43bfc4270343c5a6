"""Lipschitz-regularised off-policy GAIL: a discriminator reward with a gradient penalty.

Blondé, Strasser, Kalousis, "Lipschitzness Is All You Need To Tame Off-policy Generative Adversarial Imitation
Learning", Machine Learning 2022 (arXiv 2006.16785). A discriminator ``D(s, a)`` (logits) separates expert pairs
from the learner's replay pairs; the learner maximises a reward derived from ``D``. The paper's claim is that
*local Lipschitzness of the learned reward* is what makes the off-policy version work, enforced by a gradient
penalty on ``D`` evaluated between policy and expert samples.

Pieces, each usable alone (the first four live in :mod:`robo_reward.methods.gail.discriminator`):

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
  optionally the reward is scaled by the pessimistic multiplier of :mod:`robo_reward.methods.gail.forward_model`.

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

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch

from robo_reward.methods.gail.discriminator import (
    PENALTY_VARIANTS,
    REWARD_FORMS,
    Discriminator,
    PenaltyVariant,
    RewardForm,
    _check_choice,
    discriminator_loss,
    gradient_penalty,
    input_gradient_norm,
    interpolate,
    penalty_points,
    reward_from_logits,
    smoothed_targets,
)
from robo_reward.protocol import Reward, RewardError, RewardOutput, SpaceMismatchError, TransitionBatch

__all__ = [
    "Discriminator",
    "GAILReward",
    "discriminator_loss",
    "gradient_penalty",
    "interpolate",
    "penalty_points",
    "reward_from_logits",
    "smoothed_targets",
]


class GAILReward(Reward):
    """Discriminator reward of Lipschitz-regularised off-policy GAIL (Blondé et al. 2022; module doc).

    Stateless: the reward of a transition depends on ``(s, a)`` and the current ``D`` only, so a relabelling
    replay buffer recomputes every sampled reward with the current ``D`` (historical patching).

    :param expert: the expert transitions: a demonstration source (:mod:`robo_reward.datasets`: Minari dataset id or
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
        assert isinstance(self.expert.obs, np.ndarray)
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
            from robo_reward.methods.gail.forward_model import PessimisticMultiplier

            self.multiplier = PessimisticMultiplier(obs_dim, act_dim, k_f=precondition_k, seed=seed + 1)
        self.num_updates = 0

    @staticmethod
    def _load_expert(expert: str | TransitionBatch, max_episodes: int | None, absorbing: bool) -> TransitionBatch:
        if isinstance(expert, TransitionBatch):
            batch = expert
        else:
            from robo_reward.datasets import load_transitions

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
        assert isinstance(self.expert.obs, np.ndarray)
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
