"""Absorbing states for early termination (Kostrikov et al., "Discriminator-Actor-Critic", ICLR 2019).

A learned reward that is always positive (GAIL's minimax reward ``-log(1 - D)``) pays an agent for surviving in any
env whose bad episodes end early; one that is always negative pays it for ending them. DAC removes that bias by
making the terminal state an *absorbing* state ``s_a`` that loops on itself forever: its value is then
``r(s_a) / (1 - gamma)`` with a *learned* ``r(s_a)``, instead of 0 by construction.

:class:`AbsorbingStateWrapper` does this at the env level so any off-policy SB3 learner (and its replay buffer)
gets it unchanged. Observations gain one flag entry (0 for env states, 1 for ``s_a = [0, ..., 0, 1]``). When the
wrapped env terminates, the wrapper instead returns ``s_a`` (not terminated), and the next step, whatever the
action, returns ``s_a`` again with ``truncated=True``. The learner stores ``(s_T, a, s_a)`` and ``(s_a, a', s_a)``,
both bootstrapped (SB3 masks a truncation's ``done``), exactly DAC's two extra transitions; the second costs one
counted env step per terminated episode and never touches the wrapped env. Time-limit truncations pass through.

:func:`add_absorbing_states` applies the same change to stored expert transitions.

>>> env = AbsorbingStateWrapper(gym.make("InvertedPendulum-v5"))
>>> obs, _ = env.reset(seed=0)
>>> obs.shape, obs[-1]
((5,), np.float32(0.0))
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from robo_reward.protocol import TransitionBatch


def _flag_space(space: gym.Space) -> gym.spaces.Box:
    if not (isinstance(space, gym.spaces.Box) and len(space.shape) == 1):
        raise ValueError(
            f"absorbing states need a flat Box observation space, got {space}; flatten the observation first "
            "(gymnasium.wrappers.FlattenObservation)"
        )
    low = np.append(space.low, 0.0).astype(np.float32)
    high = np.append(space.high, 1.0).astype(np.float32)
    return gym.spaces.Box(low=low, high=high, dtype=np.float32)


class AbsorbingStateWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Turn true termination into a transition to a self-looping absorbing state (DAC); see the module doc.

    ``info["absorbing"]`` is True on the extra self-loop step; ``info["terminal_observation_env"]`` keeps the env's
    real final observation on the step that enters ``s_a``. An ``info["episode"]`` written by a ``Monitor`` inside
    this wrapper is held back to the self-loop step, where the episode ends for the learner, so SB3's episode
    statistics and ``evaluate_policy`` count each episode once.
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        self.observation_space = _flag_space(env.observation_space)
        self._absorbing_obs = np.zeros(self.observation_space.shape, dtype=np.float32)
        self._absorbing_obs[-1] = 1.0
        self._in_absorbing = False
        self._held_info: dict[str, Any] = {}

    @property
    def absorbing_observation(self) -> np.ndarray:
        return self._absorbing_obs.copy()

    def _flag(self, obs: np.ndarray) -> np.ndarray:
        return np.append(np.asarray(obs, dtype=np.float32), np.float32(0.0))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        self._in_absorbing, self._held_info = False, {}
        obs, info = self.env.reset(seed=seed, options=options)
        return self._flag(obs), info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._in_absorbing:
            self._in_absorbing = False
            info, self._held_info = {**self._held_info, "absorbing": True}, {}
            return self.absorbing_observation, 0.0, False, True, info
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated:
            self._in_absorbing = True
            info = {**info, "terminal_observation_env": obs}
            self._held_info = {k: info.pop(k) for k in ("episode", "is_success") if k in info}
            return self.absorbing_observation, reward, False, False, info
        return self._flag(obs), reward, False, truncated, info


def add_absorbing_states(batch: TransitionBatch) -> TransitionBatch:
    """Expert transitions as the wrapper would have produced them: a 0 flag on every state, and every terminated
    transition ``(s_T, a, s')`` replaced by ``(s_T, a, s_a)`` followed by ``(s_a, 0, s_a)`` (truncated)."""
    if not isinstance(batch.obs, np.ndarray) or not isinstance(batch.next_obs, np.ndarray) or batch.obs.ndim != 2:
        raise ValueError("add_absorbing_states needs flat array observations of shape (N, obs_dim)")
    n, dim = batch.obs.shape
    absorbing = np.zeros(dim + 1, dtype=np.float32)
    absorbing[-1] = 1.0
    zero = np.zeros((n, 1), dtype=np.float32)
    obs = np.hstack([batch.obs, zero]).astype(np.float32)
    next_obs = np.hstack([batch.next_obs, zero]).astype(np.float32)
    term = np.asarray(batch.terminated, dtype=bool)
    next_obs[term] = absorbing
    # row i of the output comes from input row order[i]; the absorbing loop after terminal row j is flagged
    order = np.repeat(np.arange(n), np.where(term, 2, 1))
    is_loop = np.zeros(len(order), dtype=bool)
    is_loop[np.flatnonzero(np.diff(order) == 0) + 1] = True
    out_obs, out_next = obs[order], next_obs[order]
    out_obs[is_loop] = absorbing
    out_next[is_loop] = absorbing
    action = np.asarray(batch.action)[order].copy()
    action[is_loop] = 0.0
    reward = np.where(is_loop, 0.0, np.asarray(batch.reward, dtype=np.float64)[order])
    truncated = np.where(is_loop, True, np.asarray(batch.truncated, dtype=bool)[order])
    return TransitionBatch(
        obs=out_obs, action=action, next_obs=out_next, reward=reward,
        terminated=np.zeros(len(order), dtype=bool), truncated=truncated,
    )
