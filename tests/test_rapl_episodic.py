"""Episode-end rewards reach the learner's buffer when the episode ends and before the update that uses them.

The toy env's observation is (episode id, step) of its own env, so every stored slot says which episode it
belongs to; the toy reward pays r_t = 1000 * episode + t + 1, a value no other slot can hold. A slot must hold
0 (the step-time payment) while its episode runs and exactly its r_t once the episode ended, across SAC's ring
wrap-around (also with an episode longer than the buffer) and in PPO's rollout buffer before GAE.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv

from robo_reward.agents.episodic import EpisodicPPO, EpisodicSAC
from robo_reward.datasets import Episode
from robo_reward.demo_buffer import fill_replay_buffer
from robo_reward.episodic import EpisodicReward, EpisodicRolloutBuffer, find_episodic
from robo_reward.protocol import TransitionBatch
from robo_reward.sb3 import RewardVecEnvWrapper


class EpisodeCounter(gym.Env):
    """obs = (episode id, step); fixed horizon, ends terminated (no bootstrap added by PPO)."""

    def __init__(self, horizon: int) -> None:
        self.horizon, self.episode, self.t = horizon, -1, 0
        self.observation_space = gym.spaces.Box(-1, 1e6, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def _obs(self) -> np.ndarray:
        return np.array([self.episode, self.t], np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.episode, self.t = self.episode + 1, 0
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        return self._obs(), 0.0, self.t >= self.horizon, False, {}


class IdReward(EpisodicReward):
    name = "id_reward"

    def keep(self, batch: TransitionBatch) -> np.ndarray:
        return np.asarray(batch.next_obs)

    def episode_rewards(self, kept: np.ndarray) -> np.ndarray:
        episode = kept[:, 0]
        assert (episode == episode[0]).all(), "an episode's kept rows mix episodes"
        return 1000.0 * episode + np.arange(1, len(kept) + 1)


def _venv(horizons: tuple[int, ...]) -> RewardVecEnvWrapper:
    venv = DummyVecEnv([lambda h=h: EpisodeCounter(h) for h in horizons])
    return RewardVecEnvWrapper(venv, IdReward(), extrinsic_weight=0.0)


def _expected(obs: np.ndarray, current_episode: np.ndarray) -> np.ndarray:
    """The value each stored slot (its stored s = obs before the step) must hold now."""
    episode, step = obs[..., 0], obs[..., 1]
    finished = episode < current_episode
    return np.where(finished, 1000.0 * episode + step + 1, 0.0)


def _current_episodes(venv: RewardVecEnvWrapper) -> np.ndarray:
    return np.array([e.episode for e in venv.venv.envs])  # type: ignore[attr-defined]


class _CheckReplay(BaseCallback):
    """Before each step's transition is added, every filled slot holds what it must (nothing early)."""

    def __init__(self) -> None:
        super().__init__()
        self.checked = 0

    def _on_step(self) -> bool:
        buf = self.model.replay_buffer  # type: ignore[attr-defined]
        filled = buf.buffer_size if buf.full else buf.pos
        # an env done at this step has reset already, but its last transition is not stored (nor relabelled) yet
        current = _current_episodes(self.training_env) - np.asarray(self.locals["dones"], int)  # type: ignore[arg-type]
        np.testing.assert_allclose(buf.rewards[:filled], _expected(buf.observations[:filled], current))
        self.checked += 1
        return True


@pytest.mark.parametrize("horizons,buffer_size", [((3, 4), 7), ((3, 9), 7)])
def test_sac_slots_are_rewritten_at_episode_end(horizons: tuple[int, ...], buffer_size: int) -> None:
    torch.set_num_threads(1)
    venv = _venv(horizons)
    model = EpisodicSAC("MlpPolicy", venv, buffer_size=buffer_size, learning_starts=10**6, seed=0,
                        policy_kwargs={"net_arch": [8]})
    callback = _CheckReplay()
    model.learn(40, callback=callback)
    assert callback.checked == 40 // len(horizons)
    buf = model.replay_buffer
    assert buf.full and buf.reward is venv.reward
    np.testing.assert_allclose(buf.rewards, _expected(buf.observations, _current_episodes(venv)))
    assert (buf.rewards > 0).any() and (buf.rewards == 0).any()
    assert np.unique(buf.rewards[buf.rewards > 0]).size == np.count_nonzero(buf.rewards > 0)


def test_sac_checkpoint_pickle_drops_the_reward() -> None:
    import pickle

    venv = _venv((3,))
    model = EpisodicSAC("MlpPolicy", venv, buffer_size=10, learning_starts=10**6, seed=0)
    model.learn(6)
    restored = pickle.loads(pickle.dumps(model.replay_buffer))
    assert restored.reward is None
    np.testing.assert_array_equal(restored.rewards, model.replay_buffer.rewards)


def _gae(buf: EpisodicRolloutBuffer, last_values: np.ndarray, dones: np.ndarray) -> np.ndarray:
    adv = np.zeros_like(buf.rewards)
    last = 0.0
    for t in reversed(range(buf.buffer_size)):
        if t == buf.buffer_size - 1:
            nonterminal, next_values = 1.0 - dones, last_values
        else:
            nonterminal, next_values = 1.0 - buf.episode_starts[t + 1], buf.values[t + 1]
        delta = buf.rewards[t] + buf.gamma * next_values * nonterminal - buf.values[t]
        last = delta + buf.gamma * buf.gae_lambda * nonterminal * last
        adv[t] = last
    return adv


class _CheckRollout(BaseCallback):
    def __init__(self) -> None:
        super().__init__()
        self.rollouts = self.steps = 0

    def _on_step(self) -> bool:
        buf = self.model.rollout_buffer  # type: ignore[attr-defined]
        current = _current_episodes(self.training_env) - np.asarray(self.locals["dones"], int)  # type: ignore[arg-type]
        np.testing.assert_allclose(buf.rewards[: buf.pos], _expected(buf.observations[: buf.pos], current))
        self.steps += 1
        return True

    def _on_rollout_end(self) -> None:
        buf = self.model.rollout_buffer  # type: ignore[attr-defined]
        episodes = _current_episodes(self.training_env)  # type: ignore[arg-type]
        np.testing.assert_allclose(buf.rewards, _expected(buf.observations, episodes))
        last_values = self.model.policy.predict_values(  # type: ignore[attr-defined]
            torch.as_tensor(self.model._last_obs)).detach().numpy().ravel()  # type: ignore[attr-defined]
        dones = np.ones(buf.n_envs)
        np.testing.assert_allclose(buf.advantages, _gae(buf, last_values, dones), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(buf.returns, buf.advantages + buf.values, rtol=1e-6)
        self.rollouts += 1


def test_ppo_rewards_are_in_place_before_returns_and_advantages() -> None:
    torch.set_num_threads(1)
    venv = _venv((3, 2))
    model = EpisodicPPO("MlpPolicy", venv, n_steps=6, batch_size=6, n_epochs=1, seed=0,
                        policy_kwargs={"net_arch": [8]})
    callback = _CheckRollout()
    model.learn(24, callback=callback)
    assert callback.rollouts == 2 and callback.steps == 12


def test_ppo_refuses_an_episode_across_the_rollout_boundary() -> None:
    venv = _venv((4,))
    model = EpisodicPPO("MlpPolicy", venv, n_steps=6, batch_size=6, n_epochs=1, seed=0)
    with pytest.raises(ValueError, match=r"divide agent\.kwargs\.n_steps"):
        model.learn(12)


def test_an_episodic_reward_needs_an_episodic_agent() -> None:
    from stable_baselines3 import SAC

    from robo_reward.episodic import attach_episodic

    model = SAC("MlpPolicy", _venv((3,)), learning_starts=10**6)
    with pytest.raises(ValueError, match="EpisodicSAC or EpisodicPPO"):
        attach_episodic(model)


def test_step_time_payment_is_zero_and_the_episode_sum_is_logged() -> None:
    reward = IdReward()
    space = gym.spaces.Box(-1, 1e6, (2,), np.float32)
    reward.bind(space, gym.spaces.Box(-1, 1, (1,)), 2)
    sums = []
    for t in range(3):
        batch = TransitionBatch(np.zeros((2, 2)), np.zeros((2, 1)), np.array([[5, t + 1], [6, t + 1]], float),
                                np.zeros(2), np.array([t == 2, t == 1]), np.zeros(2, bool))
        out = reward.evaluate(batch)
        assert (out.total == 0).all()
        sums.append(out.terms["id_reward_episode"])
        if t == 1:
            reward.reset(None, np.array([False, True]))
    np.testing.assert_allclose(sums[1], [0.0, 12003.0])
    np.testing.assert_allclose(sums[2], [15006.0, 0.0])
    np.testing.assert_allclose(reward.pop_finished(0), [5001.0, 5002.0, 5003.0])
    assert reward.pop_finished(0) is None
    assert find_episodic(reward) is reward


class _CheckSamples(BaseCallback):
    """Every batch SAC could draw now holds finished episodes' slots only (never a running episode's 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.sampled = 0

    def _on_step(self) -> bool:
        buf = self.model.replay_buffer  # type: ignore[attr-defined]
        if buf.reward is not None and int(buf._start.min()) > max(0, buf._count - buf.buffer_size):
            batch = buf.sample(64)
            assert (batch.rewards > 0).all(), "a running episode's slot was sampled"
            current = _current_episodes(self.training_env) - np.asarray(self.locals["dones"], int)  # type: ignore[arg-type]
            assert (batch.observations[:, 0].numpy() < current.max()).all()
            self.sampled += 1
        return True


@pytest.mark.parametrize("horizons,buffer_size", [((5,), 50), ((3, 4), 40), ((3, 4), 7)])
def test_sac_samples_only_slots_of_finished_episodes(horizons: tuple[int, ...], buffer_size: int,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    torch.set_num_threads(1)
    venv = _venv(horizons)
    model = EpisodicSAC("MlpPolicy", venv, buffer_size=buffer_size, learning_starts=2, batch_size=16, seed=0,
                        policy_kwargs={"net_arch": [8]})
    callback = _CheckSamples()
    with caplog.at_level("WARNING", logger="robo_reward.episodic"):
        model.learn(60, callback=callback)
    assert callback.sampled > 10
    assert "no stored episode has ended" in caplog.text  # learning_starts 2 < the first episode's end


def _demo(episode_id: int, length: int) -> Episode:
    obs = np.array([[episode_id, t] for t in range(length + 1)], np.float32)
    ends = np.arange(length) == length - 1
    return Episode(observations=obs, actions=np.zeros((length, 1), np.float32), rewards=np.zeros(length),
                   terminations=ends, truncations=np.zeros(length, bool), infos={})


def test_demos_in_the_replay_buffer_carry_their_own_episode_end_reward() -> None:
    """A demo's episode-end rewards go to the demo's slots, never to the agent's first episodes, and demo slots
    are sampled as finished."""
    torch.set_num_threads(1)
    venv = _venv((3,))
    model = EpisodicSAC("MlpPolicy", venv, buffer_size=50, learning_starts=10**6, seed=0,
                        policy_kwargs={"net_arch": [8]})
    buf = model.replay_buffer
    assert fill_replay_buffer(buf, [_demo(77, 3), _demo(78, 4)], reward=venv.reward, extrinsic_weight=0.0) == 7
    assert venv.reward.pop_finished(0) is None
    np.testing.assert_allclose(buf.rewards[:7, 0], [77001, 77002, 77003, 78001, 78002, 78003, 78004])
    model.learn(12)
    obs, rewards = buf.observations[: buf.pos, 0], buf.rewards[: buf.pos, 0]
    agent = obs[:, 0] < 77
    np.testing.assert_allclose(rewards[agent], _expected(obs[agent], _current_episodes(venv)))
    np.testing.assert_allclose(rewards[~agent], 1000.0 * obs[~agent, 0] + obs[~agent, 1] + 1)
    drawn = buf.sample(256).observations[:, 0].numpy()
    assert (drawn >= 77).any() and (drawn < 77).any()


def test_a_demo_that_does_not_end_is_refused() -> None:
    venv = _venv((3,))
    model = EpisodicSAC("MlpPolicy", venv, buffer_size=50, learning_starts=10**6, seed=0)
    open_demo = _demo(5, 3)
    open_demo.terminations[:] = False
    with pytest.raises(ValueError, match="must end"):
        fill_replay_buffer(model.replay_buffer, [open_demo], reward=venv.reward)
