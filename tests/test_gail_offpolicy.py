"""Off-policy GAIL through the core relabelling buffer: historical patching, absorbing states through the core
runner, and the replay-vs-expert discriminator schedule of agents.gail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv

from robo_reward.agents.experts import rollout
from robo_reward.agents.gail import DiscriminatorCallback, sample_replay
from robo_reward.datasets import save_npz
from robo_reward.methods.gail.reward import GAILReward, reward_from_logits
from robo_reward.sb3 import RelabelingReplayBuffer, RewardCallback, RewardVecEnvWrapper

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "gail"


def make_env(env_id: str, seed: int) -> DummyVecEnv:
    return make_vec_env(env_id, n_envs=1, seed=seed, vec_env_cls=DummyVecEnv)


@pytest.fixture(scope="module")
def pendulum_demos(tmp_path_factory) -> str:
    """Two scripted 'expert' episodes (energy-pumping heuristic), enough to exercise the machinery."""

    def policy(obs: np.ndarray) -> np.ndarray:
        return np.clip([2.0 * np.sign(obs[2] * obs[0] + 1e-3)], -2, 2).astype(np.float32)

    path = tmp_path_factory.mktemp("demos") / "pendulum.npz"
    save_npz(path, rollout("Pendulum-v1", policy, episodes=2, seed=0), ref_min_score=-1200, ref_max_score=-150)
    return str(path)


def test_buffer_reward_changes_after_discriminator_update_and_env_reward_is_kept(pendulum_demos):
    reward = GAILReward(expert=pendulum_demos, seed=0, lr=1e-2)
    venv = RewardVecEnvWrapper(make_env("Pendulum-v1", seed=0), reward, extrinsic_weight=0.0)
    model = SAC("MlpPolicy", venv, learning_starts=200, buffer_size=1000, seed=0,
                replay_buffer_class=RelabelingReplayBuffer)
    model.learn(200, callback=RewardCallback())
    buffer = model.replay_buffer
    assert buffer.reward is reward
    stored_before = buffer.rewards[:200].copy()
    # the env's own Pendulum reward is stored (non-positive), not the GAIL reward (non-negative)
    assert (stored_before <= 0).all() and stored_before.min() < -0.5

    def sampled_rewards() -> np.ndarray:
        np.random.seed(0)  # SB3 samples with the global numpy RNG
        return buffer.sample(64).rewards.numpy().ravel()

    before = sampled_rewards()
    np.testing.assert_array_equal(before, sampled_rewards())
    for _ in range(20):
        reward.update(sample_replay(buffer, 128, np.random.default_rng(1)))
    after = sampled_rewards()
    assert not np.allclose(before, after), "sampled rewards must be recomputed with the updated discriminator"
    np.testing.assert_array_equal(buffer.rewards[:200], stored_before)
    # what is sampled is exactly the current D's reward of the stored (s, a)
    np.random.seed(0)
    inds = np.random.randint(0, 200, size=64)
    env_ids = np.random.randint(0, 1, size=64)
    obs = torch.as_tensor(buffer.observations[inds, env_ids])
    act = buffer.actions[inds, env_ids]
    low, high = venv.action_space.low, venv.action_space.high
    act_env = torch.as_tensor(low + 0.5 * (act + 1.0) * (high - low))
    with torch.no_grad():
        expected = reward_from_logits(reward.discriminator(obs, act_env)).numpy()
    np.testing.assert_allclose(after, expected, rtol=1e-5, atol=1e-6)


def test_absorbing_transitions_reach_the_buffer_and_are_bootstrapped(tmp_path):
    from robo_reward.config import load_config
    from robo_reward.runner import TrainingRun

    demos = tmp_path / "ip.npz"
    save_npz(demos, rollout("InvertedPendulum-v5", lambda o: np.zeros(1, np.float32), episodes=2, seed=0))
    cfg = load_config(CONFIGS / "inverted_pendulum.yaml", [f"reward.terms.0.expert={demos}",
                                                            "agent.kwargs={learning_starts: 100, buffer_size: 500}",
                                                            "logging.tensorboard=false"])
    run = TrainingRun(cfg, tmp_path / "run", seed=0, progress=False)
    run.setup()
    run.model.learn(150, callback=RewardCallback())
    buffer = run.model.replay_buffer
    n = buffer.pos
    flags_next = buffer.next_observations[:n, 0, -1]
    flags = buffer.observations[:n, 0, -1]
    entering = np.flatnonzero((flags == 0) & (flags_next == 1))
    loops = np.flatnonzero((flags == 1) & (flags_next == 1))
    assert len(entering) > 0 and len(loops) in (len(entering), len(entering) - 1)  # the last loop may be pending
    assert not buffer.dones[entering].any(), "entering the absorbing state is not a terminal transition"
    assert buffer.timeouts[loops].all(), "the absorbing self-loop is a truncation, so it is bootstrapped"
    reward = run.reward
    assert isinstance(reward, GAILReward) and (reward.expert.obs[:, -1] == 1).sum() == 2  # both expert episodes fell
    assert reward.num_updates == 150 // 20


def test_discriminator_callback_trains_on_replay_after_learning_starts(pendulum_demos):
    reward = GAILReward(expert=pendulum_demos, seed=0, update_every=None, batch_size=16, d_steps=2)
    venv = RewardVecEnvWrapper(make_env("Pendulum-v1", seed=0), reward, extrinsic_weight=0.0)
    model = SAC("MlpPolicy", venv, learning_starts=200, buffer_size=1000, batch_size=32, seed=0,
                replay_buffer_class=RelabelingReplayBuffer)
    callback = DiscriminatorCallback(reward, every=20, batch=16, steps=2, seed=0)
    model.learn(300, callback=[RewardCallback(), callback])
    assert [row["timestep"] for row in callback.history] == [200.0 + 20 * k for k in range(6)]
    assert reward.num_updates == 6  # only the callback updates D (update_every=None)
    with pytest.raises(TypeError, match="relabelling replay buffer"):
        sample_replay(SAC("MlpPolicy", make_env("Pendulum-v1", seed=0)).replay_buffer, 4, np.random.default_rng(0))


def test_relabelling_buffer_pickles_without_its_reward(pendulum_demos):
    import pickle

    import gymnasium as gym

    buffer = RelabelingReplayBuffer(10, gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-2, 2, (1,)),
                                    reward=GAILReward(expert=pendulum_demos))
    clone = pickle.loads(pickle.dumps(buffer))  # spectral-norm modules refuse to pickle
    assert clone.reward is None and buffer.reward is not None
