"""Relabelling from stored per-transition reward state (the core hook KAGI needs) and demo-prefilled buffers.

The hook is general (``Reward.transition_state`` -> ``batch.extras``); KAGI is its first user: relabelled
rewards must equal the online ones, with zero proposer calls, for the agent's and the demos' transitions.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

import robo_reward  # noqa: F401
from robo_reward.config import ConfigError, load_config
from robo_reward.datasets import load_demos, write_dataset
from robo_reward.demo_buffer import fill_replay_buffer, replay_through_reward
from robo_reward.envs.demos import collect_demos
from robo_reward.methods.kagi import KAGIReward, OracleProposer
from robo_reward.protocol import Reward, TransitionBatch
from robo_reward.runner import TrainingRun
from robo_reward.sb3 import RelabelingReplayBuffer, RewardCallback, RewardVecEnvWrapper

PICK = "robo_reward/PickPlace-v0"


class CountingOracle(OracleProposer):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.calls = 0

    def propose(self, scene, instruction):
        self.calls += 1
        return super().propose(scene, instruction)


class StepCounter(Reward):
    """Pays the number of steps of its episode so far: stateful, relabelled only through its stored counter."""

    name = "counter"
    stateless = False

    def bind(self, observation_space, action_space, num_envs) -> None:
        super().bind(observation_space, action_space, num_envs)
        self.count = np.zeros(num_envs)
        self.last = np.zeros(num_envs)

    @property
    def can_relabel(self) -> bool:
        return True

    def reset(self, obs, env_mask) -> None:
        self.count[env_mask] = 0

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        self.count[batch.env_ids] += 1
        self.last[batch.env_ids] = self.count[batch.env_ids]
        return self.count[batch.env_ids].copy()

    def transition_state(self) -> dict[str, np.ndarray]:
        return {"counter/n": self.last.copy()}

    def relabel(self, batch: TransitionBatch) -> np.ndarray:
        return np.asarray(batch.extras["counter/n"], dtype=np.float64)


def test_buffer_stores_transition_state_and_hands_it_back() -> None:
    venv = RewardVecEnvWrapper(make_vec_env("Pendulum-v1", n_envs=2, seed=0), StepCounter(), extrinsic_weight=0.0)
    buffer = RelabelingReplayBuffer(64, venv.observation_space, venv.action_space, n_envs=2)
    buffer.attach_reward(venv.reward, 0.0)
    obs = venv.reset()
    paid = []
    for _ in range(10):
        action = np.zeros((2, 1), np.float32)
        nxt, r, dones, infos = venv.step(action)
        buffer.add(obs, nxt, action, r, dones, infos)
        paid.append(r)
        obs = nxt
    batch = buffer.stored(np.repeat(np.arange(10), 2), np.tile([0, 1], 10))
    np.testing.assert_array_equal(batch.extras["counter/n"], np.concatenate(paid))
    np.testing.assert_array_equal(buffer.designed_rewards(batch), np.concatenate(paid))
    with pytest.raises(ValueError, match="keys changed"):
        buffer.add(obs, obs, action, r, dones, infos, extras={"other": np.zeros(2)})
    sub = batch.select(np.array([1, 3]))
    assert sub.extras["counter/n"].tolist() == [1.0, 2.0]
    assert set(TransitionBatch.concat([sub, sub]).extras) == {"counter/n"}


def test_kagi_relabelled_equals_online_and_never_calls_the_proposer() -> None:
    """SAC with the relabelling buffer: every stored transition's relabelled reward equals what was paid online."""
    proposer = CountingOracle(pixel_noise=2.0, wrong_prob=0.2)
    reward = KAGIReward(proposer=proposer)
    venv = RewardVecEnvWrapper(make_vec_env(PICK, n_envs=2, seed=0, env_kwargs={"max_episode_steps": 30}),
                               reward, extrinsic_weight=0.0)
    paid: dict[int, np.ndarray] = {}

    class Record(BaseCallback):
        def _on_step(self) -> bool:
            paid[self.model.replay_buffer.pos] = np.array([i["reward/kagi"] for i in self.locals["infos"]])
            return True

    model = SAC("MlpPolicy", venv, learning_starts=100, batch_size=32, train_freq=8, seed=0,
                replay_buffer_class=RelabelingReplayBuffer, policy_kwargs={"net_arch": [16]})
    model.learn(160, callback=[RewardCallback(), Record()])
    episodes = 2 * (1 + (160 // 2) // 30)
    assert proposer.calls == episodes, "one proposer call per episode start (2 envs, 30-step episodes)"
    calls = proposer.calls
    buffer = model.replay_buffer
    slots = np.array(sorted(paid))
    batch = buffer.stored(np.repeat(slots, 2), np.tile([0, 1], len(slots)))
    relabelled = buffer.designed_rewards(batch)
    np.testing.assert_allclose(relabelled, np.concatenate([paid[s] for s in slots]), rtol=0, atol=1e-9)
    assert proposer.calls == calls, "relabelling must not call the proposer"
    assert (batch.extras["kagi/valid"]).all()


@pytest.fixture(scope="module")
def pick_demos(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("minari")
    episodes = collect_demos(PICK, episodes=4, seed=0)
    return str(write_dataset("robo_reward/kagi-test/pick-v0", episodes, root=root))


def test_demo_transitions_relabel_to_the_replayed_reward(pick_demos: str) -> None:
    episodes = load_demos(pick_demos)
    proposer = CountingOracle()
    reward = KAGIReward(proposer=proposer)
    env = gym.make(PICK)
    reward.bind(env.observation_space, env.action_space, 1)
    buffer = RelabelingReplayBuffer(500, env.observation_space, env.action_space, n_envs=1)
    added = fill_replay_buffer(buffer, episodes, reward=reward, extrinsic_weight=0.0)
    assert added == sum(len(e.actions) for e in episodes) == buffer.pos
    assert proposer.calls == len(episodes)
    expected = np.concatenate([replay_through_reward(e, reward, 1)[0] for e in episodes])
    calls = proposer.calls
    buffer.attach_reward(reward, 0.0)
    batch = buffer.stored(np.arange(added), np.zeros(added, dtype=int))
    np.testing.assert_allclose(buffer.designed_rewards(batch), expected, atol=1e-9)
    assert proposer.calls == calls == 2 * len(episodes), "relabelling must not call the proposer"
    assert batch.terminated.sum() == sum(e.terminations.any() for e in episodes)
    assert (expected[batch.terminated] == 1.0).all()


def test_runner_demo_buffer_option(pick_demos: str, tmp_path) -> None:
    base = {"env": {"id": PICK, "n_envs": 1, "max_episode_steps": 40},
            "agent": {"algo": "SAC", "kwargs": {"learning_starts": 10, "policy_kwargs": {"net_arch": [16]}},
                      "demo_buffer": {"dataset": pick_demos, "fraction": 0.5}},
            "logging": {"progress": False, "tensorboard": False}, "budget": {"total_timesteps": 20}}
    cfg = load_config(base)
    run = TrainingRun(cfg, tmp_path / "sparse")
    run.setup()
    demos = load_demos(pick_demos)[:2]
    n = sum(len(e.actions) for e in demos)
    buffer = run.model.replay_buffer
    assert buffer.pos == n and not isinstance(buffer, RelabelingReplayBuffer)
    np.testing.assert_array_equal(buffer.rewards[:n, 0], np.concatenate([e.rewards for e in demos]))
    kagi = load_config(base, ["reward.extrinsic_weight=0", "reward.terms=[{name: kagi}]"])
    run = TrainingRun(kagi, tmp_path / "kagi")
    run.setup()
    assert isinstance(run.model.replay_buffer, RelabelingReplayBuffer)
    assert run.model.replay_buffer.extras["kagi/waypoints"].shape == (run.model.replay_buffer.buffer_size, 1, 5, 3)
    with pytest.raises(ConfigError, match="off-policy"):
        TrainingRun(load_config(base, ["agent.algo=PPO", "agent.kwargs={}"]), tmp_path / "ppo").setup()
    with pytest.raises(ConfigError, match="fraction"):
        load_config(base, ["agent.demo_buffer.fraction=0"])
