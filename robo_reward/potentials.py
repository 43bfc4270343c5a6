"""Potentials Phi(s) for potential-based shaping, and hand-written distance rewards.

A :class:`Potential` maps observations to one value per row. Stateless potentials implement :meth:`value`;
potentials that integrate over an episode (Dopamine's fused progress) override :meth:`initial` and :meth:`next`
so the shaping term asks for each Phi exactly once per step.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from robo_reward.protocol import Obs, Reward, SpaceMismatchError, TransitionBatch


class Potential(abc.ABC):
    """Phi(s): one float per row of a batched observation."""

    stateless: bool = True

    def bind(self, observation_space: gym.Space, num_envs: int) -> None:
        """Check the observation space (raise :class:`SpaceMismatchError` naming both spaces)."""

    def value(self, obs: Obs) -> np.ndarray:
        """Phi of each row of ``obs`` (stateless potentials)."""
        raise NotImplementedError(f"{type(self).__name__} is stateful: it defines initial()/next(), not value()")

    def initial(self, obs: Obs, env_mask: np.ndarray) -> np.ndarray:
        """Phi(s_0) for the masked envs at the start of their episodes."""
        return self.value(_rows(obs, env_mask))

    def next(self, batch: TransitionBatch) -> np.ndarray:
        """Phi(s') for each transition in ``batch`` (its true successor observation)."""
        return self.value(batch.next_obs)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


def _rows(obs: Obs, mask: np.ndarray) -> Obs:
    if isinstance(obs, dict):
        return {k: v[mask] for k, v in obs.items()}
    return obs[mask]


def _select(obs: Obs, key: str | None, index: Sequence[int] | None) -> np.ndarray:
    x = obs[key] if key is not None else obs  # type: ignore[index]
    if isinstance(x, dict):
        raise SpaceMismatchError(f"observation is a dict with keys {sorted(x)}; name one with key=")
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return x if index is None else x[:, list(index)]


class GoalDistancePotential(Potential):
    """Phi(s) = -scale * ||achieved(s) - goal(s)||, the classic hand-written distance-to-goal potential.

    Either give ``delta`` (indices of an observation slice that already holds achieved - goal, as Reacher's
    ``fingertip - target``) or both ``achieved`` and ``goal`` indices. ``key`` selects an entry of a dict observation.

    >>> phi = GoalDistancePotential(achieved=[0, 1], goal=[2, 3])
    >>> phi.value(np.array([[0., 0., 3., 4.]])).tolist()
    [-5.0]
    """

    def __init__(
        self,
        *,
        achieved: Sequence[int] | None = None,
        goal: Sequence[int] | None = None,
        delta: Sequence[int] | None = None,
        key: str | None = None,
        goal_key: str | None = None,
        scale: float = 1.0,
    ) -> None:
        if (delta is None) == (achieved is None):
            raise ValueError("GoalDistancePotential needs either delta=[...] or achieved=[...] with goal=[...]")
        if achieved is not None and goal is None and goal_key is None:
            raise ValueError("GoalDistancePotential(achieved=...) also needs goal=[...] (or goal_key=)")
        self.achieved, self.goal, self.delta = achieved, goal, delta
        self.key, self.goal_key, self.scale = key, goal_key, float(scale)

    def bind(self, observation_space: gym.Space, num_envs: int) -> None:
        space = observation_space
        if isinstance(space, gym.spaces.Dict):
            if self.key is None:
                raise SpaceMismatchError(
                    f"GoalDistancePotential got a Dict observation space {space}; pass key= (one of {list(space)})"
                )
            space = space[self.key]
        elif self.key is not None:
            raise SpaceMismatchError(f"GoalDistancePotential(key={self.key!r}) needs a Dict space, got {space}")
        size = int(np.prod(space.shape or ()))
        used = [i for idx in (self.achieved, self.goal, self.delta) if idx is not None for i in idx]
        if used and max(used) >= size:
            raise SpaceMismatchError(
                f"GoalDistancePotential indexes observation entry {max(used)} but the space {space} has {size}"
            )

    def value(self, obs: Obs) -> np.ndarray:
        if self.delta is not None:
            diff = _select(obs, self.key, self.delta)
        else:
            ach = _select(obs, self.key, self.achieved)
            goal = _select(obs, self.goal_key or self.key, self.goal)
            diff = ach - goal
        return -self.scale * np.linalg.norm(diff, axis=1)


POTENTIALS: dict[str, type[Potential]] = {"goal_distance": GoalDistancePotential}


def build_potential(spec: Potential | Mapping[str, Any]) -> Potential:
    """A potential from an instance or a ``{"name": ..., **kwargs}`` mapping (plain data, for configs)."""
    if isinstance(spec, Potential):
        return spec
    spec = dict(spec)
    name = spec.pop("name", None)
    if name not in POTENTIALS:
        raise KeyError(f"unknown potential {name!r}; known potentials: {sorted(POTENTIALS)}")
    return POTENTIALS[name](**spec)


class GoalDistanceReward(Reward):
    """Dense reward -scale * ||achieved(s') - goal(s')||, for comparison with its potential-based twin."""

    name = "goal_distance"

    def __init__(self, **kwargs: Any) -> None:
        self.potential = GoalDistancePotential(**kwargs)

    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        self.potential.bind(observation_space, 0)

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        return self.potential.value(batch.next_obs)
