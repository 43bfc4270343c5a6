"""The granular sweep task (DeformPAM's granular 'T'), its annotator and its preference oracle."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import robo_reward  # noqa: F401
from robo_reward.envs.granular.annotator import GreedyAnnotator, PreferenceOracle, score_gains
from robo_reward.envs.granular.sweep import GRID, chamfer, decode_action, initial_pile, iou, sweep, t_target


def test_sweep_conserves_particles_and_moves_only_the_swept_ones() -> None:
    rng = np.random.default_rng(0)
    pts = rng.random((500, 2))
    action = np.array([-0.8, 0.0, 0.4, 0.0, 0.0])
    after = sweep(pts, action, rng)
    assert after.shape == pts.shape and np.all((after >= 0) & (after <= 1))
    start, end, width = decode_action(action)
    inside = (pts[:, 0] >= start[0]) & (pts[:, 0] <= end[0]) & (np.abs(pts[:, 1] - start[1]) <= width / 2)
    np.testing.assert_array_equal(after[~inside], pts[~inside])
    assert np.all(after[inside, 0] >= end[0] - 1e-9)
    np.testing.assert_allclose(after[inside, 1], pts[inside, 1])
    batch = sweep(np.stack([pts, pts]), np.stack([action, -action]), np.random.default_rng(1))
    assert batch.shape == (2, 500, 2)


def test_iou_bounds_and_perfect_target() -> None:
    target = t_target(GRID)
    cells = np.argwhere(target)
    perfect = (cells[:, ::-1] + 0.5) / GRID
    assert iou(perfect, target) == pytest.approx(1.0)
    assert chamfer(perfect, target) == pytest.approx(0.0)
    rng = np.random.default_rng(0)
    values = iou(np.stack([initial_pile(300, rng) for _ in range(20)]), target)
    assert np.all((values >= 0) & (values <= 1)) and values.max() < 1
    off = perfect + np.array([0.3, 0.0])
    assert iou(np.clip(off, 0, 1), target) < 0.5 and chamfer(np.clip(off, 0, 1), target) > 0.05


def test_env_is_deterministic_under_a_seed_and_reports_episode_metrics() -> None:
    def rollout(seed: int) -> tuple[np.ndarray, list[dict]]:
        env = gym.make("robo_reward/GranularSweep-v0", horizon=8)
        env.action_space.seed(seed)
        obs, _ = env.reset(seed=seed)
        infos, truncated, steps = [], False, 0
        while not truncated:
            obs, _, terminated, truncated, info = env.step(env.action_space.sample())
            assert not terminated
            infos.append(info)
            steps += 1
        assert steps == 8 and obs.shape == (300, 2)
        return obs, infos

    a, infos_a = rollout(3)
    b, infos_b = rollout(3)
    np.testing.assert_array_equal(a, b)
    assert [i["iou"] for i in infos_a] == [i["iou"] for i in infos_b]
    last = infos_a[-1]
    assert {"final_iou", "initial_iou", "steps_to_threshold", "chamfer", "progress"} <= set(last)
    assert last["steps_to_threshold"] in [float(s) for s in range(0, 10)]
    assert not np.array_equal(rollout(4)[0], a)


def test_return_is_the_iou_gain() -> None:
    env = gym.make("robo_reward/GranularSweep-v0", horizon=5)
    _, info = env.reset(seed=0)
    total = 0.0
    for _ in range(5):
        _, r, _, truncated, info = env.step(env.action_space.sample())
        total += r
    assert truncated and total == pytest.approx(info["final_iou"] - info["initial_iou"])


def test_greedy_annotator_does_not_decrease_iou_and_beats_random() -> None:
    rng = np.random.default_rng(0)
    annotator = GreedyAnnotator(n_proposals=128, seed=0)
    target = t_target()
    gains, random_gains = [], []
    for i in range(12):
        pts = initial_pile(300, rng)
        gains.append(score_gains(pts, annotator(pts)[None], seed=i)[0])
        random_gains.append(score_gains(pts, rng.uniform(-1, 1, (1, 5)), seed=i)[0])
    assert np.mean(gains) > 0.02 and np.mean(gains) > np.mean(random_gains) + 0.02
    assert min(gains) > -0.02
    assert iou(pts, target) < 1


def test_oracle_labels_by_gain() -> None:
    rng = np.random.default_rng(1)
    pts = initial_pile(300, rng)
    good = GreedyAnnotator(n_proposals=128, seed=0)(pts)
    noop = np.array([0.0, 0.0, 0.0, 0.0, -1.0])
    label, g_good, g_noop = PreferenceOracle(eps=0.01)(pts, good, noop)
    assert label == "win" and g_good > g_noop == 0.0
    assert PreferenceOracle(eps=0.01)(pts, noop, good)[0] == "lose"
    assert PreferenceOracle(eps=0.01)(pts, noop, noop)[0] == "equal"


def test_env_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="threshold"):
        gym.make("robo_reward/GranularSweep-v0", threshold=1.5)
    env = gym.make("robo_reward/GranularSweep-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="non-finite"):
        env.step(np.array([np.nan, 0, 0, 0, 0]))
