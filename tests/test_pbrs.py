"""Potential-based shaping: invariance on random MDPs, the gamma-mismatch trap, and the terminal rule."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

from robo_reward.potentials import Potential
from robo_reward.protocol import TransitionBatch
from robo_reward.sb3 import RewardVecEnvWrapper
from robo_reward.shaping import PotentialShaping
from robo_reward.testing import ChainEnv, random_mdp, value_iteration


class TablePotential(Potential):
    """Phi from a table over one-hot states."""

    def __init__(self, table: np.ndarray) -> None:
        self.table = np.asarray(table, dtype=np.float64)

    def value(self, obs: np.ndarray) -> np.ndarray:
        return self.table[np.argmax(obs, axis=1)]


def shaped_rewards(p: np.ndarray, r: np.ndarray, phi: np.ndarray, gamma: float,
                   terminal: np.ndarray) -> np.ndarray:
    """R + F for every (s, a, s') of a tabular MDP, computed by the package's PotentialShaping."""
    n_s, n_a = p.shape[:2]
    s, a, s2 = (x.ravel() for x in np.meshgrid(np.arange(n_s), np.arange(n_a), np.arange(n_s), indexing="ij"))
    eye = np.eye(n_s)
    batch = TransitionBatch(obs=eye[s], action=a[:, None], next_obs=eye[s2], reward=r.ravel(),
                            terminated=terminal[s2], truncated=np.zeros_like(s2, dtype=bool))
    shaping = PotentialShaping(TablePotential(phi), gamma=gamma)
    return r + shaping.relabel(batch).reshape(n_s, n_a, n_s)


@pytest.mark.parametrize("seed", range(25))
def test_pbrs_keeps_optimal_policy_and_shifts_q_by_phi(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_s, n_a, gamma = 10, 3, 0.9
    p, r = random_mdp(n_s, n_a, rng, terminal=n_s - 1)
    terminal = np.zeros(n_s, dtype=bool)
    terminal[-1] = True
    phi = rng.normal(scale=3.0, size=n_s)
    q = value_iteration(p, r, gamma, terminal=terminal)
    q_shaped = value_iteration(p, shaped_rewards(p, r, phi, gamma, terminal), gamma, terminal=terminal)
    live = ~terminal
    np.testing.assert_allclose(q_shaped[live], q[live] - phi[live, None], atol=1e-8)
    np.testing.assert_array_equal(q_shaped[live].argmax(1), q[live].argmax(1))


def parking_mdp() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """start -> near-goal P (can park forever) -> goal G (terminal, reward 0.5); Phi(P) is high."""
    go, park = 0, 1
    p = np.zeros((3, 2, 3))
    p[0, go, 1] = p[0, park, 0] = 1.0
    p[1, go, 2] = p[1, park, 1] = 1.0
    p[2, :, 2] = 1.0
    r = np.zeros((3, 2, 3))
    r[1, go, 2] = 0.5
    phi = np.array([0.0, 0.9, 1.0])
    terminal = np.array([False, False, True])
    return p, r, phi, terminal


def test_naive_difference_parks_but_learner_gamma_does_not() -> None:
    p, r, phi, terminal = parking_mdp()
    gamma = 0.99
    go, park = 0, 1
    assert value_iteration(p, r, gamma, terminal=terminal)[1].argmax() == go
    q_pbrs = value_iteration(p, shaped_rewards(p, r, phi, gamma, terminal), gamma, terminal=terminal)
    q_naive = value_iteration(p, shaped_rewards(p, r, phi, 1.0, terminal), gamma, terminal=terminal)
    assert q_pbrs[1].argmax() == go
    assert q_naive[1].argmax() == park


def test_gamma_mismatch_raises() -> None:
    shaping = PotentialShaping({"name": "goal_distance", "delta": [0]}, gamma=1.0)
    with pytest.raises(ValueError, match=r"gamma=1.0 but the learner uses gamma=0.99"):
        shaping.set_discount(0.99)
    PotentialShaping({"name": "goal_distance", "delta": [0]}).set_discount(0.99)


class PositionPotential(Potential):
    def value(self, obs: np.ndarray) -> np.ndarray:
        return 10.0 * obs[:, 0] + 1.0


def run_episode(actions: list[int], gamma: float) -> tuple[np.ndarray, list[dict], np.ndarray, np.ndarray]:
    """One episode of ChainEnv through the SB3 adapter: shaping per step, infos, the final and reset obs."""
    venv = RewardVecEnvWrapper(DummyVecEnv([lambda: ChainEnv(length=3, max_steps=4)]),
                               PotentialShaping(PositionPotential()), extrinsic_weight=0.0)
    venv.reward.set_discount(gamma)
    venv.reset()
    shaping, infos = [], []
    for a in actions:
        obs, rew, done, info = venv.step(np.array([a]))
        shaping.append(rew[0])
        infos.append(info[0])
        if done[0]:
            return np.array(shaping), infos, info[0]["terminal_observation"], obs
    raise AssertionError("episode did not end")


def test_terminated_episode_shaping_sums_to_minus_phi0() -> None:
    gamma = 0.9
    shaping, infos, _final, _ = run_episode([1, 1, 1], gamma)
    assert not infos[-1]["TimeLimit.truncated"]
    discounted = np.sum(gamma ** np.arange(len(shaping)) * shaping)
    phi0 = PositionPotential().value(np.zeros((1, 2)))[0]
    assert discounted == pytest.approx(-phi0, abs=1e-6)


def test_truncated_episode_keeps_final_potential_and_done_rule_is_wrong() -> None:
    gamma = 0.9
    shaping, infos, final, reset_obs = run_episode([1, 1, 0, 1], gamma)
    assert infos[-1]["TimeLimit.truncated"]
    T = len(shaping)
    pot = PositionPotential()
    phi0, phi_T = pot.value(np.zeros((1, 2)))[0], pot.value(final[None])[0]
    assert phi_T != pot.value(reset_obs)[0], "the test needs distinct Phi on final and reset observations"
    discounted = np.sum(gamma ** np.arange(T) * shaping)
    assert discounted == pytest.approx(gamma**T * phi_T - phi0, abs=1e-5)
    # the single-done rule zeroes Phi(s_T) on truncation too, so its sum misses gamma^T Phi(s_T)
    done_rule = shaping.copy()
    done_rule[-1] -= gamma * phi_T
    assert np.sum(gamma ** np.arange(T) * done_rule) == pytest.approx(-phi0, abs=1e-5)
    assert abs(np.sum(gamma ** np.arange(T) * done_rule) - discounted) == pytest.approx(gamma**T * phi_T, abs=1e-5)
