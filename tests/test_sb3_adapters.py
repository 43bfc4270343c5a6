"""SB3 adapters: the reward VecEnvWrapper, the relabelling replay buffer and the callback."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor, VecNormalize

from robo_reward.checkpoint import load_reward, save_reward
from robo_reward.models import MLPReward
from robo_reward.potentials import Potential
from robo_reward.protocol import FunctionReward, RewardError, SpaceMismatchError
from robo_reward.sb3 import RelabelingReplayBuffer, RewardCallback, RewardVecEnvWrapper
from robo_reward.shaping import PotentialShaping
from robo_reward.testing import CallCounter, ChainEnv, check_reward


class PositionPotential(Potential):
    def value(self, obs: np.ndarray) -> np.ndarray:
        return 10.0 * obs[:, 0] + 1.0


def chain_venv(n: int = 3, **kw) -> DummyVecEnv:
    return DummyVecEnv([lambda: ChainEnv(length=2, max_steps=3, **kw)] * n)


def test_one_batched_call_per_vector_step() -> None:
    counter = CallCounter(MLPReward())
    venv = RewardVecEnvWrapper(make_vec_env("Pendulum-v1", n_envs=4, seed=0), counter)
    venv.reset()
    for _ in range(7):
        venv.step(np.zeros((4, 1)))
    assert (counter.calls, counter.rows) == (7, 28)


def test_terminal_observation_is_the_successor_and_flags_are_split() -> None:
    shaping = PotentialShaping(PositionPotential())
    shaping.set_discount(0.5)
    venv = RewardVecEnvWrapper(chain_venv(2), shaping, extrinsic_weight=0.0)
    venv.reset()
    # env 0: right, right -> terminated at step 2; env 1: left x3 -> truncated at step 3
    _, _r1, _, _ = venv.step(np.array([1, 0]))
    obs, r2, dones, infos = venv.step(np.array([1, 0]))
    assert dones.tolist() == [True, False] and not infos[0]["TimeLimit.truncated"]
    assert r2[0] == pytest.approx(0.0 - 6.0)  # Phi(terminal) = 0, Phi(s) = 6
    obs, r3, dones, infos = venv.step(np.array([1, 0]))
    assert infos[1]["TimeLimit.truncated"] and dones[1]
    final_phi = 10 * infos[1]["terminal_observation"][0] + 1.0
    assert final_phi == 1.0 and 10 * obs[1][0] + 1.0 == 1.0  # chain start; distinguish via time feature below
    assert r3[1] == pytest.approx(0.5 * final_phi - 1.0)
    # after the termination, env 0's shaping restarts from its reset observation
    assert r3[0] == pytest.approx(0.5 * 6.0 - 1.0)


def test_truncation_uses_terminal_observation_not_reset_observation() -> None:
    class TimePotential(Potential):
        def value(self, obs: np.ndarray) -> np.ndarray:
            return 100.0 * obs[:, 1]

    shaping = PotentialShaping(TimePotential())
    shaping.set_discount(1.0)
    venv = RewardVecEnvWrapper(chain_venv(1), shaping, extrinsic_weight=0.0)
    venv.reset()
    rewards = [venv.step(np.array([0]))[1][0] for _ in range(3)]
    # Phi rises by 100/3 per step; on truncation Phi(s_T) = 100 (terminal obs), whereas the reset obs has 0
    np.testing.assert_allclose(rewards, [100 / 3] * 3, atol=1e-4)


def test_wrap_time_errors() -> None:
    reward = MLPReward()
    reward.bind(gym.spaces.Box(-1, 1, (2,)), gym.spaces.Box(-1, 1, (1,)), 1)
    with pytest.raises(SpaceMismatchError, match=r"Box\(-1.0, 1.0, \(2,\).*Box\(.*\(3,\)"):
        RewardVecEnvWrapper(make_vec_env("Pendulum-v1", n_envs=1), reward)
    with pytest.raises(ValueError, match="VecNormalize sits below"):
        RewardVecEnvWrapper(VecNormalize(make_vec_env("Pendulum-v1", n_envs=1)), MLPReward())
    wrapped = RewardVecEnvWrapper(make_vec_env("Pendulum-v1", n_envs=1), MLPReward())
    with pytest.raises(ValueError, match="already has a RewardVecEnvWrapper"):
        RewardVecEnvWrapper(VecMonitor(wrapped), MLPReward())


def test_nan_from_a_term_is_named() -> None:
    venv = RewardVecEnvWrapper(chain_venv(2), FunctionReward(lambda b: np.where(b.env_ids == 1, np.nan, 0.0),
                                                             label="flaky"))
    venv.reset()
    with pytest.raises(RewardError, match=r"\['flaky'\].*env rows \[1\]"):
        venv.step(np.array([1, 1]))


def test_reward_save_load_reproduces_outputs(tmp_path) -> None:
    venv = make_vec_env("Pendulum-v1", n_envs=2, seed=1)
    reward = MLPReward(hidden=(16,), seed=3)
    from robo_reward.registry import make_reward

    reward = make_reward("mlp", hidden=[16], seed=3)
    wrapped = RewardVecEnvWrapper(venv, reward)
    with torch.no_grad():
        for p in reward.module.parameters():
            p.add_(0.1)
    wrapped.reset()
    _, r, _, _ = wrapped.step(np.ones((2, 1)))
    path = save_reward(reward, tmp_path / "reward.pt")
    loaded = load_reward(path)
    again = RewardVecEnvWrapper(make_vec_env("Pendulum-v1", n_envs=2, seed=1), loaded)
    again.reset()
    _, r2, _, _ = again.step(np.ones((2, 1)))
    np.testing.assert_array_equal(r, r2)
    fresh = RewardVecEnvWrapper(make_vec_env("Pendulum-v1", n_envs=2, seed=1), make_reward("mlp", hidden=[16], seed=3))
    fresh.reset()
    assert not np.allclose(fresh.step(np.ones((2, 1)))[1], r)


def test_check_reward_helper_accepts_a_deterministic_reward() -> None:
    rewards = check_reward(lambda: MLPReward(seed=1), lambda: gym.make("Pendulum-v1"), steps=20)
    assert rewards.shape == (20, 2)


class StepLog(RewardCallback):
    """Also keeps the rewards SB3 received at each step."""

    def __init__(self) -> None:
        super().__init__()
        self.paid: list[float] = []

    def _on_step(self) -> bool:
        self.paid.append(float(self.locals["rewards"][0]))
        return super()._on_step()


def test_relabeling_buffer_recomputes_with_current_model_and_keeps_env_reward() -> None:
    env = make_vec_env("Pendulum-v1", n_envs=1, seed=0)  # actions in [-2, 2]: SB3 stores them rescaled
    reward = MLPReward(hidden=(8,), seed=0)
    venv = RewardVecEnvWrapper(env, reward, extrinsic_weight=0.5)
    model = SAC("MlpPolicy", venv, learning_starts=10_000, buffer_size=1000, seed=0,
                replay_buffer_class=RelabelingReplayBuffer)
    log = StepLog()
    model.learn(300, callback=log)
    buf: RelabelingReplayBuffer = model.replay_buffer  # type: ignore[assignment]
    n = buf.pos
    assert n == 300
    env_rewards = np.array([ep for ep in buf.rewards[:n, 0]])
    # stored rewards are the env's own
    recorded = [info_r for info_r in env_rewards]
    assert np.all(np.array(recorded) <= 0.0)  # Pendulum's reward is never positive
    # relabelled rewards of the stored transitions equal what was paid at step time (obs, unscaled action, s')
    inds = np.arange(n)
    np.random.seed(0)
    samples = buf._get_samples(inds)
    np.testing.assert_allclose(samples.rewards.numpy().ravel(), np.array(log.paid), rtol=1e-5, atol=1e-5)
    # change the model: sampled rewards change and equal the new model's, stored env rewards do not
    with torch.no_grad():
        for p in reward.module.parameters():
            p.mul_(-2.0)
    samples2 = buf._get_samples(inds)
    assert not np.allclose(samples2.rewards.numpy(), samples.rewards.numpy())
    np.testing.assert_array_equal(buf.rewards[:n, 0], env_rewards)
    obs, next_obs = buf.observations[:n, 0], buf.next_observations[:n, 0]
    acts = buf.env_actions(buf.actions[:n, 0])
    from robo_reward.protocol import TransitionBatch

    expected = 0.5 * env_rewards + reward(TransitionBatch(obs, acts, next_obs, env_rewards, np.zeros(n, bool),
                                                          np.zeros(n, bool)))
    np.testing.assert_allclose(samples2.rewards.numpy().ravel(), expected, rtol=1e-5, atol=1e-5)


def test_callback_passes_gamma_logs_terms_and_runs_updates() -> None:
    class Learner(FunctionReward):
        update_every = 4

        def __init__(self) -> None:
            super().__init__(lambda b: np.ones(b.num), label="bonus")
            self.sizes: list[int] = []

        def update(self, batch):
            self.sizes.append(batch.num)
            return {"loss": float(batch.num)}

    learner = Learner()
    venv = RewardVecEnvWrapper(chain_venv(2, continuous=True), learner)
    model = PPO("MlpPolicy", venv, n_steps=8, batch_size=16, n_epochs=1, gamma=0.93, seed=0)
    cb = RewardCallback()
    model.learn(32, callback=cb)
    assert learner.gamma == 0.93
    assert learner.sizes and set(learner.sizes) == {8}
    assert cb.episodes, "episodes should have ended on a 3-step chain"
    for ep in cb.episodes:
        assert ep["reward/bonus"] == ep["length"]

    shaping = PotentialShaping(PositionPotential(), gamma=0.99)
    model = PPO("MlpPolicy", RewardVecEnvWrapper(chain_venv(1), shaping), n_steps=8, batch_size=8, gamma=0.9)
    with pytest.raises(ValueError, match=r"gamma=0\.99 but the learner uses gamma=0\.9"):
        model.learn(8, callback=RewardCallback())


class DictChain(gym.ObservationWrapper):
    """ChainEnv with a dict observation: the state and an 'extra' view only the reward reads."""

    def __init__(self) -> None:
        super().__init__(ChainEnv(length=2, max_steps=3))
        box = self.env.observation_space
        self.observation_space = gym.spaces.Dict({"state": box, "extra": gym.spaces.Box(0, 10, (1,))})

    def observation(self, obs):
        return {"state": obs, "extra": np.array([10 * obs[0]], dtype=np.float32)}


def test_policy_sees_one_key_while_the_reward_sees_all() -> None:
    from robo_reward.sb3 import VecObservationKey

    reward = FunctionReward(lambda b: b.next_obs["extra"][:, 0], label="extra")
    venv = VecObservationKey(RewardVecEnvWrapper(DummyVecEnv([DictChain] * 2), reward, extrinsic_weight=0.0),
                             "state")
    assert venv.observation_space.shape == (2,)
    obs = venv.reset()
    assert obs.shape == (2, 2)
    obs, r, dones, infos = venv.step(np.array([1, 1]))
    np.testing.assert_allclose(r, 10 * obs[:, 0])
    obs, r, dones, infos = venv.step(np.array([1, 1]))
    assert dones.all() and infos[0]["terminal_observation"].shape == (2,)
    np.testing.assert_allclose(r, 10.0)  # the reward saw the terminal 'extra' view, not the reset one
    with pytest.raises(ValueError, match="'pixels' is not in the env's observations"):
        VecObservationKey(DummyVecEnv([DictChain]), "pixels")


def test_naive_difference_flag() -> None:
    naive = PotentialShaping(PositionPotential(), naive=True)
    naive.bind(gym.spaces.Box(0, 1, (2,)), gym.spaces.Discrete(2), 1)
    naive.reset(np.zeros((1, 2)), np.ones(1, bool))
    from robo_reward.protocol import TransitionBatch

    b = TransitionBatch(np.zeros((1, 2)), np.zeros((1, 1)), np.array([[0.5, 0.0]]), np.zeros(1),
                        terminated=np.array([True]), truncated=np.array([False]))
    assert naive(b)[0] == pytest.approx(0.0 - 1.0)  # terminal rule kept, gamma' = 1, no learner gamma needed
    b.terminated[:] = False
    naive.reset(np.zeros((1, 2)), np.ones(1, bool))
    assert naive(b)[0] == pytest.approx(6.0 - 1.0)
