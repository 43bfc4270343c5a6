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

EXTRINSIC = "extrinsic"


def reward_record(reward: Reward | str | Mapping[str, Any]) -> Any:
    """Plain data for ``RecordConstructorArgs``: a registry spec where the reward came from the registry."""
    if isinstance(reward, Reward) and reward.spec is not None:
        return {"name": reward.spec["name"], **reward.spec["kwargs"]}
    return reward


class RewardEvaluator:
    """Evaluates ``reward`` on batches of transitions from ``num_envs`` envs.

    :param reward: a :class:`Reward`, a registry name or a ``{"name": ..., ...}`` spec.
    :param extrinsic_weight: weight of the env's own reward in what the agent is paid (0 replaces it).
    :param checkpoint: path of a saved reward (``robo_reward.checkpoint.save_reward``) to load after binding.
    """

    def __init__(self, reward: Reward | str | Mapping[str, Any], *, extrinsic_weight: float = 1.0,
                 checkpoint: str | None = None) -> None:
        self.reward = build_reward(reward)
        self.extrinsic_weight = float(extrinsic_weight)
        self.checkpoint = checkpoint
        self._pending: deque[TransitionBatch] = deque()
        self.steps_since_update = 0
        self.num_updates = 0
        self._wants_update = False

    def bind(self, observation_space: gym.Space, action_space: gym.Space, num_envs: int) -> None:
        self.reward.bind(observation_space, action_space, num_envs)
        if self.checkpoint:
            from robo_reward.checkpoint import load_reward_state

            load_reward_state(self.reward, self.checkpoint)
        every = self.reward.update_every
        self._pending = deque(maxlen=every) if every else deque(maxlen=1)
        self._wants_update = self.reward.wants_update

    def reset(self, obs: Obs, env_mask: np.ndarray) -> None:
        self.reward.reset(obs, np.asarray(env_mask, dtype=bool))

    def step(self, batch: TransitionBatch) -> RewardOutput:
        """What the agent is paid for each row, with ``extrinsic`` and every term of the reward."""
        out = self.reward.evaluate(batch)
        extrinsic = np.asarray(batch.reward, dtype=np.float64)
        total = out.total + self.extrinsic_weight * extrinsic if self.extrinsic_weight else out.total
        terms = {EXTRINSIC: extrinsic}
        terms.update(out.terms)
        result = RewardOutput(total, terms)
        check_finite(result)
        if self._wants_update:
            self._pending.append(batch)
            self.steps_since_update += 1
        return result

    @property
    def update_due(self) -> bool:
        every = self.reward.update_every
        return bool(every) and self.steps_since_update >= every  # type: ignore[operator]

    def run_update(self) -> dict[str, float]:
        """Run ``reward.update`` on the transitions queued since the last update; returns its metrics."""
        if not self._pending:
            return {}
        batch = TransitionBatch.concat(list(self._pending))
        self._pending.clear()
        self.steps_since_update = 0
        self.num_updates += 1
        return self.reward.update(batch)
