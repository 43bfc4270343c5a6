"""Off-policy GAIL through the core relabelling buffer: historical patching, absorbing states, trainer smoke runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3 import SAC

from robo_reward.agents.experts import rollout
from robo_reward.agents.gail import GAILConfig, build, make_env, sample_replay, train
from robo_reward.datasets import save_npz
from robo_reward.methods.gail.reward import GAILReward, reward_from_logits
from robo_reward.sb3 import RelabelingReplayBuffer, RewardCallback, RewardVecEnvWrapper


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
    demos = tmp_path / "ip.npz"
    save_npz(demos, rollout("InvertedPendulum-v5", lambda o: np.zeros(1, np.float32), episodes=2, seed=0))
    cfg = GAILConfig(env_id="InvertedPendulum-v5", demos=str(demos), total_steps=150, seed=0,
                     agent_kwargs={"learning_starts": 100, "buffer_size": 500})
    model, reward, callbacks = build(cfg)
    from stable_baselines3.common.callbacks import CallbackList

    model.learn(cfg.total_steps, callback=CallbackList(callbacks))
    buffer = model.replay_buffer
    n = buffer.pos
    flags_next = buffer.next_observations[:n, 0, -1]
    flags = buffer.observations[:n, 0, -1]
    entering = np.flatnonzero((flags == 0) & (flags_next == 1))
    loops = np.flatnonzero((flags == 1) & (flags_next == 1))
    assert len(entering) > 0 and len(loops) in (len(entering), len(entering) - 1)  # the last loop may be pending
    assert not buffer.dones[entering].any(), "entering the absorbing state is not a terminal transition"
    assert buffer.timeouts[loops].all(), "the absorbing self-loop is a truncation, so it is bootstrapped"
    assert reward is not None and (reward.expert.obs[:, -1] == 1).sum() == 2  # both expert episodes fell


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_trainer_runs_and_is_deterministic(pendulum_demos, algo):
    cfg = GAILConfig(env_id="Pendulum-v1", demos=pendulum_demos, algo=algo, total_steps=400, eval_every=200,
                     eval_episodes=2, d_every=20, seed=0, agent_kwargs={"learning_starts": 200})
    first, second = train(cfg), train(cfg)
    assert [r["timestep"] for r in first["curve"]] == [200.0, 400.0]
    assert first["curve"] == second["curve"]
    assert first["discriminator"] == second["discriminator"] and len(first["discriminator"]) == 11  # at 200, 220, ..., 400


def test_config_errors_name_the_problem():
    with pytest.raises(ValueError, match="demos"):
        GAILConfig(env_id="Pendulum-v1")
    with pytest.raises(ValueError, match="through GAILConfig"):
        GAILConfig(env_id="Pendulum-v1", demos="x.npz", reward_kwargs={"batch_size": 3})
    from robo_reward.agents.gail import config_from_mapping

    with pytest.raises(KeyError, match="valid keys"):
        config_from_mapping({"env_id": "Pendulum-v1", "demo": "x"})


def test_relabelling_buffer_pickles_without_its_reward(pendulum_demos):
    import pickle

    import gymnasium as gym

    buffer = RelabelingReplayBuffer(10, gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-2, 2, (1,)),
                                    reward=GAILReward(expert=pendulum_demos))
    clone = pickle.loads(pickle.dumps(buffer))  # spectral-norm modules refuse to pickle
    assert clone.reward is None and buffer.reward is not None
