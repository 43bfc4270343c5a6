"""One reward driven over one (vector) env: the piece all three adapters share.

It binds the reward to the env's spaces, pays ``extrinsic_weight * r_env + reward``, checks every value is
finite (naming the term that is not), and queues transitions for online ``update`` calls.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from robo_reward.protocol import Obs, Reward, RewardOutput, TransitionBatch, check_finite
from robo_reward.registry import build_reward
from robo_reward.shaping import _unique_labels

EXTRINSIC = "extrinsic"


def reward_record(reward: Reward | str | Mapping[str, Any]) -> Any:
    """Plain data for ``RecordConstructorArgs``: a registry spec where the reward came from the registry."""
    if isinstance(reward, Reward) and reward.spec is not None:
        return {"name": reward.spec["name"], **reward.spec["kwargs"]}
    return reward


class _Learner:
    """One online-learning term of the reward, with the batches queued for its next update (at most ``every``)."""

    __slots__ = ("every", "label", "pending", "reward", "steps")

    def __init__(self, reward: Reward, label: str) -> None:
        every = reward.update_every
        if not isinstance(every, int | np.integer) or isinstance(every, bool) or every < 1:
            raise ValueError(f"reward term '{reward.name}' ({type(reward).__name__}) has update_every={every!r}; "
                             "use a positive number of vector steps, or None for a term that never learns online")
        self.reward, self.label, self.every = reward, label, int(every)
        self.pending: deque[TransitionBatch] = deque(maxlen=self.every)
        self.steps = 0

    @property
    def due(self) -> bool:
        return self.steps >= self.every

    def update(self) -> dict[str, float]:
        batch = TransitionBatch.concat(list(self.pending))
        self.pending.clear()
        self.steps = 0
        return self.reward.update(batch)


class RewardEvaluator:
    """Evaluates ``reward`` on batches of transitions from ``num_envs`` envs.

    Every term that learns online (:meth:`Reward.learners`: RND, BYOL or a GAIL discriminator, alone or inside
    a sum, a normaliser or beside a shaping term) keeps its own schedule: it is due every ``update_every`` vector
    steps and is updated on the batches evaluated since its last update. Batches are queued only while some
    term will learn from them, and at most ``update_every`` of them per term (the newest), so memory stays
    bounded even when nobody runs the updates.

    :param reward: a :class:`Reward`, a registry name or a ``{"name": ..., ...}`` spec.
    :param extrinsic_weight: weight of the env's own reward in what the agent is paid (0 replaces it).
    :param checkpoint: path of a saved reward (``robo_reward.checkpoint.save_reward``) to load after binding.
    """

    def __init__(self, reward: Reward | str | Mapping[str, Any], *, extrinsic_weight: float = 1.0,
                 checkpoint: str | None = None) -> None:
        self.reward = build_reward(reward)
        self.extrinsic_weight = float(extrinsic_weight)
        self.checkpoint = checkpoint
        self.learners: list[_Learner] = []
        self.num_updates = 0

    def bind(self, observation_space: gym.Space, action_space: gym.Space, num_envs: int) -> None:
        self.reward.bind(observation_space, action_space, num_envs)
        if self.checkpoint:
            from robo_reward.checkpoint import load_reward_state

            load_reward_state(self.reward, self.checkpoint)
        found = self.reward.learners()
        labels = [""] if found == [self.reward] else _unique_labels(found)
        self.learners = [_Learner(r, label) for r, label in zip(found, labels, strict=True)]

    def reset(self, obs: Obs, env_mask: np.ndarray) -> None:
        self.reward.reset(obs, np.asarray(env_mask, dtype=bool))

    def step(self, batch: TransitionBatch) -> RewardOutput:
        """What the agent is paid for each row, with ``extrinsic`` and every term of the reward."""
        out = self.reward.evaluate(batch)
        extrinsic = np.asarray(batch.reward, dtype=np.float64)
        weight = self.extrinsic_weight
        if weight == 1.0:
            total = out.total + extrinsic
        else:
            total = out.total + weight * extrinsic if weight else out.total
        result = RewardOutput(total, {EXTRINSIC: extrinsic, **out.terms})
        check_finite(result)
        for learner in self.learners:
            learner.pending.append(batch)
            learner.steps += 1
        return result

    def skip_step(self, term_keys: list[str]) -> RewardOutput:
        """A vector step without transitions (every env resetting): counts toward the schedules, calls no reward."""
        for learner in self.learners:
            learner.steps += 1
        empty = np.zeros(0)
        return RewardOutput(empty, {key: empty for key in term_keys})

    @property
    def update_due(self) -> bool:
        """Whether some learned term has reached its ``update_every``."""
        return any(learner.due for learner in self.learners)

    @property
    def pending_rows(self) -> int:
        """Transitions held for future updates (each queued batch counted once, however many terms share it)."""
        unique = {id(b): b.num for learner in self.learners for b in learner.pending}
        return sum(unique.values())

    def run_update(self, *, all_pending: bool = False) -> dict[str, float]:
        """Update each learned term that is due (``all_pending``: each with queued batches); returns the metrics.

        Metrics of a term inside a composite are prefixed with its name (``rnd/loss``).
        """
        metrics: dict[str, float] = {}
        for learner in self.learners:
            if learner.pending and (all_pending or learner.due):
                prefix = f"{learner.label}/" if learner.label else ""
                metrics.update({prefix + k: v for k, v in learner.update().items()})
                self.num_updates += 1
        return metrics

