"""Pieces shared by the curiosity rewards (BYOL-Explore, BYOL-Hindsight, RND).

* :class:`ObsEncoder` turns Box observations into network inputs: integer codes with small ranges (MiniGrid's
  object/colour/state codes) become one-hot blocks, everything else is scaled to [-1, 1].
* :func:`action_features` one-hot encodes Discrete actions and flattens Box actions.
* :class:`EMANormalizer` is BYOL-Explore's reward normaliser: EMA estimates of E[r] and E[r^2], sigma =
  sqrt(E[r^2] - E[r]^2), and the prioritised reward max((r - mu) / sigma, 0) (Guo et al., 2022, section 3.3).
* :func:`split_by_env` cuts a flat, time-ordered :class:`TransitionBatch` into one padded sequence per env.
* :class:`IntrinsicReward` is the base of the three rewards: it normalises the raw bonus, scales it by the mixing
  weight lambda and reports the raw, normalised and weighted streams as separate terms.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from robo_reward.protocol import Obs, Reward, RewardError, RewardOutput, SpaceMismatchError, TransitionBatch


class ObsEncoder:
    """Box observations -> float32 network inputs (one-hot for small integer codes, else scaled to [-1, 1]).

    :param space: the env's (single) observation space; Dict spaces are refused.
    :param max_onehot: integer elements with at most this many values are one-hot encoded.

    >>> enc = ObsEncoder(gym.spaces.Box(0, np.array([2, 1]), dtype=np.uint8))
    >>> enc.dim, enc(np.array([[2, 0]], dtype=np.uint8)).tolist()
    (5, [[0.0, 0.0, 1.0, 1.0, 0.0]])
    """

    def __init__(self, space: gym.Space, *, max_onehot: int = 32) -> None:
        if not isinstance(space, gym.spaces.Box):
            raise SpaceMismatchError(f"curiosity rewards read flat Box observations, got {space}; flatten dict "
                                     "observations first (e.g. gymnasium.wrappers.FlattenObservation)")
        low, high = space.low.reshape(-1).astype(np.float64), space.high.reshape(-1).astype(np.float64)
        finite = np.isfinite(low) & np.isfinite(high)
        levels = np.where(finite, high - low + 1, np.inf)
        self.onehot = bool(np.issubdtype(space.dtype, np.integer) and finite.all() and levels.max() <= max_onehot)
        self.shape = space.shape
        self.low = low.astype(np.float32)
        if self.onehot:
            sizes = levels.astype(np.int64)
            self.offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(sizes)[:-1]]))
            self.dim = int(sizes.sum())
        else:
            self.center = np.where(finite, (low + high) / 2, 0.0).astype(np.float32)
            self.scale = np.where(finite, np.maximum((high - low) / 2, 1e-8), 1.0).astype(np.float32)
            self.dim = int(low.size)

    def __call__(self, obs: Obs | np.ndarray) -> torch.Tensor:
        if isinstance(obs, dict):
            raise SpaceMismatchError(f"curiosity rewards read flat Box observations, got a dict with keys {sorted(obs)}")
        x = np.asarray(obs).reshape(len(obs), -1)
        if x.shape[1] != len(self.low):
            raise SpaceMismatchError(f"observation rows have {x.shape[1]} values, the bound space has {len(self.low)}")
        if not self.onehot:
            return torch.from_numpy((x.astype(np.float32) - self.center) / self.scale)
        idx = torch.from_numpy((x - self.low).astype(np.int64)) + self.offsets
        return torch.zeros(len(x), self.dim).scatter_(1, idx, 1.0)


class RunningStandardizer:
    """Per-feature running mean and variance (exact, Chan et al.'s parallel update); ``(x - mean) / std`` clipped.

    RND's observation normalisation (Burda et al., 2018): with one-hot MiniGrid codes most features are nearly
    constant, and without it random encoders map every observation to nearly the same direction, which lets
    BYOL's self-predicting embeddings collapse. Before any data it is the identity.

    >>> s = RunningStandardizer(2)
    >>> s.observe(torch.tensor([[0.0, 1.0], [2.0, 1.0]]))
    >>> s(torch.tensor([[2.0, 1.0]])).round(decimals=3).tolist()
    [[1.0, 0.0]]
    """

    def __init__(self, dim: int, *, clip: float = 5.0, eps: float = 1e-4) -> None:
        self.mean, self.var, self.count = torch.zeros(dim), torch.ones(dim), 0
        self.clip, self.eps = float(clip), float(eps)

    def observe(self, x: torch.Tensor) -> None:
        n = len(x)
        if n == 0:
            return
        m, v = x.mean(0), x.var(0, unbiased=False)
        if self.count == 0:
            self.mean, self.var = m, v
        else:
            total = self.count + n
            delta = m - self.mean
            self.var = (self.var * self.count + v * n + delta**2 * self.count * n / total) / total
            self.mean = self.mean + delta * n / total
        self.count += n

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.count == 0:
            return x
        return ((x - self.mean) / (self.var + self.eps).sqrt()).clamp(-self.clip, self.clip)

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.clone(), "var": self.var.clone(), "count": self.count}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if len(state["mean"]) != len(self.mean):
            raise RewardError(f"observation statistics have {len(state['mean'])} features, expected {len(self.mean)}")
        self.mean, self.var, self.count = state["mean"].clone(), state["var"].clone(), int(state["count"])


def action_dim(space: gym.Space) -> int:
    """Width of :func:`action_features` for ``space`` (Discrete or Box)."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.Box):
        return int(np.prod(space.shape))
    raise SpaceMismatchError(f"curiosity rewards need a Discrete or Box action space, got {space}")


def action_features(actions: np.ndarray, space: gym.Space) -> torch.Tensor:
    """One-hot Discrete actions (relative to ``space.start``) or flattened Box actions, float32."""
    a = np.asarray(actions)
    if isinstance(space, gym.spaces.Discrete):
        idx = torch.from_numpy(a.reshape(-1).astype(np.int64) - int(space.start))
        return torch.nn.functional.one_hot(idx, int(space.n)).float()
    return torch.from_numpy(a.reshape(len(a), -1).astype(np.float32))


class EMANormalizer:
    """BYOL-Explore's normaliser: EMA mean and second moment, sigma = sqrt(E[r^2] - E[r]^2).

    The first batch initialises both moments (so there is no start-up bias and no made-up initial values, the
    pitfall of a normaliser starting at mean 0, E[r^2] 1). ``mode="prioritized"`` returns max((r - mu)/sigma, 0)
    (rewards below the running mean pay nothing); ``mode="scale"`` returns r / sigma (RND's normalisation).

    >>> n = EMANormalizer(decay=0.5)
    >>> n.observe(np.array([1.0, 3.0])); n.mean, round(n.std, 6)
    (2.0, 1.0)
    >>> n.normalize(np.array([1.0, 4.0])).round(6).tolist()
    [0.0, 2.0]
    """

    def __init__(self, *, decay: float = 0.99, mode: str = "prioritized", eps: float = 1e-8) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"normaliser decay must be in [0, 1), got {decay}")
        if mode not in ("prioritized", "scale"):
            raise ValueError(f"normaliser mode must be 'prioritized' or 'scale', got {mode!r}")
        self.decay, self.mode, self.eps = float(decay), mode, float(eps)
        self.mean, self.sq_mean, self.count = 0.0, 0.0, 0

    def observe(self, x: np.ndarray) -> None:
        """Fold one batch of raw rewards into the moments."""
        x = np.asarray(x, dtype=np.float64)
        if x.size == 0:
            return
        d = self.decay if self.count else 0.0
        self.mean = d * self.mean + (1 - d) * float(x.mean())
        self.sq_mean = d * self.sq_mean + (1 - d) * float(np.mean(x**2))
        self.count += x.size

    @property
    def std(self) -> float:
        # E[r^2] - E[r]^2 >= 0 in exact arithmetic; the max only guards float round-off.
        return float(np.sqrt(max(self.sq_mean - self.mean**2, 0.0) + self.eps))

    def normalize(self, x: np.ndarray) -> np.ndarray:
        if self.mode == "scale":
            return np.asarray(x, dtype=np.float64) / self.std
        return np.maximum((np.asarray(x, dtype=np.float64) - self.mean) / self.std, 0.0)

    def state_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "sq_mean": self.sq_mean, "count": float(self.count)}

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        self.mean, self.sq_mean, self.count = float(state["mean"]), float(state["sq_mean"]), int(state["count"])


@dataclass(frozen=True)
class EnvSequences:
    """Rows of a flat batch arranged as one time-ordered sequence per env: ``index[e, t]`` is a row of the batch
    (``valid[e, t]`` False where env ``e`` has fewer rows; those entries point at row 0)."""

    env_ids: np.ndarray
    index: np.ndarray
    valid: np.ndarray


def split_by_env(batch: TransitionBatch) -> EnvSequences:
    """Arrange a time-ordered batch (e.g. ``TransitionBatch.concat`` of vector steps) by ``env_ids``.

    >>> b = TransitionBatch(np.zeros((3, 1)), np.zeros(3), np.zeros((3, 1)), np.zeros(3), np.zeros(3, bool),
    ...                     np.zeros(3, bool), env_ids=np.array([1, 0, 1]))
    >>> s = split_by_env(b); s.env_ids.tolist(), s.index.tolist(), s.valid.tolist()
    ([0, 1], [[1, 0], [0, 2]], [[True, False], [True, True]])
    """
    order = np.argsort(batch.env_ids, kind="stable")
    envs, first, counts = np.unique(batch.env_ids[order], return_index=True, return_counts=True)
    pos = np.arange(len(order)) - np.repeat(first, counts)
    row = np.repeat(np.arange(len(envs)), counts)
    index = np.zeros((len(envs), int(counts.max(initial=0))), dtype=np.int64)
    valid = np.zeros(index.shape, dtype=bool)
    index[row, pos], valid[row, pos] = order, True
    return EnvSequences(envs, index, valid)


class IntrinsicReward(Reward):
    """Base of the curiosity rewards: pays ``coef * normalise(raw)`` and reports every stream.

    Subclasses implement :meth:`raw_reward` (the un-normalised bonus and any extra terms) and :meth:`update`.
    ``evaluate`` folds each step's raw bonus into the normaliser and reports, under the reward's name ``n``:
    ``n`` (what is paid: ``coef`` = lambda times the normalised bonus), ``n/raw`` and ``n/normalized``; the adapter
    adds ``extrinsic``, so the agent's reward is r_ext + lambda * r_int with both streams logged apart. (In a YAML
    config, a term's ``weight`` multiplies the whole term, which is the same lambda.)
    """

    obs_stats: RunningStandardizer  # set by the subclass's bind
    rng: torch.Generator

    stateless = False

    def __init__(self, *, coef: float, normalize: bool, norm_decay: float, norm_mode: str, seed: int,
                 label: str) -> None:
        if coef < 0:
            raise ValueError(f"intrinsic coefficient (lambda) must be >= 0, got {coef}")
        self.coef, self.seed, self.name = float(coef), int(seed), label
        self.normalizer = EMANormalizer(decay=norm_decay, mode=norm_mode) if normalize else None

    @abc.abstractmethod
    def raw_reward(self, batch: TransitionBatch) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The un-normalised bonus of each row and any extra terms to report."""

    def evaluate(self, batch: TransitionBatch) -> RewardOutput:
        if self.observation_space is None:
            raise RewardError(f"reward '{self.name}' is not bound to an env yet: wrap an env with it first")
        raw, extra = self.raw_reward(batch)
        if self.normalizer is not None:
            self.normalizer.observe(raw)
            bonus = self.normalizer.normalize(raw)
        else:
            bonus = raw
        paid = self.coef * bonus
        terms = {self.name: paid, f"{self.name}/raw": raw, f"{self.name}/normalized": bonus}
        terms.update({f"{self.name}/{k}": v for k, v in extra.items()})
        return RewardOutput(paid, terms)

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        return self.evaluate(batch).total

    def normalizer_state(self) -> dict[str, Any]:
        return {} if self.normalizer is None else self.normalizer.state_dict()

    def load_shared_state(self, state: Mapping[str, Any]) -> None:
        """Restore what every curiosity reward keeps beside its networks: observation statistics, the reward
        normaliser and the random generator."""
        self.obs_stats.load_state_dict(state["obs_stats"])
        if self.normalizer is not None and state["normalizer"]:
            self.normalizer.load_state_dict(state["normalizer"])
        self.rng.set_state(state["rng"])
