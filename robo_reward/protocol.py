"""The reward protocol that every reward in robo_reward speaks.

A reward takes a *batch* of transitions (one row per vector env, or any set of stored transitions) and
returns one float per row. Terminated and truncated are separate flags everywhere: potential-based shaping
(Ng et al., 1999) and every bootstrapping learner need to tell a true terminal state from a time limit, which
a single ``done`` flag cannot (the pitfall of imitation's ``RewardFn``).

Lifecycle, as the adapters in :mod:`robo_reward.wrappers` and :mod:`robo_reward.sb3` drive it:

1. ``bind(observation_space, action_space, num_envs)`` once at wrap time: check the spaces, size per-env state.
2. ``set_discount(gamma)`` once the learner is known (potential shaping must use the learner's gamma).
3. ``reset(obs, env_mask)`` when episodes begin in the masked envs.
4. ``evaluate(batch)`` (or ``batch -> __call__``) once per vector step for all envs.
5. ``update(batch)`` every ``update_every`` vector steps, for rewards that learn online; inside a composite each
   learned term keeps its own schedule (:meth:`Reward.learners`).
6. ``relabel(batch)`` to recompute rewards of stored, out-of-order transitions (replay-buffer relabelling).
7. ``state_dict()`` / ``load_state_dict()`` to save and load with the run.
"""

from __future__ import annotations

import abc
import functools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, TypeAlias

import gymnasium as gym
import numpy as np

Obs: TypeAlias = np.ndarray | dict[str, np.ndarray]


def _take(obs: Obs, idx: np.ndarray | slice) -> Obs:
    if isinstance(obs, dict):
        return {k: v[idx] for k, v in obs.items()}
    return obs[idx]


def _concat(parts: Sequence[Obs]) -> Obs:
    if isinstance(parts[0], dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}  # type: ignore[index]
    return np.concatenate(parts)  # type: ignore[arg-type]


@functools.cache
def _shared(kind: str, n: int) -> np.ndarray:
    """A shared read-only ``arange(n)`` or ``zeros(n)`` (rebuilt every step otherwise)."""
    values = np.arange(n) if kind == "arange" else np.zeros(n)
    values.flags.writeable = False
    return values


def _arange(n: int) -> np.ndarray:
    return _shared("arange", n)


def _zeros(n: int) -> np.ndarray:
    return _shared("zeros", n)


def obs_len(obs: Obs) -> int:
    """Number of rows in a batched observation (array or dict of arrays)."""
    if isinstance(obs, dict):
        return len(next(iter(obs.values())))
    return len(obs)


@dataclass
class TransitionBatch:
    """A batch of transitions ``(s, a, s', r_ext, terminated, truncated, info)``, one row each.

    ``next_obs`` is always the true successor: at an episode end it is the final observation (SB3's
    ``info["terminal_observation"]``, Gymnasium's ``info["final_obs"]``), never the reset observation.
    ``env_ids`` says which vector env each row came from, so stateful rewards can index their per-env state
    when only some envs carry a transition (Gymnasium NEXT_STEP autoreset steps are left out).
    ``extras`` holds per-row arrays a replay buffer stored beside each transition (what
    :meth:`Reward.transition_state` exposed when it was added), so a reward whose value depends on per-episode
    state (keypoints proposed at reset) can be recomputed from the stored rows alone.

    >>> b = TransitionBatch(obs=np.zeros((2, 3)), action=np.zeros((2, 1)), next_obs=np.ones((2, 3)),
    ...                     reward=np.zeros(2), terminated=np.array([True, False]),
    ...                     truncated=np.array([False, True]))
    >>> b.num, b.done.tolist(), b.env_ids.tolist()
    (2, [True, True], [0, 1])
    """

    obs: Obs
    action: np.ndarray
    next_obs: Obs
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    infos: Sequence[Mapping[str, Any]] = ()
    env_ids: np.ndarray = field(default=None)  # type: ignore[arg-type]
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.reward)
        if self.env_ids is None:
            self.env_ids = _arange(n)
        bad = {k: len(v) for k, v in self.extras.items() if len(v) != n}
        if bad:
            raise ValueError(f"TransitionBatch extras must have one row per transition ({n}); got {bad}")
        if not (len(self.action) == len(self.terminated) == len(self.truncated) == len(self.env_ids) == n
                and obs_len(self.obs) == n and obs_len(self.next_obs) == n):
            sizes = {name: (obs_len(getattr(self, name)) if name in ("obs", "next_obs") else len(getattr(self, name)))
                     for name in ("obs", "action", "next_obs", "terminated", "truncated", "env_ids")}
            raise ValueError(f"TransitionBatch fields must have one row per transition; reward has {n} rows, "
                             f"the others have {sizes}")

    @classmethod
    def trusted(cls, obs: Obs, action: np.ndarray, next_obs: Obs, reward: np.ndarray, terminated: np.ndarray,
                truncated: np.ndarray, infos: Sequence[Mapping[str, Any]] = ()) -> TransitionBatch:
        """A batch of one row per env, built without the constructor's row-count checks.

        For an adapter's per-step path, where every field comes from the same vector step as one that has
        already passed them (the adapters build their first batch with the checks).
        """
        batch = cls.__new__(cls)
        batch.__dict__.update(obs=obs, action=action, next_obs=next_obs, reward=reward, terminated=terminated,
                              truncated=truncated, infos=infos, env_ids=_arange(len(reward)), extras={})
        return batch

    @property
    def num(self) -> int:
        return len(self.reward)

    @property
    def done(self) -> np.ndarray:
        return np.logical_or(self.terminated, self.truncated)

    def select(self, idx: np.ndarray) -> TransitionBatch:
        """Rows ``idx`` (an index array or a boolean mask) as a new batch."""
        idx = np.flatnonzero(idx) if idx.dtype == bool else idx
        infos = [self.infos[int(i)] for i in idx] if self.infos else ()
        return TransitionBatch(
            obs=_take(self.obs, idx), action=self.action[idx], next_obs=_take(self.next_obs, idx),
            reward=self.reward[idx], terminated=self.terminated[idx], truncated=self.truncated[idx],
            infos=infos, env_ids=self.env_ids[idx], extras={k: v[idx] for k, v in self.extras.items()},
        )

    def with_reward(self, reward: np.ndarray) -> TransitionBatch:
        return replace(self, reward=reward)

    @staticmethod
    def concat(batches: Sequence[TransitionBatch]) -> TransitionBatch:
        """Stack batches row-wise in order; per-env time order is kept (use ``env_ids`` to split by env)."""
        if not batches:
            raise ValueError("TransitionBatch.concat needs at least one batch")
        infos: list[Mapping[str, Any]] = []
        for b in batches:
            infos.extend(b.infos or [{}] * b.num)
        common = set.intersection(*(set(b.extras) for b in batches))
        return TransitionBatch(
            obs=_concat([b.obs for b in batches]), action=np.concatenate([b.action for b in batches]),
            next_obs=_concat([b.next_obs for b in batches]), reward=np.concatenate([b.reward for b in batches]),
            terminated=np.concatenate([b.terminated for b in batches]),
            truncated=np.concatenate([b.truncated for b in batches]), infos=infos,
            env_ids=np.concatenate([b.env_ids for b in batches]),
            extras={k: np.concatenate([b.extras[k] for b in batches]) for k in sorted(common)},
        )


class RewardOutput(NamedTuple):
    """What a reward pays (``total``, one float per row) and its named parts, for logging.

    ``terms`` maps a term name to one float per row; the adapters write each into ``info["reward/<name>"]``.
    """

    total: np.ndarray
    terms: dict[str, np.ndarray]


class RewardError(RuntimeError):
    """A reward produced something unusable (NaN/inf, wrong shape); the message names the term."""


class Reward(abc.ABC):
    """Base class of every reward term.

    Subclasses implement :meth:`__call__` (one float per row); composite or instrumented rewards override
    :meth:`evaluate` to report their parts. Class attributes describe what the adapters may do:

    * ``stateless``: the value depends on the transition alone, so a replay buffer may recompute it for any
      stored transition (:meth:`relabel`). Stateful rewards (progress integrators, episodic counters) set False.
    * ``update_every``: vector steps between :meth:`update` calls (``None``: the reward never learns online).
    * ``needs_infos``: reads ``batch.infos``; such rewards cannot be recomputed from a replay buffer.
    """

    name: str = "reward"
    stateless: bool = True
    update_every: int | None = None
    needs_infos: bool = False

    observation_space: gym.Space | None = None
    action_space: gym.Space | None = None
    num_envs: int = 0
    gamma: float | None = None
    spec: Mapping[str, Any] | None = None  # set by robo_reward.registry.make_reward: {"name":..., "kwargs":...}

    # -- lifecycle ---------------------------------------------------------------------------------------
    def bind(self, observation_space: gym.Space, action_space: gym.Space, num_envs: int) -> None:
        """Attach to an env's spaces. Override :meth:`check_spaces` to reject spaces the reward cannot use.

        A reward already bound (or loaded from a checkpoint) refuses spaces of another shape.
        """
        for kind, have, new in (("observation", self.observation_space, observation_space),
                                ("action", self.action_space, action_space)):
            if have is not None and not same_shape(have, new):
                raise SpaceMismatchError(
                    f"reward '{self.name}' ({type(self).__name__}) was built for {kind} space {have} but the env "
                    f"has {kind} space {new}; train or load a reward for this env, or wrap the matching env"
                )
        self.check_spaces(observation_space, action_space)
        self.observation_space, self.action_space, self.num_envs = observation_space, action_space, num_envs
        for child in self.children():
            child.bind(observation_space, action_space, num_envs)

    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        """Raise :class:`SpaceMismatchError` if this reward cannot read these spaces."""

    def set_discount(self, gamma: float) -> None:
        """Receive the learner's discount. Terms that depend on it check for a mismatch."""
        self.gamma = gamma
        for child in self.children():
            child.set_discount(gamma)

    def reset(self, obs: Obs, env_mask: np.ndarray) -> None:
        """Episodes begin in the envs where ``env_mask`` is True; ``obs`` holds every env's current observation."""
        for child in self.children():
            child.reset(obs, env_mask)

    @abc.abstractmethod
    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        """One float per row of ``batch``."""

    def evaluate(self, batch: TransitionBatch) -> RewardOutput:
        """The total and its named parts. The default reports the reward itself under ``self.name``."""
        total = np.asarray(self(batch), dtype=np.float64)
        return RewardOutput(total, {self.name: total})

    def update(self, batch: TransitionBatch) -> dict[str, float]:
        """Learn from the transitions collected since the last update; returns metrics to log."""
        metrics: dict[str, float] = {}
        for child in self.children():
            if child.wants_update:
                metrics.update({f"{child.name}/{k}": v for k, v in child.update(batch).items()})
        return metrics

    @property
    def wants_update(self) -> bool:
        return self.update_every is not None or any(c.wants_update for c in self.children())

    def learners(self) -> list[Reward]:
        """The rewards in this tree that learn online, each to be updated on its own ``update_every``.

        These are the topmost nodes with ``update_every`` set: a composite without one (a sum, a normaliser) is
        transparent, so composition never changes when a learned term updates; a node that sets one owns its
        subtree's updates through its :meth:`update`.
        """
        if self.update_every is not None:
            return [self]
        return [learner for child in self.children() for learner in child.learners()]

    @property
    def can_relabel(self) -> bool:
        """Whether :meth:`relabel` can recompute stored transitions: by default only stateless, infos-free
        rewards; a stateful reward that stores what it needs through :meth:`transition_state` overrides this."""
        return self.stateless and not self.needs_infos

    def transition_state(self) -> dict[str, np.ndarray]:
        """Per-env arrays (one row per env, keys unique in the reward tree) describing the transition the last
        :meth:`evaluate` paid, for a replay buffer to store beside it and hand back in ``batch.extras`` at
        relabelling time. They must stay valid after :meth:`reset` (the buffer adds a transition after the
        adapter has reset finished envs). The default merges the children's."""
        out: dict[str, np.ndarray] = {}
        for child in self.children():
            out.update(child.transition_state())
        return out

    def relabel(self, batch: TransitionBatch) -> np.ndarray:
        """Recompute rewards for stored transitions in any order (replay relabelling, historical patching)."""
        if not self.can_relabel:
            why = "keeps per-episode state" if not self.stateless else "reads step infos, which buffers do not keep"
            raise RewardError(
                f"reward term '{self.name}' ({type(self).__name__}) {why}, so it cannot be recomputed for "
                "stored transitions; use it through a VecEnv wrapper, or relabel with a stateless reward"
            )
        return self(batch)

    # -- composition and persistence ---------------------------------------------------------------------
    def children(self) -> Iterable[Reward]:
        """Sub-rewards of a composite, so lifecycle calls reach them."""
        return ()

    def walk(self) -> Iterator[Reward]:
        yield self
        for child in self.children():
            yield from child.walk()

    def state_dict(self) -> dict[str, Any]:
        """Everything learned or accumulated that a resumed run needs (nested dicts of arrays/tensors)."""
        return {f"child{i}": c.state_dict() for i, c in enumerate(self.children())}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        kids = list(self.children())
        expected = {f"child{i}" for i in range(len(kids))}
        if set(state) - expected:
            raise RewardError(
                f"checkpoint for '{self.name}' has entries {sorted(set(state) - expected)} this reward does not "
                f"have (expected {sorted(expected)}); was it saved from a different reward configuration?"
            )
        for i, c in enumerate(kids):
            c.load_state_dict(state.get(f"child{i}", {}))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class SpaceMismatchError(ValueError):
    """A reward was wrapped around an env whose spaces it cannot read."""


def same_shape(a: gym.Space, b: gym.Space) -> bool:
    """Whether two spaces hold values of the same kind and shape (bounds and dtype may differ)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, gym.spaces.Dict) and isinstance(b, gym.spaces.Dict):
        return set(a) == set(b) and all(same_shape(a[k], b[k]) for k in a)
    if isinstance(a, gym.spaces.Discrete) and isinstance(b, gym.spaces.Discrete):
        return a.n == b.n
    return a.shape == b.shape


def check_finite(output: RewardOutput, where: str = "") -> None:
    """Raise :class:`RewardError` naming the offending term if any value is NaN or infinite.

    The fast test is one dot product with zeros: 0 * x is 0 for every finite x and NaN for NaN or inf, and no
    finite value can overflow it (a plain sum of large finite rewards could).
    """
    total = output.total
    if math.isfinite(total.dot(_zeros(len(total))) if total.ndim == 1 else total.sum()):
        return
    bad = [name for name, v in output.terms.items() if not np.isfinite(v).all()] or ["<total>"]
    rows = np.flatnonzero(~np.isfinite(output.total)).tolist()
    raise RewardError(
        f"reward term(s) {bad} returned NaN or inf{where} for env rows {rows}: "
        f"values {output.total[rows].tolist()}; check the term's inputs (observation scale, model weights)"
    )


class FunctionReward(Reward):
    """Wraps a batched function ``f(batch) -> (n,) array`` as a stateless reward.

    >>> r = FunctionReward(lambda b: -np.linalg.norm(b.next_obs, axis=1), label="dist")
    >>> b = TransitionBatch(np.zeros((2, 2)), np.zeros((2, 1)), np.array([[3., 4.], [0., 0.]]),
    ...                     np.zeros(2), np.zeros(2, bool), np.zeros(2, bool))
    >>> r(b).tolist()
    [-5.0, -0.0]
    """

    def __init__(self, fn: Any, *, label: str = "function") -> None:
        self.fn, self.name = fn, label

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        return np.asarray(self.fn(batch), dtype=np.float64)
