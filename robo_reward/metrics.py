"""Per-episode evaluation metrics that envs report through ``info``, read by ``eval.info_metrics``.

A metric that needs numbers from outside the env (a random policy's and an expert's return) is a small wrapper
named in ``env.wrappers``, so the same config trains, evaluates and benchmarks it:

.. code-block:: yaml

    env:
      id: InvertedPendulum-v5
      wrappers: [{entry_point: "robo_reward.metrics:NormalizedReturn", kwargs: {low: 3.9, high: 1000.0}}]
    eval: {info_metrics: [normalized_return]}

>>> import gymnasium as gym
>>> env = NormalizedReturn(gym.make("InvertedPendulum-v5"), low=0.0, high=10.0)
>>> _ = env.reset(seed=0)
>>> done, info = False, {}
>>> while not done:
...     _, _, terminated, truncated, info = env.step(env.action_space.sample() * 0)
...     done = terminated or truncated
>>> info["normalized_return"] == info["episode_return"] / 10.0
True
"""

from __future__ import annotations

import math
from typing import Any, SupportsFloat

import gymnasium as gym


class NormalizedReturn(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Puts ``(R - low) / (high - low)`` of the episode's return ``R`` into the info of its last step.

    With ``low`` a random policy's return and ``high`` an expert's, this is the expert-normalised return of the
    imitation literature (0: random, 1: expert; GAIL, Blondé et al. 2022 report it). The return is the reward this
    wrapper sees, so list it first in ``env.wrappers`` to score the env's own reward, or after
    :class:`~robo_reward.absorbing.AbsorbingStateWrapper` (whose extra self-loop step pays 0 and ends the episode
    for the learner) so the metric lands on the step where the learner's episode ends.

    :param low: the return scored 0.
    :param high: the return scored 1.
    :param key: info key of the score; ``episode_return`` holds the raw return beside it.
    """

    def __init__(self, env: gym.Env, *, low: float, high: float, key: str = "normalized_return") -> None:
        gym.utils.RecordConstructorArgs.__init__(self, low=low, high=high, key=key)
        gym.Wrapper.__init__(self, env)
        if not (math.isfinite(low) and math.isfinite(high)) or high == low:
            raise ValueError(f"NormalizedReturn needs finite low != high, got low={low}, high={high}; set them to a "
                             "random policy's and an expert's return")
        self.low, self.high, self.key = float(low), float(high), key
        self._return = 0.0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self._return = 0.0
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._return += float(reward)
        if terminated or truncated:
            info = {**info, "episode_return": self._return,
                    self.key: (self._return - self.low) / (self.high - self.low)}
        return obs, reward, terminated, truncated, info
