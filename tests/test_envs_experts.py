"""Scripted experts succeed, label phases monotonically; the privileged progress oracle and grasping are honest."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from scipy.stats import spearmanr

import robo_reward  # noqa: F401  (registers the tasks)
from robo_reward.envs import TASKS
from robo_reward.envs.demos import rollout_expert
from robo_reward.envs.experts import keyframes, make_expert

TASK_IDS = [f"robo_reward/{name}-v0" for name in TASKS]


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


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_expert_succeeds_on_100_seeded_episodes(make, env_id: str) -> None:
    env = make(env_id)
    successes = sum(rollout_expert(env, seed=seed).success for seed in range(100))
    assert successes >= 95


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_noisy_expert_is_suboptimal_but_competent(make, env_id: str) -> None:
    env = make(env_id)
    clean = [rollout_expert(env, seed=s) for s in range(20)]
    noisy = [rollout_expert(env, seed=s, noise=0.3) for s in range(20)]
    assert sum(ep.success for ep in noisy) >= 17
    assert np.mean([ep.length for ep in noisy]) > np.mean([ep.length for ep in clean])


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_phase_labels_are_monotone_and_cover_every_phase(make, env_id: str) -> None:
    env = make(env_id)
    num_phases = len(env.unwrapped.PHASES)
    for seed in range(20):
        ep = rollout_expert(env, seed=seed)
        assert ep.success
        assert np.all(np.diff(ep.phases) >= 0), f"seed {seed}: phases go back: {ep.phases.tolist()}"
        assert set(ep.phases.tolist()) == set(range(num_phases))
        ks = ep.keyframes
        assert ks[0] == 0 and ks[-1] == ep.length and np.all(np.diff(ks) > 0)


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_progress_oracle_tracks_the_expert(make, env_id: str) -> None:
    env = make(env_id)
    for seed in range(10):
        ep = rollout_expert(env, seed=seed)
        progress = ep.progress
        assert progress[0] == 0.0 and progress[-1] == 1.0
        assert np.all((progress >= 0) & (progress <= 1)) and np.all(progress[:-1] < 1.0)
        if ep.length > 5:
            assert spearmanr(np.arange(len(progress)), progress).statistic > 0.9
        agree = np.mean(ep.infos["phase"][:-1] == ep.phases[:-1])
        assert agree > 0.95, f"seed {seed}: env and expert phases agree on only {agree:.0%} of steps"


def test_progress_regresses_when_the_cube_is_dropped(make) -> None:
    env = make("robo_reward/PickPlace-v0")
    expert = make_expert(env)
    env.reset(seed=0)
    expert.reset()
    info = {}
    while expert.phase < 3:
        info = env.step(expert.act().action)[-1]
    assert info["grasped"] and info["phase"] >= 2
    before = info["progress"]
    for _ in range(10):
        info = env.step(np.array([0.0, 0.0, 0.0, 1.0], dtype=np.float32))[-1]
    assert not info["grasped"] and info["phase"] <= 1 and info["progress"] < before - 0.2


def test_keyframes_from_labels() -> None:
    assert keyframes([0, 0, 1, 1, 2], 3).tolist() == [0, 2, 4, 4]
    assert keyframes([0, 0, 2, 2], 3).tolist() == [0, 2, 2, 3]
    with pytest.raises(ValueError):
        keyframes([], 2)


# ----------------------------------------------------------------------------------------------- grasping
def _drive(env: gym.Env, target, gripper: float, steps: int) -> dict:
    base, info = env.unwrapped, {}
    for _ in range(steps):
        delta = np.clip((np.asarray(target) - base.grip_pos) / base.max_delta, -1, 1)
        info = env.step(np.append(delta, gripper).astype(np.float32))[-1]
    return info


def _try_to_lift(env: gym.Env, y_offset: float, close: bool) -> dict:
    env.reset(
        seed=0,
        options={"grip_pos": (0.0, y_offset, 0.15), "object_pos": (0.0, 0.0), "goal_pos": (0.15, 0.15)},
    )
    half = env.unwrapped.half
    _drive(env, (0.0, y_offset, half), 1.0, 15)
    _drive(env, (0.0, y_offset, half), -1.0 if close else 1.0, 8)
    return _drive(env, (0.0, y_offset, 0.15), -1.0 if close else 1.0, 15)


def test_cube_between_closed_fingers_is_lifted(make) -> None:
    info = _try_to_lift(make("robo_reward/PickPlace-v0"), y_offset=0.0, close=True)
    assert info["grasped"] and info["object_pos"][2] > 0.12


@pytest.mark.parametrize("y_offset", [0.07, -0.07])
def test_cube_beside_the_fingers_is_not_lifted(make, y_offset: float) -> None:
    info = _try_to_lift(make("robo_reward/PickPlace-v0"), y_offset=y_offset, close=True)
    assert not info["grasped"] and info["object_pos"][2] < 0.03


def test_open_fingers_do_not_lift(make) -> None:
    info = _try_to_lift(make("robo_reward/PickPlace-v0"), y_offset=0.0, close=False)
    assert not info["grasped"] and info["object_pos"][2] < 0.03


def test_grasp_is_friction_not_a_constraint(make) -> None:
    env = make("robo_reward/PickPlace-v0")
    model = env.unwrapped.model
    assert model.neq == 0, "no weld or other equality constraint may attach the cube"
    assert model.actuator_forcelimited.all()
    for name in ("finger_l", "finger_r", "object"):
        model.geom_friction[model.geom(name).id] = 0.0
    info = _try_to_lift(env, y_offset=0.0, close=True)
    assert info["object_pos"][2] < 0.03, "a frictionless grasp must not hold the cube"
