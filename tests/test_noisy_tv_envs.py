"""The noisy-TV MiniGrid tasks: checkers, seeding, where the noise goes and the coverage bookkeeping."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import robo_reward  # noqa: F401
from robo_reward.envs.noisy_tv import TASKS
from robo_reward.envs.noisy_tv.env import REMOTE_ACTION, SCENERY, NoisyTVEnv

IDS = [f"robo_reward/{name}-v0" for name in TASKS]
FORWARD, LEFT, PICKUP = 2, 0, 3


def view(obs: np.ndarray) -> np.ndarray:
    return obs[:-1].reshape(7, 7, 3)


@pytest.mark.parametrize("env_id", IDS)
def test_checkers_pass(env_id: str) -> None:
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(gym.make(env_id), warn=False)
    assert env.observation_space.shape == (148,) and env.action_space.n == 7


@pytest.mark.parametrize("env_id", IDS)
def test_same_seed_same_trajectory(env_id: str) -> None:
    actions = np.random.default_rng(0).integers(0, 7, 300)
    runs = []
    for _ in range(2):
        env = gym.make(env_id)
        obs, _ = env.reset(seed=3)
        seq = [obs]
        for a in actions:
            obs, _, term, trunc, _ = env.step(int(a))
            seq.append(obs)
            if term or trunc:
                obs, _ = env.reset()
        runs.append(np.stack(seq))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_remote_fills_far_rows_with_scenery_noise_and_does_not_move() -> None:
    env = NoisyTVEnv("on_demand")
    obs, _ = env.reset(seed=0)
    frames = []
    for _ in range(20):
        noisy, _, _, _, info = env.step(REMOTE_ACTION)
        assert info["tv_pressed"] and info["tv_noise"] and info["agent_pos"] == (2, 2)
        far, near = view(noisy)[:, : env.noise_rows], view(noisy)[:, env.noise_rows :]
        np.testing.assert_array_equal(near, view(obs)[:, env.noise_rows :])
        cells = far.reshape(-1, 3)
        assert (cells[:, None, :] == SCENERY[None]).all(-1).any(-1).all(), "noise cells must look like scenery"
        frames.append(far)
    assert len({f.tobytes() for f in frames}) == 20, "every press shows fresh noise"
    quiet, _, _, _, info = env.step(PICKUP)
    assert not info["tv_noise"]
    np.testing.assert_array_equal(quiet, obs)


def test_tv_cell_changes_colour_only_while_in_view() -> None:
    env = NoisyTVEnv("cell")
    env.reset(seed=0)
    colours = []
    for _ in range(30):
        _, _, _, _, info = env.step(PICKUP)
        assert info["tv_in_view"] and info["tv_noise"]
        colours.append(env.tv_screen.color)
    assert len(set(colours)) > 3
    env.step(LEFT)
    env.step(LEFT)  # facing away from the TV
    _, _, _, _, info = env.step(PICKUP)
    assert not info["tv_in_view"] and not info["tv_noise"]
    frozen = env.tv_screen.color
    for _ in range(5):
        env.step(PICKUP)
    assert env.tv_screen.color == frozen


def test_control_has_no_noise() -> None:
    env = NoisyTVEnv("none")
    obs, _ = env.reset(seed=0)
    for _ in range(10):
        same, _, _, _, info = env.step(REMOTE_ACTION)
        assert info["tv_pressed"] and info["tv_in_view"] and not info["tv_noise"]
        np.testing.assert_array_equal(same, obs)


def test_coverage_counts_visited_over_reachable_cells() -> None:
    env = NoisyTVEnv("none")
    _, info = env.reset(seed=0)
    assert env.num_reachable == 4 * 5 * 5 + 4
    assert info["coverage"] == pytest.approx(1 / 104)
    for _ in range(3):
        _, _, _, _, info = env.step(FORWARD)
    assert info["agent_pos"] == (5, 2) and info["coverage"] == pytest.approx(4 / 104)
    env.step(LEFT)
    env.step(LEFT)
    _, _, _, _, info = env.step(FORWARD)  # back onto a visited cell
    assert info["coverage"] == pytest.approx(4 / 104)


@pytest.mark.parametrize("tv", ["on_demand", "cell", "none"])
def test_episode_fractions_are_counted_per_episode(tv: str) -> None:
    env = NoisyTVEnv(tv, max_steps=40)
    rng = np.random.default_rng(0)
    for episode in range(2):  # the second episode starts its counts afresh
        _, info = env.reset(seed=episode)
        assert (info["tv_fraction"], info["pressed_fraction"], info["in_view_fraction"]) == (0.0, 0.0, 0.0)
        flags, done = [], False
        while not done:
            action = REMOTE_ACTION if rng.random() < 0.3 else int(rng.integers(0, 3))
            _, _, terminated, truncated, info = env.step(action)
            flags.append((info["tv_noise"], info["tv_pressed"], info["tv_in_view"]))
            done = terminated or truncated
        expected = np.mean(flags, axis=0)
        got = (info["tv_fraction"], info["pressed_fraction"], info["in_view_fraction"])
        np.testing.assert_allclose(got, expected)
        assert len(flags) == 40 and 0 < expected[1] < 1
    if tv == "none":
        assert info["tv_fraction"] == 0.0


def test_goal_terminates_with_minigrid_reward_and_time_limit_truncates() -> None:
    env = NoisyTVEnv("none", room_size=3, max_steps=50)
    env.reset(seed=0)
    env.agent_pos, env.agent_dir = (env.width - 3, env.height - 2), 0
    _, reward, terminated, truncated, _ = env.step(FORWARD)
    assert terminated and not truncated and reward == pytest.approx(1 - 0.9 * 1 / 50)
    env.reset(seed=0)
    for _ in range(49):
        assert not env.step(PICKUP)[3]
    assert env.step(PICKUP)[3]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="tv must be one of"):
        NoisyTVEnv("loud")
    with pytest.raises(ValueError, match="noise_rows"):
        NoisyTVEnv(noise_rows=9)
