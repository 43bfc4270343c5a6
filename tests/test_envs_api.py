"""The tabletop tasks speak Gymnasium and SB3 correctly: spaces, seeding, episode ends, variants, errors."""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import robo_reward  # noqa: F401  (registers the tasks)
from robo_reward.envs import TASKS
from robo_reward.envs.experts import make_expert

TASK_IDS = [f"robo_reward/{name}-v0" for name in TASKS]
MODES = ["state", "pixels", "state+pixels"]


@pytest.fixture
def make():
    envs: list[gym.Env] = []

    def _make(env_id: str, **kwargs) -> gym.Env:
        env = gym.make(env_id, **kwargs)
        envs.append(env)
        return env

    yield _make
    for env in envs:
        env.close()


def test_registered_with_time_limits() -> None:
    limits = {env_id: gym.spec(env_id).max_episode_steps for env_id in TASK_IDS}
    assert limits == {
        "robo_reward/Reach-v0": 50,
        "robo_reward/Push-v0": 100,
        "robo_reward/PickPlace-v0": 100,
    }


@pytest.mark.filterwarnings("error::UserWarning")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("env_id", TASK_IDS)
def test_check_env(make, env_id: str, mode: str) -> None:
    env = make(env_id, obs_mode=mode, render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=False)
    sb3_check_env(env.unwrapped, warn=True)


@pytest.mark.parametrize("mode", MODES)
def test_declared_shapes_and_dtypes(make, mode: str) -> None:
    env = make(
        "robo_reward/PickPlace-v0",
        obs_mode=mode,
        cameras=("front", "side", "wrist"),
        image_size=48,
        depth=True,
    )
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        assert env.observation_space.contains(obs)
        obs, *_ = env.step(env.action_space.sample())
    if mode == "state":
        assert obs.shape == (29,) and obs.dtype == np.float32
        return
    expected = {cam: ((48, 48, 3), np.uint8) for cam in ("front", "side", "wrist")}
    expected.update({f"{cam}_depth": ((48, 48, 1), np.float32) for cam in ("front", "side", "wrist")})
    if mode == "state+pixels":
        expected["state"] = ((29,), np.float32)
    assert {k: (v.shape, v.dtype) for k, v in obs.items()} == expected
    assert obs["front"].std() > 10, "camera image is blank"
    depth = obs["front_depth"]
    assert 0.2 < float(depth.min()) < 1.5, "nearest surface seen by the front camera should be ~0.5 m away"
    assert float(depth.max()) <= env.observation_space["front_depth"].high.max()


def test_render_rgb_array(make) -> None:
    env = make("robo_reward/Reach-v0", render_mode="rgb_array", render_size=96)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (96, 96, 3) and frame.dtype == np.uint8 and frame.std() > 10


def _rollout(env: gym.Env, seed: int, steps: int = 40) -> list:
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    out = [obs]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        out.append((obs, reward, terminated, truncated, info["progress"]))
        if terminated or truncated:
            break
    return out


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(np.array_equal(a, b))


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_same_seed_same_trajectory(make, env_id: str) -> None:
    kwargs = {"obs_mode": "state+pixels", "cameras": ("front", "wrist"), "image_size": 32}
    first = _rollout(make(env_id, **kwargs), seed=3)
    again = _rollout(make(env_id, **kwargs), seed=3)
    other = _rollout(make(env_id, **kwargs), seed=4)
    assert _same(first, again)
    assert not _same(first[0], other[0])


def test_success_terminates_and_time_limit_truncates(make) -> None:
    env = make("robo_reward/Reach-v0")
    expert = make_expert(env)
    env.reset(seed=0)
    expert.reset()
    rewards = []
    while True:
        _, reward, terminated, truncated, info = env.step(expert.act().action)
        rewards.append(reward)
        if terminated or truncated:
            break
    assert terminated and not truncated and info["is_success"] and info["progress"] == 1.0
    assert rewards[-1] == 1.0 and sum(rewards) == 1.0

    env.reset(seed=0)
    still = np.zeros(4, dtype=np.float32)
    for t in range(50):
        _, reward, terminated, truncated, info = env.step(still)
        assert not terminated and reward == 0.0 and not info["is_success"]
        assert truncated == (t == 49)


def test_no_termination_when_asked_and_reward_while_successful(make) -> None:
    env = make("robo_reward/Reach-v0", terminate_on_success=False)
    env.reset(seed=0, options={"grip_pos": (0.0, 0.0, 0.15), "goal_pos": (0.0, 0.0, 0.06)})
    down = np.array([0.0, 0.0, -1.0, 1.0], dtype=np.float32)
    hold = np.array([0.0, 0.0, 0.0, 1.0], dtype=np.float32)
    outcomes = [env.step(down)[1:4] for _ in range(4)] + [env.step(hold)[1:4] for _ in range(5)]
    assert [r for r, _, _ in outcomes[-5:]] == [1.0] * 5
    assert not any(term or trunc for _, term, trunc in outcomes)


def test_object_off_the_table_terminates_without_success(make) -> None:
    env = make("robo_reward/Push-v0")
    env.reset(seed=0)
    base = env.unwrapped
    q = base._obj_qpos
    base.data.qpos[q : q + 3] = (0.6, 0.0, 0.1)
    mujoco.mj_forward(base.model, base.data)
    for _ in range(20):
        _, reward, terminated, truncated, info = env.step(np.zeros(4, dtype=np.float32))
        if terminated:
            break
    assert terminated and not truncated and reward == 0.0 and not info["is_success"]


def test_info_carries_privileged_state(make) -> None:
    env = make("robo_reward/PickPlace-v0")
    _, info = env.reset(seed=1)
    base = env.unwrapped
    assert set(info) == {
        "is_success",
        "phase",
        "progress",
        "grip_pos",
        "finger_gap",
        "goal_pos",
        "object_pos",
        "grasped",
    }
    np.testing.assert_allclose(info["grip_pos"], base.data.site("grip").xpos)
    np.testing.assert_allclose(info["object_pos"], base.data.body("object").xpos)
    assert info["phase"] == 0 and info["progress"] == 0.0 and not info["grasped"]


def test_reset_options_place_things(make) -> None:
    env = make("robo_reward/Push-v0")
    _, info = env.reset(
        seed=0, options={"grip_pos": (0.1, -0.1, 0.15), "object_pos": (0.05, 0.05), "goal_pos": (-0.1, 0.1)}
    )
    np.testing.assert_allclose(info["grip_pos"], (0.1, -0.1, 0.15), atol=2e-3)
    np.testing.assert_allclose(info["object_pos"][:2], (0.05, 0.05), atol=1e-3)
    np.testing.assert_allclose(info["goal_pos"][:2], (-0.1, 0.1))
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"object_position": (0, 0)})


def test_variants_change_the_scene(make) -> None:
    small = make(
        "robo_reward/PickPlace-v0",
        object_half_size=0.015,
        object_color="blue",
        obs_mode="pixels",
        cameras=("top",),
    )
    big = make("robo_reward/PickPlace-v0", object_half_size=0.025, obs_mode="pixels", cameras=("top",))
    assert small.unwrapped.model.geom("object").size[0] == pytest.approx(0.015)
    assert big.unwrapped.model.geom("object").size[0] == pytest.approx(0.025)
    img_small = small.reset(seed=0)[0]["top"].astype(int)
    img_big = big.reset(seed=0)[0]["top"].astype(int)
    blue = (img_small[..., 2] > 150) & (img_small[..., 0] < 80)
    red = (img_big[..., 0] > 150) & (img_big[..., 1] < 80)
    assert 0 < blue.sum() < red.sum()


def test_distractors_are_visible_and_do_not_collide(make) -> None:
    plain = make("robo_reward/Push-v0", obs_mode="pixels", cameras=("top",))
    busy = make("robo_reward/Push-v0", obs_mode="pixels", cameras=("top",), num_distractors=3)
    a, b = plain.reset(seed=0)[0]["top"], busy.reset(seed=0)[0]["top"]
    assert (np.abs(a.astype(int) - b.astype(int)).sum(-1) > 60).sum() > 20
    model = busy.unwrapped.model
    for i in range(3):
        geom = model.geom(f"distractor{i}")
        assert geom.contype[0] == 0 and geom.conaffinity[0] == 0


def test_goal_ranges_are_respected(make) -> None:
    env = make("robo_reward/Push-v0", goal_low=(0.0, 0.05), goal_high=(0.1, 0.15))
    goals = np.array([env.reset(seed=s)[1]["goal_pos"][:2] for s in range(20)])
    assert np.all(goals >= (0.0, 0.05)) and np.all(goals <= (0.1, 0.15))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"obs_mode": "rgb"}, "obs_mode"),
        ({"cameras": ("front", "back")}, "cameras"),
        ({"object_half_size": 0.05}, "object_half_size"),
        ({"object_color": "mauve"}, "unknown colour"),
        ({"goal_low": (-0.3, 0.0), "goal_high": (0.0, 0.1)}, "reachable"),
    ],
)
def test_bad_kwargs_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        gym.make("robo_reward/Push-v0", **kwargs)


def test_bad_action_is_refused(make) -> None:
    env = make("robo_reward/Reach-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="4 finite numbers"):
        env.unwrapped.step(np.zeros(3))
    with pytest.raises(ValueError, match="4 finite numbers"):
        env.unwrapped.step(np.array([0.0, np.nan, 0.0, 0.0]))


def test_close_is_idempotent_and_frees_renderers(make) -> None:
    env = make("robo_reward/Reach-v0", obs_mode="pixels", render_mode="rgb_array")
    env.reset(seed=0)
    env.render()
    base = env.unwrapped
    assert base._obs_renderer is not None and base._view_renderer is not None
    env.close()
    env.close()
    assert base._obs_renderer is None and base._view_renderer is None
