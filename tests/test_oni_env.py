"""The NetHack tasks for ONI: env checkers, message counts, per-episode metrics, and the count decay end to end."""

from __future__ import annotations

import time

import gymnasium as gym
import nle.nethack as nh
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import DummyVecEnv

import robo_reward  # noqa: F401
from robo_reward.envs.nethack.env import NetHackTextEnv, decode_message
from robo_reward.methods.oni import KeywordAnnotator, ONIRetrieval
from robo_reward.sb3 import RewardVecEnvWrapper

DOWN_TEXT = "You can't go down here."


def _down(env: gym.Env) -> int:
    return env.unwrapped.actions.index(nh.MiscDirection.DOWN)


@pytest.mark.parametrize("task", ["NetHackScore", "NetHackStaircase", "NetHackOracle", "NetHackStaircaseLvl3"])
def test_env_checkers(task: str) -> None:
    env = gym.make(f"robo_reward/{task}-v0")
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(gym.make(f"robo_reward/{task}-v0"))
    env.close()


def test_message_counts_restart_each_episode_and_info_has_episode_metrics() -> None:
    env = gym.make("robo_reward/NetHackStaircase-v0")
    obs, info = env.reset(seed=1)
    assert set(info) == {"depth", "score", "messages", "distinct_messages", "is_success"} and info["depth"] == 1
    counts = []
    for _ in range(3):
        obs, _, _, _, info = env.step(_down(env))
        assert decode_message(obs["message"]) == DOWN_TEXT
        counts.append(int(obs["message_count"][0]))
    assert counts == [1, 2, 3]
    assert info["distinct_messages"] == 2 and info["messages"] == 4  # the welcome message, then 3 x ">"
    obs, info = env.reset()
    assert info["messages"] == 1
    obs, *_ = env.step(_down(env))
    assert int(obs["message_count"][0]) == 1
    assert gym.make("robo_reward/NetHackScore-v0").reset(seed=0)[1].keys() == {"depth", "score", "messages",
                                                                              "distinct_messages"}


def test_seeded_episodes_repeat() -> None:
    actions = np.random.default_rng(0).integers(23, size=60)
    runs = []
    for _ in range(2):
        env = NetHackTextEnv("score")
        env.reset(seed=7)
        trace = []
        for a in actions:
            obs, r, term, trunc, _ = env.step(a)
            trace.append(np.concatenate([obs["policy"], obs["message"], [r, term, trunc]]))
        runs.append(np.stack(trace))
        env.close()
    assert np.array_equal(runs[0], runs[1])


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="task must be one of"):
        NetHackTextEnv("sokoban")
    with pytest.raises(ValueError, match="crop must be an odd"):
        NetHackTextEnv("score", crop=8)


def test_count_decay_is_per_episode_across_vector_autoresets() -> None:
    """c_int * r_int * n^-3 with n counted within the episode; SB3's autoreset restarts the count.

    Episodes are 3 steps long (TimeLimit), the agent presses ">" off the stairs every step, so the message is the
    same each step: its n runs 1, 2, 3, then 1, 2, 3 after the autoreset. A wrong exponent or a count that is not
    restarted gives other values. Reward-free mode (c_ext = 0): the env's -0.01 frozen-step penalty of these steps
    must not reach the total.
    """
    venv = DummyVecEnv([lambda: gym.make("robo_reward/NetHackStaircase-v0", max_episode_steps=3)] * 2)
    venv.seed(3)
    annotator = KeywordAnnotator(keywords={"stairs": {"can't go down": 1}}, negatives=())
    reward = ONIRetrieval(annotator=annotator, goal="stairs", c_int=0.5, beta=3.0, synchronous=True)
    wrapped = RewardVecEnvWrapper(venv, reward, extrinsic_weight=0.0)
    wrapped.reset()
    down = np.full(2, _down(venv.envs[0]))
    first = [wrapped.step(down)[1].copy() for _ in range(3)]
    assert np.array_equal(first, np.zeros((3, 2)))  # unseen: pays 0 until labelled
    assert reward.worker.counters["enqueued"] == 1  # seen 6 times, queued once
    reward.update(None)  # type: ignore[arg-type]
    paid = np.array([wrapped.step(down)[1] for _ in range(6)])
    expected = 0.5 * np.array([1.0, 1 / 8, 1 / 27, 1.0, 1 / 8, 1 / 27])
    np.testing.assert_allclose(paid, np.stack([expected, expected], axis=1), rtol=1e-6)
    venv.close()


def test_stepping_never_blocks_on_a_slow_annotator() -> None:
    """Steps/s with a 1 s-latency annotator over steps/s with an instant one, measured as a ratio in one run.

    Both arms step the same seeded NetHack envs with the same actions, alternating every 10 steps so load
    changes on a shared machine hit both alike. A reward that waited for its labels would run at well under one
    step per second with the slow annotator (NetHack prints new messages every few steps), a ratio near 0; on an
    idle machine the ratio is about 1, and the bound leaves room for the noise of a heavily shared CPU.
    """
    arms = {}
    for latency in (0.0, 1.0):
        venv = DummyVecEnv([lambda: gym.make("robo_reward/NetHackScore-v0")] * 2)
        venv.seed(0)
        reward = ONIRetrieval(annotator={"name": "keyword", "latency": latency}, goal="defaultgoal")
        wrapped = RewardVecEnvWrapper(venv, reward, extrinsic_weight=0.0)
        wrapped.reset()
        arms[latency] = (wrapped, reward, np.random.default_rng(0), [0.0])
    backlog_seen = 0
    for _ in range(40):
        for latency, (wrapped, reward, rng, elapsed) in arms.items():
            actions = rng.integers(23, size=(10, 2))
            start = time.perf_counter()
            for a in actions:
                wrapped.step(a)
            elapsed[0] += time.perf_counter() - start
            if latency:
                backlog_seen = max(backlog_seen, reward.worker.pending())
    slow, fast = arms[1.0][3][0], arms[0.0][3][0]
    ratio = fast / slow  # (steps / slow) / (steps / fast)
    print(f"steps/s with a 1 s annotator / with an instant one: {ratio:.3f}")
    assert backlog_seen > 0  # labels were pending while the slow arm stepped
    assert arms[0.0][1].worker.counters["labelled"] > arms[1.0][1].worker.counters["labelled"]
    assert ratio > 0.75, ratio
    for wrapped, reward, _, _ in arms.values():
        reward.close()
        wrapped.close()


@pytest.mark.slow
def test_resume_restores_labels_queue_and_counts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A run's labels, queue and counters come back on resume through the reward's checkpoint."""
    from robo_reward.config import load_config
    from robo_reward.runner import TrainingRun

    cfg = load_config("configs/oni/score_retrieval.yaml", [
        "env.n_envs=1", "env.max_episode_steps=40", "budget.total_timesteps=128", "budget.checkpoint_every=64",
        "agent.kwargs.n_steps=32", "agent.kwargs.batch_size=32", "agent.kwargs.n_epochs=1", "eval.episodes=1",
        "eval.every=128", "logging.tensorboard=false", "reward.terms.0.update_every=16",
        "reward.terms.0.synchronous=true"])
    run = TrainingRun(cfg, tmp_path / "run", seed=0, progress=False)
    run.setup()
    run.learn()
    saved = run.reward.state_dict()["worker"]  # type: ignore[union-attr]
    assert saved["labels"] and saved["counters"]["enqueued"] >= len(saved["labels"])
    resumed = TrainingRun(load_config(tmp_path / "run" / "config.yaml"), tmp_path / "run", progress=False)
    assert resumed.restore() == 128
    worker = resumed.reward.worker  # type: ignore[union-attr]
    assert worker.labels == saved["labels"] and worker.counters == saved["counters"]
    assert worker.pending() == len(saved["queue"])
    resumed.model.get_env().close()  # type: ignore[union-attr]
