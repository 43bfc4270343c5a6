"""The SB3 adapter's per-step path pays exactly what the reward computes on independently built batches.

The adapter builds its per-step batches without re-checking row counts after the first step and keeps the
terminated/truncated flags as shared read-only arrays when no env is done. These tests rebuild every transition from what the VecEnv returned (s' from
``terminal_observation``, the flags from ``TimeLimit.truncated``) and compare with the reward's slow path
(torch forward on fresh arrays, and a hand-computed shaping term), over steps with and without episode ends.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import DummyVecEnv

from robo_reward.models import MLPReward
from robo_reward.potentials import Potential
from robo_reward.protocol import TransitionBatch
from robo_reward.sb3 import RewardVecEnvWrapper
from robo_reward.shaping import PotentialShaping, WeightedSum
from robo_reward.testing import ChainEnv

GAMMA = 0.9


class PositionPotential(Potential):
    def value(self, obs: np.ndarray) -> np.ndarray:
        return 10.0 * obs[:, 0] + obs[:, 1]


def phi(obs: np.ndarray) -> np.ndarray:
    return 10.0 * obs[:, 0].astype(np.float64) + obs[:, 1]


@pytest.mark.parametrize("n_envs", [1, 3])
def test_step_path_matches_the_slow_path_over_terminations_and_truncations(n_envs: int) -> None:
    mlp = MLPReward(hidden=(16, 16), seed=3)
    shaping = PotentialShaping(PositionPotential())
    shaping.set_discount(GAMMA)
    venv = RewardVecEnvWrapper(DummyVecEnv([lambda: ChainEnv(length=2, max_steps=4, continuous=True)] * n_envs),
                               WeightedSum([mlp, shaping], weights=[1.0, 0.5]), extrinsic_weight=2.0)
    obs = venv.reset()
    phi_s = phi(obs)
    rng = np.random.default_rng(0)
    kept: list[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]] = []
    seen = {"terminated": 0, "truncated": 0, "quiet": 0}
    for _ in range(40):
        actions = rng.uniform(-1, 1, (n_envs, 1)).astype(np.float32)
        next_obs, rewards, dones, infos = venv.step(actions)
        truncated = np.array([info["TimeLimit.truncated"] for info in infos])
        terminated = dones & ~truncated
        successor = next_obs.copy()
        for i in np.flatnonzero(dones):
            successor[i] = infos[i]["terminal_observation"]
        seen["terminated"] += int(terminated.sum())
        seen["truncated"] += int(truncated.sum())
        seen["quiet"] += int(not dones.any())
        extrinsic = np.array([float(info["is_success"]) for info in infos])
        batch = TransitionBatch(obs.copy(), actions.copy(), successor, extrinsic, terminated, truncated)
        with torch.no_grad():
            expected_mlp = mlp.forward(batch).double().numpy()
        expected_shaping = GAMMA * np.where(terminated, 0.0, phi(successor)) - phi_s
        expected = 2.0 * extrinsic + expected_mlp + 0.5 * expected_shaping
        np.testing.assert_allclose(rewards, expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose([info["reward/mlp"] for info in infos], expected_mlp, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose([info["reward/shaping"] for info in infos], 0.5 * expected_shaping, atol=1e-9)
        assert [info["original_env_rew"] for info in infos] == extrinsic.tolist()
        kept.append((rewards, expected, venv.last_terms))
        phi_s = np.where(dones, phi(next_obs), phi(successor))
        obs = next_obs
    assert min(seen.values()) > 0, seen
    for rewards, expected, terms in kept:  # later steps never overwrite what earlier steps returned
        np.testing.assert_allclose(rewards, expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(terms["extrinsic"] * 2.0 + terms["mlp"] + terms["shaping"], expected,
                                   rtol=1e-5, atol=1e-5)


def test_first_step_still_checks_what_the_vecenv_returned() -> None:
    venv = RewardVecEnvWrapper(DummyVecEnv([lambda: ChainEnv(continuous=True)] * 2), MLPReward(hidden=(4,)))
    venv.reset()
    venv._obs = venv._obs[:1]  # a broken stack: the reward would see one row of s and two of s'
    with pytest.raises(ValueError, match="one row per transition"):
        venv.step(np.zeros((2, 1), dtype=np.float32))


def test_trusted_batch_equals_a_checked_one() -> None:
    rng = np.random.default_rng(1)
    fields = (rng.normal(size=(3, 2)), rng.normal(size=(3, 1)), rng.normal(size=(3, 2)), rng.normal(size=3),
              np.array([True, False, False]), np.array([False, True, False]), ({}, {}, {}))
    checked, trusted = TransitionBatch(*fields), TransitionBatch.trusted(*fields)
    for name in ("obs", "action", "next_obs", "reward", "terminated", "truncated", "env_ids"):
        np.testing.assert_array_equal(getattr(trusted, name), getattr(checked, name))
    assert trusted.extras == {} and trusted.infos == checked.infos and trusted.done.tolist() == [True, True, False]
    np.testing.assert_array_equal(trusted.select(np.array([2, 0])).env_ids, [2, 0])
