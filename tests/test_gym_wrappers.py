"""The Gymnasium single-env and vector adapters."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from robo_reward.potentials import Potential
from robo_reward.protocol import FunctionReward, RewardError
from robo_reward.shaping import PotentialShaping
from robo_reward.testing import CallCounter, ChainEnv
from robo_reward.wrappers import RewardVectorWrapper, RewardWrapper

gym.register("robo_reward_test/Chain-v0", entry_point="robo_reward.testing:ChainEnv")


class PositionPotential(Potential):
    def value(self, obs: np.ndarray) -> np.ndarray:
        return 10.0 * obs[:, 0] + 1.0


def shaping(gamma: float = 0.9) -> PotentialShaping:
    s = PotentialShaping(PositionPotential())
    s.set_discount(gamma)
    return s


def test_single_env_wrapper_pays_terms_and_reports_them() -> None:
    env = RewardWrapper(ChainEnv(), shaping(0.9), extrinsic_weight=2.0)
    env.reset(seed=0)
    info: dict = {}
    for _ in range(5):
        _, r, terminated, truncated, info = env.step(1)
        assert r == pytest.approx(2.0 * info["reward/extrinsic"] + info["reward/shaping"])
        assert info["original_env_rew"] == info["reward/extrinsic"]
        assert "reward/shaping/phi" in info
        if terminated or truncated:
            break
    assert terminated and not truncated
    assert info["reward/shaping"] == pytest.approx(0.0 - (10 * 4 / 5 + 1.0))


def test_single_env_wrapper_spec_rebuilds_stack() -> None:
    base = gym.make("robo_reward_test/Chain-v0", max_steps=6)
    env = RewardWrapper(base, {"name": "potential_shaping", "potential": {"name": "goal_distance", "delta": [0]},
                               "gamma": 0.9}, extrinsic_weight=0.5)
    spec = env.spec
    assert spec is not None and spec.additional_wrappers[-1].entry_point.endswith("RewardWrapper")
    env.set_discount = None
    rebuilt = gym.make(spec)
    assert isinstance(rebuilt, RewardWrapper)
    for e in (env, rebuilt):
        e.reset(seed=3)
    for _ in range(6):
        a = env.step(1)
        b = rebuilt.step(1)
        assert a[1] == b[1] and a[4]["reward/shaping"] == b[4]["reward/shaping"]
        if a[2] or a[3]:
            break


def test_wrapping_twice_is_refused() -> None:
    env = RewardWrapper(ChainEnv(continuous=True), FunctionReward(lambda b: np.zeros(b.num)))
    with pytest.raises(ValueError, match="already wrapped"):
        RewardWrapper(gym.wrappers.ClipAction(env), FunctionReward(lambda b: np.zeros(b.num)))


def test_nan_reward_names_the_term() -> None:
    env = RewardWrapper(ChainEnv(), FunctionReward(lambda b: np.full(b.num, np.nan), label="broken_term"))
    env.reset(seed=0)
    with pytest.raises(RewardError, match="broken_term"):
        env.step(1)


def test_check_env_passes_on_wrapped_envs() -> None:
    reward = {"name": "potential_shaping", "potential": {"name": "goal_distance", "delta": [0]}, "gamma": 0.99}
    for make in (lambda: RewardWrapper(ChainEnv(), reward), lambda: RewardWrapper(gym.make("Pendulum-v1"),
                 {"name": "goal_distance", "delta": [2]})):
        env = make()
        with pytest.warns(UserWarning, match="different from the unwrapped"):
            check_env(env, skip_render_check=True)
        sb3_check_env(make(), warn=False)


def vector_chain(mode: AutoresetMode, n: int = 2) -> SyncVectorEnv:
    return SyncVectorEnv([lambda: ChainEnv(length=2, max_steps=5)] * n, autoreset_mode=mode)


def test_vector_next_step_reset_step_pays_zero_and_is_not_a_transition() -> None:
    counter = CallCounter(shaping(0.5))
    venv = RewardVectorWrapper(vector_chain(AutoresetMode.NEXT_STEP), counter, extrinsic_weight=1.0)
    venv.reset(seed=0)
    # env 0 walks right and terminates after 2 steps; env 1 walks left and never ends in this test
    rows, rewards, infos_seen = 0, [], []
    for _ in range(4):
        _obs, r, _term, _trunc, infos = venv.step(np.array([1, 0]))
        rewards.append(r)
        infos_seen.append(infos)
    rows = counter.rows
    # steps: 1 (both), 2 (both; env0 terminates), 3 (env0 is a reset step), 4 (both)
    assert rows == 2 + 2 + 1 + 2
    assert rewards[2][0] == 0.0 and not infos_seen[2]["_reward/shaping"][0]
    # after the reset step, shaping for env 0 starts from the reset observation: Phi(s0)=1, Phi(s1)=6
    assert rewards[3][0] == pytest.approx(0.5 * 6.0 - 1.0)
    # the terminating step used Phi(s')=0 and paid the extrinsic 1
    assert rewards[1][0] == pytest.approx(1.0 + 0.0 - 6.0)


def test_vector_same_step_uses_final_obs() -> None:
    venv = RewardVectorWrapper(vector_chain(AutoresetMode.SAME_STEP, n=1), shaping(0.5), extrinsic_weight=0.0)
    venv.reset(seed=0)
    for _ in range(4):  # walk right then left: never terminates, truncates at step 5
        venv.step(np.array([1]))
        venv.step(np.array([0]))
        if _ == 1:
            break
    obs, r, term, trunc, infos = venv.step(np.array([1]))
    assert trunc[0] and not term[0]
    final_phi = 10 * infos["final_obs"][0][0] + 1.0
    reset_phi = 10 * obs[0][0] + 1.0
    assert final_phi != reset_phi
    prev_phi = 10 * 0.0 + 1.0
    assert r[0] == pytest.approx(0.5 * final_phi - prev_phi)
    # the next step starts from the reset observation
    _, r2, *_ = venv.step(np.array([1]))
    assert r2[0] == pytest.approx(0.5 * 6.0 - reset_phi)


def test_vector_wrapper_runs_online_updates_on_schedule() -> None:
    class Learner(FunctionReward):
        update_every = 3

        def __init__(self) -> None:
            super().__init__(lambda b: np.zeros(b.num), label="learner")
            self.batches: list[int] = []

        def update(self, batch):
            self.batches.append(batch.num)
            return {"loss": 0.0}

    learner = Learner()
    venv = RewardVectorWrapper(vector_chain(AutoresetMode.NEXT_STEP, n=2), learner)
    venv.reset(seed=0)
    for _ in range(9):
        venv.step(np.array([0, 0]))
    # both envs truncate at step 5, so step 6 is a NEXT_STEP reset step that no update sees
    assert learner.batches == [6, 4, 6]
