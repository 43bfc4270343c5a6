"""DAC absorbing states: env wrapper and expert padding agree; truncation passes through."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from robo_reward import TransitionBatch
from robo_reward.absorbing import AbsorbingStateWrapper, add_absorbing_states


class Falls(gym.Env):
    """Terminates after 3 steps when the action is positive, else truncates at 5 (time limit)."""

    observation_space = gym.spaces.Box(-10, 10, (2,))
    action_space = gym.spaces.Box(-1, 1, (1,))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0, 1.0], dtype=np.float32), {}

    def step(self, action):
        self.t += 1
        obs = np.array([self.t, 1.0], dtype=np.float32)
        return obs, 1.0, bool(action[0] > 0 and self.t == 3), self.t == 5, {}


def rollout(action: float) -> list[tuple]:
    env = AbsorbingStateWrapper(Falls())
    obs, _ = env.reset(seed=0)
    steps = []
    while True:
        nxt, r, term, trunc, info = env.step(np.array([action]))
        steps.append((obs, nxt, r, term, trunc, info))
        obs = nxt
        if term or trunc:
            return steps


def test_termination_becomes_absorbing_self_loop_then_truncation():
    steps = rollout(1.0)
    absorbing = np.array([0, 0, 1], dtype=np.float32)
    assert len(steps) == 4
    assert all(s[0][-1] == 0 for s in steps[:3]) and not any(s[3] for s in steps)
    _, nxt, r, term, trunc, info = steps[2]
    np.testing.assert_array_equal(nxt, absorbing)
    assert (r, term, trunc) == (1.0, False, False)
    np.testing.assert_array_equal(info["terminal_observation_env"], [3.0, 1.0])
    obs, nxt, r, term, trunc, info = steps[3]
    np.testing.assert_array_equal(obs, absorbing)
    np.testing.assert_array_equal(nxt, absorbing)
    assert (r, term, trunc, info["absorbing"]) == (0.0, False, True, True)
    assert AbsorbingStateWrapper(Falls()).observation_space.contains(absorbing)


def test_time_limit_passes_through_without_absorbing():
    steps = rollout(-1.0)
    assert len(steps) == 5 and steps[-1][4] and steps[-1][1][-1] == 0


def test_expert_padding_matches_wrapper():
    steps = rollout(1.0)
    raw = TransitionBatch(
        obs=np.array([[0, 1], [1, 1], [2, 1]], np.float32), action=np.ones((3, 1), np.float32),
        next_obs=np.array([[1, 1], [2, 1], [3, 1]], np.float32), reward=np.ones(3),
        terminated=np.array([False, False, True]), truncated=np.zeros(3, bool),
    )
    padded = add_absorbing_states(raw)
    assert padded.num == 4
    for i, (obs, nxt, r, term, trunc, _) in enumerate(steps):
        np.testing.assert_array_equal(padded.obs[i], obs)
        np.testing.assert_array_equal(padded.next_obs[i], nxt)
        assert (padded.reward[i], padded.terminated[i], padded.truncated[i]) == (r, term, trunc)
    np.testing.assert_array_equal(padded.action[3], [0.0])


def test_monitor_episode_info_arrives_once_at_the_learner_episode_end():
    from stable_baselines3.common.monitor import Monitor

    env = AbsorbingStateWrapper(Monitor(Falls()))
    env.reset(seed=0)
    infos = []
    while True:
        *_, term, trunc, info = env.step(np.array([1.0]))
        infos.append(info)
        if term or trunc:
            break
    assert ["episode" in i for i in infos] == [False, False, False, True]
    assert infos[-1]["episode"]["r"] == 3.0 and infos[-1]["episode"]["l"] == 3
