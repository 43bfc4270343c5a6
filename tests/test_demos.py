"""Demonstration I/O: Minari and npz round trips, clear errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from robo_reward.datasets import (
    dataset_reference_scores,
    episodes_to_transitions,
    load_episodes,
    load_transitions,
    save_minari,
    save_npz,
)


def episodes(n: int = 3) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        t = 4 + i
        out.append(dict(
            observations=rng.normal(size=(t + 1, 3)).astype(np.float32),
            actions=rng.uniform(-2, 2, (t, 1)).astype(np.float32), rewards=rng.normal(size=t),
            terminations=np.arange(t) == t - 1 if i == 0 else np.zeros(t, bool),
            truncations=np.zeros(t, bool) if i == 0 else np.arange(t) == t - 1,
        ))
    return out


def assert_same(a, b):
    for k in ("observations", "actions", "rewards", "terminations", "truncations"):
        np.testing.assert_allclose(np.asarray(a[k], dtype=np.float64), np.asarray(b[k], dtype=np.float64), rtol=1e-6)


def test_npz_round_trip(tmp_path):
    path = tmp_path / "demos.npz"
    save_npz(path, episodes(), ref_min_score=-5.0, ref_max_score=7.0)
    for a, b in zip(load_episodes(path), episodes(), strict=True):
        assert_same(a, b)
    assert dataset_reference_scores(path) == (-5.0, 7.0)
    assert load_transitions(path, max_episodes=2).num == 4 + 5


def test_minari_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    save_minari("test/pendulum/expert-v0", episodes(), env=gym.make("Pendulum-v1"), ref_min_score=-1200.0,
                ref_max_score=-150.0)
    for source in ("test/pendulum/expert-v0", tmp_path / "test/pendulum/expert-v0"):
        for a, b in zip(load_episodes(source), episodes(), strict=True):
            assert_same(a, b)
    assert dataset_reference_scores("test/pendulum/expert-v0") == (-1200.0, -150.0)


def test_transitions_keep_terminated_and_truncated_apart():
    batch, ids = episodes_to_transitions(episodes())
    assert batch.terminated.sum() == 1 and batch.truncated.sum() == 2
    np.testing.assert_array_equal(batch.next_obs[:4], episodes()[0]["observations"][1:])
    assert ids.tolist() == [0] * 4 + [1] * 5 + [2] * 6


def test_missing_source_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="robo-reward gail expert"):
        load_episodes("nope/none-v0")
    with pytest.raises(ValueError, match="one row more"):
        episodes_to_transitions([dict(observations=np.zeros((3, 2)), actions=np.zeros((3, 1)), rewards=np.zeros(3),
                                      terminations=np.zeros(3), truncations=np.zeros(3))])
