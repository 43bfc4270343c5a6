"""Push2D: Gymnasium's checker, the hidden preference the task reward ignores, both embodiments, metrics in info."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import robo_reward  # noqa: F401  (registers the envs)
from robo_reward.envs.push2d.env import BLOCK_HALF, GOAL, ZONE, Push2DEnv, in_box
from robo_reward.envs.push2d.expert import Push2DExpert


@pytest.mark.parametrize("obs_mode", ["state", "pixels", "dict"])
@pytest.mark.parametrize("embodiment", ["disc", "square"])
def test_env_checker(obs_mode: str, embodiment: str) -> None:
    check_env(Push2DEnv(obs_mode=obs_mode, embodiment=embodiment), skip_render_check=True)


def test_both_embodiments_are_registered_with_a_fixed_horizon() -> None:
    for env_id, embodiment in (("robo_reward/Push2D-v0", "disc"), ("robo_reward/Push2DSquare-v0", "square")):
        env = gym.make(env_id)
        assert env.unwrapped.embodiment == embodiment
        env.reset(seed=0)
        steps, done = 0, False
        while not done:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            steps += 1
            done = terminated or truncated
        assert steps == 50 and truncated and not terminated


def _episode(env_id: str, detour: float, seed: int = 0) -> dict:
    env = gym.make(env_id)
    env.reset(seed=seed)
    expert = Push2DExpert(env, detour=detour)
    done, ret = False, 0.0
    while not done:
        _, r, terminated, truncated, info = env.step(expert.act()[0])
        ret += r
        done = terminated or truncated
    info["return"] = ret
    return info


@pytest.mark.parametrize("env_id", ["robo_reward/Push2D-v0", "robo_reward/Push2DSquare-v0"])
def test_task_reward_ignores_the_zone_the_preference_does_not(env_id: str) -> None:
    straight, around = _episode(env_id, 0.0), _episode(env_id, 1.0)
    assert straight["is_success"] and around["is_success"]
    assert straight["return"] > around["return"]  # the task reward prefers the short path through the zone
    assert straight["zone_time"] > around["zone_time"] + 0.2
    assert straight["preference_return"] < around["preference_return"]
    assert straight["zone_entry"] == 1.0
    for info in (straight, around):
        assert np.isclose(info["task_return"], info["return"])
        assert np.isclose(info["preference_return"], info["task_return"] - 50 * info["zone_time"])


def test_frames_show_the_scene() -> None:
    env = Push2DEnv(obs_mode="dict", floor_jitter=0.0)
    obs, _ = env.reset(seed=0)
    px = obs["pixels"]
    assert px.shape == (64, 64, 3) and px.dtype == np.uint8
    red = (px[..., 0] > 200) & (px[..., 1] < 90)
    rows, cols = np.nonzero(red)
    centre = ((cols.mean() + 0.5) / 64, 1 - (rows.mean() + 0.5) / 64)
    assert np.allclose(centre, ZONE[0], atol=0.02)
    agent_px = (px == (40, 40, 40)).all(-1)
    assert agent_px.sum() > 10
    square = Push2DEnv(obs_mode="pixels", embodiment="square", floor_jitter=0.0)
    square.reset(seed=0)
    square.agent = env.agent.copy()
    assert (square.render_frame() == (40, 40, 40)).all(-1).sum() > agent_px.sum()
    env.reset(seed=1)
    jittered = Push2DEnv(obs_mode="pixels")
    a, _ = jittered.reset(seed=1)
    b, _ = jittered.reset(seed=2)
    assert not np.array_equal(a[0, 0], b[0, 0])


def test_in_zone_and_success_flags() -> None:
    env = Push2DEnv()
    env.reset(seed=0)
    env.agent = ZONE[0].copy()
    assert env.in_zone()
    env.agent = np.array([0.1, 0.9])
    env.blocks = GOAL[0][None].copy()
    assert not env.in_zone()
    _, _, _, _, info = env.step(np.zeros(2))
    assert info["is_success"] and not info["in_zone"]
    assert in_box(np.array([[0.5, 0.5], [0.9, 0.1]]), *ZONE).tolist() == [True, False]


@pytest.mark.parametrize("embodiment", ["disc", "square"])
@pytest.mark.parametrize("n_blocks", [1, 2])
def test_a_still_policy_never_touches_the_zone(embodiment: str, n_blocks: int) -> None:
    """Every start lies outside the zone's collision margin and out of the agent's reach, so zone time and block
    motion measure what the policy does."""
    env = Push2DEnv(embodiment=embodiment, n_blocks=n_blocks)
    reach = env.radius + BLOCK_HALF
    for seed in range(1000):
        env.reset(seed=seed)
        assert not env.in_zone(), (seed, env.agent, env.blocks)
        assert np.linalg.norm(env.blocks - env.agent, axis=1).min() > reach, (seed, env.agent, env.blocks)
        before = env.blocks.copy()
        _, _, _, _, info = env.step(np.zeros(2))
        assert info["zone_time"] == 0.0
        np.testing.assert_array_equal(env.blocks, before)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="obs_mode"):
        Push2DEnv(obs_mode="rgb")
    with pytest.raises(ValueError, match="embodiment"):
        Push2DEnv(embodiment="stick")


def test_rollouts_keep_per_step_rewards_beside_their_frames() -> None:
    from robo_reward.methods.rapl.data import collect_rollouts

    full = collect_rollouts("robo_reward/Push2D-v0", 4, seed=3)
    assert full["step_preference"].shape == full["step_task"].shape == (4, 50)
    np.testing.assert_allclose(full["step_preference"].sum(1), full["preference_return"])
    np.testing.assert_allclose(full["step_task"].sum(1), full["task_return"])
    zone_steps = np.round((full["step_task"] - full["step_preference"]).sum(1))  # zone_penalty 1 per zone step
    np.testing.assert_allclose(zone_steps / 50, full["zone_time"])
    strided = collect_rollouts("robo_reward/Push2D-v0", 4, seed=3, frame_stride=5)
    assert strided["frames"].shape[1] == strided["step_preference"].shape[1] == 10
    np.testing.assert_array_equal(strided["step_preference"], full["step_preference"][:, 4::5])
    np.testing.assert_array_equal(strided["frames"], full["frames"][:, 4::5])


def test_expert_demos_go_around_the_zone_on_both_sides() -> None:
    from robo_reward.methods.rapl.data import expert_demo, expert_demos

    demos = expert_demos("robo_reward/Push2D-v0", 3)
    assert demos.shape == (3, 50, 64, 64, 3) and demos.dtype == np.uint8
    np.testing.assert_array_equal(demos[0], expert_demo("robo_reward/Push2D-v0"))
    assert not np.array_equal(demos[0], demos[1]) and not np.array_equal(demos[0], demos[2])
    for detour, seed in ((1.0, 0), (-1.0, 0), (1.0, 2), (-1.0, 2)):
        episode = _episode("robo_reward/Push2D-v0", detour, seed)
        assert episode["is_success"] and episode["zone_time"] <= 0.02, "the demos detour around the zone"
    with pytest.raises(ValueError, match="at least 1"):
        expert_demos("robo_reward/Push2D-v0", 0)
