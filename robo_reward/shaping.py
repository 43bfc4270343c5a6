"""The reward-design toolbox: composable terms that shape, combine, bound and gate rewards.

* :class:`PotentialShaping`: F = gamma * Phi(s') - Phi(s) (Ng, Harada & Russell, 1999) with the package's
  terminal rule: Phi(s') = 0 on true termination, the real Phi(s') on truncation, gamma from the learner.
* :class:`WeightedSum` of terms; :class:`Extrinsic` (the env's own reward as a term).
* :class:`RunningNormalize` (Welford mean/std or EMA) with clipping; :class:`Clip`.
* :class:`PreferenceSigmoid` (PAR, Fu et al., arXiv 2502.18770): sigmoid(r - r_ref).
* :class:`GatedAccumulation` (G-RA, Hu et al., arXiv 2508.10548): step rewards count only if the outcome passes tau.
* :class:`ProcessRewardClip` and :class:`ProcessRewardDelta` (Gao et al., arXiv 2410.15115).

Normalising *after* potential shaping rescales F by running statistics, which are not constant, so the
invariance guarantee no longer holds exactly (specs/shaping.md); normalise the learned term before shaping.
"""

from __future__ import annotations

import abc
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from robo_reward.potentials import Potential, build_potential
from robo_reward.protocol import Obs, Reward, RewardError, RewardOutput, TransitionBatch
from robo_reward.registry import build_reward


class Extrinsic(Reward):
    """The environment's own reward as a term (e.g. to normalise or gate it)."""

    name = "extrinsic"

    def __init__(self, *, label: str = "extrinsic") -> None:
        self.name = label

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        return np.asarray(batch.reward, dtype=np.float64)


class PotentialShaping(Reward):
    """Potential-based shaping F(s, a, s') = gamma * Phi(s') - Phi(s) (Ng, Harada & Russell, ICML 1999).

    Optimal policies are unchanged and Q'(s, a) = Q(s, a) - Phi(s), provided that (i) Phi(s') = 0 when the episode
    truly terminates (an absorbing state), (ii) Phi(s') is the real potential of the final observation when a
    time limit truncates it (the learner bootstraps there), and (iii) gamma is the learner's discount. Leave
    ``gamma=None`` to take it from the agent (RewardCallback or ``set_discount``); a given gamma that differs from
    the agent's raises. Phi(s) is cached per env from the previous step, so Phi is evaluated once per step.

    ``naive=True`` pays the plain difference Phi(s') - Phi(s) instead (gamma' = 1, same terminal rule). It adds
    (1 - gamma) Phi(s') per step to the potential-based term, pays for parking in high-potential states and is
    *not* policy-invariant: it exists for ablations (Robo-Dopamine's "semantic trap").

    >>> from robo_reward.potentials import GoalDistancePotential
    >>> shaping = PotentialShaping(GoalDistancePotential(delta=[0]), gamma=0.9)
    >>> shaping.bind(gym.spaces.Box(-9, 9, (1,)), gym.spaces.Box(-1, 1, (1,)), num_envs=1)
    >>> shaping.reset(np.array([[2.0]]), np.array([True]))
    >>> b = TransitionBatch(np.array([[2.0]]), np.zeros((1, 1)), np.array([[1.0]]), np.zeros(1),
    ...                     terminated=np.array([False]), truncated=np.array([False]))
    >>> shaping(b).round(6).tolist()   # 0.9 * -1 - (-2)
    [1.1]
    """

    name = "shaping"
    stateless = False

    def __init__(self, potential: Potential | Mapping[str, Any], *, gamma: float | None = None,
                 naive: bool = False, label: str = "shaping") -> None:
        self.potential = build_potential(potential)
        self.name = label
        self.naive = naive
        self._configured_gamma = gamma
        self.gamma = gamma
        self._phi = np.zeros(0)

    def bind(self, observation_space: gym.Space, action_space: gym.Space, num_envs: int) -> None:
        super().bind(observation_space, action_space, num_envs)
        self.potential.bind(observation_space, num_envs)
        self._phi = np.full(num_envs, np.nan)

    def set_discount(self, gamma: float) -> None:
        if self._configured_gamma is not None and not np.isclose(self._configured_gamma, gamma):
            raise ValueError(
                f"PotentialShaping '{self.name}' was configured with gamma={self._configured_gamma} but the learner "
                f"uses gamma={gamma}; with a different gamma, F adds (gamma' - gamma) * Phi(s') per step and can "
                "change the optimal policy. Remove gamma from the shaping config to take the learner's."
            )
        self.gamma = gamma

    def reset(self, obs: Obs, env_mask: np.ndarray) -> None:
        if len(self._phi) != len(env_mask):
            raise RewardError(f"shaping term '{self.name}' was bound to {len(self._phi)} envs, reset got "
                              f"{len(env_mask)}; call bind() with the env's num_envs first")
        if env_mask.any():
            self._phi[env_mask] = self.potential.initial(obs, env_mask)

    def _discount(self) -> float:
        if self.gamma is None:
            raise RewardError(
                f"shaping term '{self.name}' does not know the learner's discount: train through "
                "robo_reward.RewardCallback (it passes model.gamma) or call reward.set_discount(gamma)"
            )
        return self.gamma

    def _shape(self, phi_s: np.ndarray, phi_next: np.ndarray, terminated: np.ndarray) -> np.ndarray:
        gamma = 1.0 if self.naive else self._discount()
        return gamma * np.where(terminated, 0.0, phi_next) - phi_s

    def evaluate(self, batch: TransitionBatch) -> RewardOutput:
        phi_s = self._phi[batch.env_ids]
        if np.isnan(phi_s).any():
            raise RewardError(
                f"shaping term '{self.name}' has no Phi(s) for envs {batch.env_ids[np.isnan(phi_s)].tolist()}: "
                "reset(obs, env_mask) must run when their episodes begin (the robo_reward wrappers do this)"
            )
        phi_next = np.asarray(self.potential.next(batch), dtype=np.float64)
        self._phi[batch.env_ids] = phi_next
        f = self._shape(phi_s, phi_next, batch.terminated)
        return RewardOutput(f, {self.name: f, f"{self.name}/phi": phi_next})

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        return self.evaluate(batch).total

    def relabel(self, batch: TransitionBatch) -> np.ndarray:
        if not self.potential.stateless:
            return super().relabel(batch)
        return self._shape(self.potential.value(batch.obs), self.potential.value(batch.next_obs), batch.terminated)

    def state_dict(self) -> dict[str, Any]:
        return {"phi": self._phi.copy(), "potential": self.potential.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._phi = np.asarray(state["phi"], dtype=np.float64).copy()
        self.potential.load_state_dict(state.get("potential", {}))


def _unique_labels(rewards: Sequence[Reward]) -> list[str]:
    labels: list[str] = []
    for r in rewards:
        label, k = r.name, 1
        while label in labels:
            k += 1
            label = f"{r.name}_{k}"
        labels.append(label)
    return labels


class WeightedSum(Reward):
    """sum_i w_i * term_i, reporting each weighted term (they add up to the total) and the terms' own parts.

    >>> s = WeightedSum([Extrinsic(), {"name": "extrinsic"}], weights=[1.0, 0.5])
    >>> b = TransitionBatch(np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((1, 1)), np.array([2.0]),
    ...                     np.zeros(1, bool), np.zeros(1, bool))
    >>> out = s.evaluate(b)
    >>> out.total.tolist(), sorted(out.terms)
    ([3.0], ['extrinsic', 'extrinsic_2'])
    """

    name = "sum"

    def __init__(self, terms: Sequence[Reward | Mapping[str, Any] | str], *,
                 weights: Sequence[float] | None = None, label: str = "sum") -> None:
        if not terms:
            raise ValueError("WeightedSum needs at least one term")
        self.terms = [build_reward(t) for t in terms]
        self.weights = np.ones(len(self.terms)) if weights is None else np.asarray(weights, dtype=np.float64)
        if len(self.weights) != len(self.terms):
            raise ValueError(f"WeightedSum got {len(self.terms)} terms but {len(self.weights)} weights")
        self.labels = _unique_labels(self.terms)
        self.name = label

    @property
    def stateless(self) -> bool:  # type: ignore[override]
        return all(t.stateless for t in self.terms)

    @property
    def can_relabel(self) -> bool:  # type: ignore[override]
        return all(t.can_relabel for t in self.terms)

    def children(self) -> list[Reward]:
        return self.terms

    def evaluate(self, batch: TransitionBatch) -> RewardOutput:
        total = np.zeros(batch.num)
        parts: dict[str, np.ndarray] = {}
        for w, label, term in zip(self.weights, self.labels, self.terms, strict=True):
            out = term.evaluate(batch)
            contribution = w * out.total
            total = total + contribution
            parts[label] = contribution
            for key, value in out.terms.items():
                if key != term.name:
                    parts[f"{label}/{key.removeprefix(term.name + '/')}"] = value
        return RewardOutput(total, parts)

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        return self.evaluate(batch).total

    def relabel(self, batch: TransitionBatch) -> np.ndarray:
        return sum((w * t.relabel(batch) for w, t in zip(self.weights, self.terms, strict=True)),
                   start=np.zeros(batch.num))


class TermTransform(Reward):
    """A transform of one child term; reports its output under ``name`` and the child's value as ``name/raw``."""

    keeps_episode_state = False

    def __init__(self, term: Reward | Mapping[str, Any] | str, *, label: str | None = None) -> None:
        self.term = build_reward(term)
        self.name = label or self.term.name

    @property
    def stateless(self) -> bool:  # type: ignore[override]
        return self.term.stateless and not self.keeps_episode_state

    @property
    def can_relabel(self) -> bool:  # type: ignore[override]
        return self.term.can_relabel and not self.keeps_episode_state

    def children(self) -> list[Reward]:
        return [self.term]

    @abc.abstractmethod
    def transform(self, raw: np.ndarray, batch: TransitionBatch) -> np.ndarray:
        """The transformed term, from the child's values ``raw`` for ``batch``."""

    def transform_stored(self, raw: np.ndarray, batch: TransitionBatch) -> np.ndarray:
        """The transform for replay relabelling (defaults to :meth:`transform`; running stats are not updated)."""
        return self.transform(raw, batch)

    def evaluate(self, batch: TransitionBatch) -> RewardOutput:
        inner = self.term.evaluate(batch)
        out = self.transform(inner.total, batch)
        parts = {self.name: out, f"{self.name}/raw": inner.total}
        parts.update({f"{self.name}/{k}": v for k, v in inner.terms.items() if k != self.term.name})
        return RewardOutput(out, parts)

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        return self.evaluate(batch).total

    def relabel(self, batch: TransitionBatch) -> np.ndarray:
        if self.keeps_episode_state:
            return super().relabel(batch)
        return self.transform_stored(self.term.relabel(batch), batch)


class RunningNormalize(TermTransform):
    """(r - mean) / std of a term with running statistics, clipped to [-clip, clip].

    ``mode="meanstd"`` uses exact running moments (Chan et al.'s parallel Welford update); ``mode="ema"`` uses
    exponential moving averages of E[r] and E[r^2] with ``decay`` and std = sqrt(E[r^2] - E[r]^2), the normaliser
    BYOL-Explore describes. ``center=False`` only divides by std. Statistics update on every step and are frozen
    during replay relabelling.
    """

    def __init__(self, term: Reward | Mapping[str, Any] | str, *, mode: str = "meanstd", decay: float = 0.99,
                 clip: float | None = 10.0, center: bool = True, eps: float = 1e-8, label: str | None = None) -> None:
        super().__init__(term, label=label)
        if mode not in ("meanstd", "ema"):
            raise ValueError(f"RunningNormalize mode must be 'meanstd' or 'ema', got {mode!r}")
        self.mode, self.decay, self.clip, self.center, self.eps = mode, float(decay), clip, center, float(eps)
        self.mean, self.var, self.count = 0.0, 1.0, 0.0
        self._sq = 1.0

    def observe(self, x: np.ndarray) -> None:
        """Fold a batch of raw values into the running statistics."""
        x = np.asarray(x, dtype=np.float64)
        if x.size == 0:
            return
        if self.mode == "meanstd":
            n, m, v = x.size, x.mean(), x.var()
            total = self.count + n
            delta = m - self.mean
            self.var = (self.var * self.count + v * n + delta**2 * self.count * n / total) / total
            self.mean += delta * n / total
            self.count = total
        else:
            first = self.count == 0
            d = 0.0 if first else self.decay
            self.mean = d * self.mean + (1 - d) * x.mean()
            self._sq = d * self._sq + (1 - d) * np.mean(x**2)
            self.var = max(self._sq - self.mean**2, 0.0)
            self.count += x.size

    @property
    def std(self) -> float:
        return float(np.sqrt(self.var + self.eps))

    def transform_stored(self, raw: np.ndarray, batch: TransitionBatch) -> np.ndarray:
        out = (raw - self.mean if self.center else raw) / self.std
        return out if self.clip is None else np.clip(out, -self.clip, self.clip)

    def transform(self, raw: np.ndarray, batch: TransitionBatch) -> np.ndarray:
        self.observe(raw)
        return self.transform_stored(raw, batch)

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "var": self.var, "count": self.count, "sq": self._sq, "term": self.term.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.mean, self.var, self.count, self._sq = (float(state[k]) for k in ("mean", "var", "count", "sq"))
        self.term.load_state_dict(state["term"])


class Clip(TermTransform):
    """A term clipped to [low, high]."""

    def __init__(self, term: Reward | Mapping[str, Any] | str, *, low: float = -1.0, high: float = 1.0,
                 label: str | None = None) -> None:
        super().__init__(term, label=label)
        if low > high:
            raise ValueError(f"Clip needs low <= high, got low={low}, high={high}")
        self.low, self.high = low, high

    def transform(self, raw: np.ndarray, batch: TransitionBatch) -> np.ndarray:
        return np.clip(raw, self.low, self.high)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class PreferenceSigmoid(TermTransform):
    """Preference As Reward (PAR, Fu et al., arXiv 2502.18770): r_RL = mean_m sigmoid(r - r_ref_m), in (0, 1).

    ``reference`` is a fixed score, a list of scores (one per reference rollout), or ``"running_median"``: the
    median of the last ``window`` raw values (a reconstruction for robot rollouts, where no reference response
    exists; the median of recent behaviour plays the previous-policy reference).
    """

    def __init__(self, term: Reward | Mapping[str, Any] | str, *,
                 reference: float | Sequence[float] | str = 0.0, window: int = 1000, label: str | None = None) -> None:
        super().__init__(term, label=label)
        if isinstance(reference, str):
            if reference != "running_median":
                raise ValueError(f"PreferenceSigmoid reference must be a number, a list or 'running_median', "
                                 f"got {reference!r}")
            self.references: np.ndarray | None = None
        else:
            self.references = np.atleast_1d(np.asarray(reference, dtype=np.float64))
        self._recent: deque[float] = deque(maxlen=window)

    def _refs(self) -> np.ndarray:
        if self.references is not None:
            return self.references
        return np.array([np.median(self._recent) if self._recent else 0.0])

    def transform_stored(self, raw: np.ndarray, batch: TransitionBatch) -> np.ndarray:
        return _sigmoid(raw[:, None] - self._refs()[None, :]).mean(axis=1)

    def transform(self, raw: np.ndarray, batch: TransitionBatch) -> np.ndarray:
        out = self.transform_stored(raw, batch)
        if self.references is None:
            self._recent.extend(np.asarray(raw, dtype=np.float64).tolist())
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"recent": list(self._recent), "term": self.term.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._recent.clear()
        self._recent.extend(state["recent"])
        self.term.load_state_dict(state["term"])


class ProcessRewardClip(TermTransform):
    """Clip (Gao et al., arXiv 2410.15115): r_k -> min(r_k - eta, 0), so padding an episode never raises its return."""

    def __init__(self, term: Reward | Mapping[str, Any] | str, *, eta: float = 0.0, label: str | None = None) -> None:
        super().__init__(term, label=label)
        self.eta = float(eta)

    def transform(self, raw: np.ndarray, batch: TransitionBatch) -> np.ndarray:
        return np.minimum(raw - self.eta, 0.0)


def process_delta(rewards: np.ndarray) -> np.ndarray:
    """Delta over one whole episode: r_k - r_{k+1} for k < K and r_K at the end; the sum telescopes to r_1."""
    r = np.asarray(rewards, dtype=np.float64)
    out = r.copy()
    out[:-1] -= r[1:]
    return out


class ProcessRewardDelta(TermTransform):
    """Delta (Gao et al., arXiv 2410.15115) at step time: every episode's process rewards sum to its first one.

    The paper scores whole trajectories, so r_k - r_{k+1} is known at once. A step-time learner does not know
    r_{k+1} at step k, so this term pays each value one step late (reconstruction): 0 at the first step,
    r_{k-1} - r_k at step k, and r_{K-1} - r_K + r_K at the final step K. The return is exactly
    :func:`process_delta`'s, shifted by one step. Compose Clip-Delta as ``ProcessRewardDelta(ProcessRewardClip(...))``.
    """

    keeps_episode_state = True

    def __init__(self, term: Reward | Mapping[str, Any] | str, *, label: str | None = None) -> None:
        super().__init__(term, label=label)
        self._prev = np.zeros(0)

    def bind(self, observation_space: gym.Space, action_space: gym.Space, num_envs: int) -> None:
        super().bind(observation_space, action_space, num_envs)
        self._prev = np.full(num_envs, np.nan)

    def reset(self, obs: Obs, env_mask: np.ndarray) -> None:
        super().reset(obs, env_mask)
        self._prev[env_mask] = np.nan

    def transform(self, raw: np.ndarray, batch: TransitionBatch) -> np.ndarray:
        prev = self._prev[batch.env_ids]
        out = np.where(np.isnan(prev), 0.0, prev - raw)
        out = np.where(batch.done, out + raw, out)
        self._prev[batch.env_ids] = raw
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"prev": self._prev.copy(), "term": self.term.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._prev = np.asarray(state["prev"], dtype=np.float64).copy()
        self.term.load_state_dict(state["term"])


class GatedAccumulation(Reward):
    """Gated Reward Accumulation (G-RA, Hu et al., arXiv 2508.10548).

    Step rewards of lower-priority levels count only when every level above passes its threshold:
    R = R_0 + 1[R_0 >= tau_1] * (S_1 + 1[S_1 >= tau_2] * (S_2 + ...)), where R_0 is the episode outcome
    (the extrinsic return, or ``info["is_success"]`` at the last step with ``outcome="success"``) and S_l is the
    accumulated sum of level l's term. The outcome itself is paid by the env (extrinsic); this term pays the gated
    sums. The gate needs the episode's end, so on-policy learners get the gated sum at the episode's final step
    (the return is exact; credit moves to the end; a reconstruction from the abstract's mechanism).
    """

    name = "gated"
    stateless = False

    def __init__(self, levels: Sequence[Reward | Mapping[str, Any] | str], *, thresholds: Sequence[float],
                 outcome: str = "return", label: str = "gated") -> None:
        self.levels = [build_reward(t) for t in levels]
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        if len(self.levels) != len(self.thresholds) or not self.levels:
            raise ValueError(f"GatedAccumulation needs one threshold per level: {len(self.levels)} levels, "
                             f"{len(self.thresholds)} thresholds")
        if outcome not in ("return", "success"):
            raise ValueError(f"GatedAccumulation outcome must be 'return' or 'success', got {outcome!r}")
        self.outcome, self.name = outcome, label
        self.needs_infos = outcome == "success"
        self._outcome = np.zeros(0)
        self._sums = np.zeros((0, len(self.levels)))

    def children(self) -> list[Reward]:
        return self.levels

    def bind(self, observation_space: gym.Space, action_space: gym.Space, num_envs: int) -> None:
        super().bind(observation_space, action_space, num_envs)
        self._outcome = np.zeros(num_envs)
        self._sums = np.zeros((num_envs, len(self.levels)))

    def reset(self, obs: Obs, env_mask: np.ndarray) -> None:
        super().reset(obs, env_mask)
        self._outcome[env_mask] = 0.0
        self._sums[env_mask] = 0.0

    @staticmethod
    def gated_sum(outcome: np.ndarray, sums: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
        """The gated part of R for each row: levels count while every gate above them is open."""
        gate_values = np.concatenate([outcome[:, None], sums[:, :-1]], axis=1)
        open_ = np.cumprod(gate_values >= thresholds[None, :], axis=1).astype(bool)
        return np.where(open_, sums, 0.0).sum(axis=1)

    def evaluate(self, batch: TransitionBatch) -> RewardOutput:
        ids = batch.env_ids
        steps = np.stack([lvl(batch) for lvl in self.levels], axis=1)
        self._sums[ids] += steps
        if self.outcome == "return":
            self._outcome[ids] += batch.reward
        else:
            ended = np.flatnonzero(batch.done)
            self._outcome[ids[ended]] = [float(batch.infos[int(i)].get("is_success", 0.0)) for i in ended]
        paid = np.where(batch.done, self.gated_sum(self._outcome[ids], self._sums[ids], self.thresholds), 0.0)
        return RewardOutput(paid, {self.name: paid})

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        return self.evaluate(batch).total

    def state_dict(self) -> dict[str, Any]:
        return {"outcome": self._outcome.copy(), "sums": self._sums.copy(),
                **{f"level{i}": lvl.state_dict() for i, lvl in enumerate(self.levels)}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._outcome = np.asarray(state["outcome"], dtype=np.float64).copy()
        self._sums = np.asarray(state["sums"], dtype=np.float64).copy()
        for i, lvl in enumerate(self.levels):
            lvl.load_state_dict(state[f"level{i}"])
