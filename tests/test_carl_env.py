"""The driving task, CaRL on it through the SB3 adapter, the Beta policy and the CaRL configs."""

from __future__ import annotations

import glob
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

import robo_reward  # noqa: F401  (registers the envs)
from robo_reward.agents.beta_policy import BetaDistribution, BetaPolicy
from robo_reward.agents_registry import resolve_policy
from robo_reward.config import load_config
from robo_reward.envs.driving.route import DrivingRouteEnv, boxes_overlap
from robo_reward.methods.carl import CarlReward
from robo_reward.sb3 import RewardVecEnvWrapper

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "carl"


def lane_keeper(env: DrivingRouteEnv, target_speed: float) -> np.ndarray:
    """A proportional controller that holds route lane 0 at ``target_speed``."""
    steer = -0.8 * env.d - 2.0 * env.psi
    accel = 0.5 * (target_speed - env.v)
    return np.clip([steer, accel], -1.0, 1.0)


def test_clean_drive_finishes_as_truncation_and_carl_pays_100() -> None:
    env = DrivingRouteEnv(n_same=0, n_oncoming=0)
    env.reset(seed=3)
    reward = CarlReward()
    reward.bind(env.observation_space, env.action_space, 1)
    reward.reset(np.zeros((1, 25)), np.ones(1, bool))
    from robo_reward.protocol import TransitionBatch

    total, terminated, truncated, info = 0.0, False, False, {}
    while not (terminated or truncated):
        a = lane_keeper(env, 0.9 * env.limit)
        _, _, terminated, truncated, info = env.step(a)
        b = TransitionBatch(np.zeros((1, 25)), a[None], np.zeros((1, 25)), np.zeros(1), np.array([terminated]),
                            np.array([truncated]), infos=[info])
        total += float(reward(b)[0])
    assert truncated and not terminated
    assert info["route_completion"] == 100.0 and info["is_success"] and info["driving_score"] == 1.0
    assert 90.0 < total <= 100.0 + 1e-9  # a gentle start can trip a comfort metric, nothing more


def test_rear_ending_a_slow_car_terminates_as_collision() -> None:
    env = DrivingRouteEnv(n_same=1, n_oncoming=0)
    env.reset(seed=0)
    env.same_s[1], env.same_lane[1], env.same_v0[1], env.same_v[1] = 30.0, 0, 0.5, 0.5
    env._update_actors()
    for _ in range(300):
        _, r, terminated, truncated, info = env.step(np.array([-0.8 * env.d - 2.0 * env.psi, 1.0]))
        if terminated or truncated:
            break
    assert terminated and not truncated and info["collision"] and info["collided"] == 1.0
    assert info["driving_score"] == pytest.approx(0.6 * info["route_completion"] / 100) and r < -9


def test_leaving_the_road_and_the_route_lanes() -> None:
    env = DrivingRouteEnv(n_same=0, n_oncoming=0)
    env.reset(seed=0)
    seen_outside = False
    for _ in range(300):
        _, _, terminated, _, info = env.step(np.array([0.6, 0.5]))  # steer left across the opposite lane
        seen_outside |= info["outside_route_lanes"] and not info["off_road"]
        if terminated:
            break
    assert terminated and seen_outside and (info["off_road"] or info["wrong_way"]) and info["left_road"] == 1.0


def test_boxes_overlap_matches_geometry() -> None:
    assert boxes_overlap(0.0, 0.0, 0.0, 4.4, 0.0) and not boxes_overlap(0.0, 0.0, 0.0, 4.6, 0.0)
    assert boxes_overlap(0.0, 0.0, 0.0, 0.0, 1.9) and not boxes_overlap(0.0, 0.0, 0.0, 0.0, 2.1)
    assert boxes_overlap(0.0, 0.0, np.pi / 2, 0.0, 3.2)  # rotated: the ego now reaches 2.25 m sideways
    assert not boxes_overlap(0.0, 0.0, np.pi / 2, 3.4, 0.0)


def test_ttc_flags_a_closing_car_before_the_crash() -> None:
    env = DrivingRouteEnv(n_same=1, n_oncoming=0)
    env.reset(seed=0)
    env.v = 10.0
    env.same_s[1], env.same_lane[1], env.same_v0[1], env.same_v[1] = 14.0, 0, 0.5, 0.5
    env._update_actors()
    assert env._ttc_violation() and not any(boxes_overlap(env.s, env.d, env.psi, s, d) for s, d, _, _ in env.actors)
    env.same_s[1] = 40.0
    env._update_actors()
    assert not env._ttc_violation()


def test_carl_factors_stay_in_unit_interval_on_random_driving() -> None:
    venv = RewardVecEnvWrapper(DummyVecEnv([lambda: gym.make("robo_reward/DrivingRoute-v0")] * 4),
                               {"name": "carl"}, extrinsic_weight=0.0)
    venv.seed(0)
    venv.reset()
    rng = np.random.default_rng(0)
    factors = ("route_lanes", "speed", "ttc", "comfort", "lane_centre")
    seen = {k: [] for k in factors}
    ends = 0
    for _ in range(400):
        _, _, dones, infos = venv.step(rng.uniform(-0.3, 1.0, (4, 2)))
        ends += int(dones.sum())
        for info in infos:
            for k in factors:
                seen[k].append(info[f"reward/carl/{k}"])
            assert info["reward/carl/progress"] >= 0.0
    for k, v in seen.items():
        assert min(v) >= 0.0 and max(v) <= 1.0, k
    assert ends > 0 and min(seen["comfort"]) < 1.0


def test_env_is_deterministic_under_a_seed() -> None:
    def rollout() -> np.ndarray:
        env = gym.make("robo_reward/DrivingRoute-v0")
        obs, _ = env.reset(seed=5)
        out = [obs]
        for t in range(50):
            out.append(env.step(np.array([0.1 * np.sin(t), 0.5]))[0])
        return np.stack(out)

    assert np.array_equal(rollout(), rollout())


def test_beta_distribution_density_and_bounds() -> None:
    dist = BetaDistribution(2).proba_distribution(torch.tensor([[0.3, -1.0, 2.0, 0.5]]))
    a = dist.sample()
    assert a.shape == (1, 2) and bool(((a >= -1) & (a <= 1)).all())
    grid = torch.linspace(-0.999, 0.999, 4001)
    ref = torch.distributions.Beta(torch.tensor(1 + np.log1p(np.exp(0.3)), dtype=torch.float32),
                                     torch.tensor(1 + np.log1p(np.exp(2.0)), dtype=torch.float32))
    dens = torch.exp(ref.log_prob((grid + 1) / 2)) / 2  # density of 2x - 1
    pts = torch.stack([grid, torch.zeros_like(grid)], 1)
    joint = torch.exp(dist.log_prob(pts))
    other = torch.exp(torch.distributions.Beta(torch.tensor(1 + np.log1p(np.exp(-1.0)), dtype=torch.float32),
                                               torch.tensor(1 + np.log1p(np.exp(0.5)), dtype=torch.float32))
                      .log_prob(torch.tensor(0.5))) / 2
    assert torch.allclose(joint, dens * other, rtol=1e-4)
    assert float(torch.trapezoid(dens, grid)) == pytest.approx(1.0, abs=2e-3)
    peak = grid[torch.argmax(dens)]
    assert float(dist.mode()[0, 0]) == pytest.approx(float(peak), abs=2e-3)


def test_beta_policy_trains_saves_and_loads(tmp_path: Path) -> None:
    assert resolve_policy("robo_reward.agents.beta_policy:BetaPolicy") is BetaPolicy
    assert resolve_policy("MlpPolicy") == "MlpPolicy"
    with pytest.raises(ValueError, match="importable"):
        resolve_policy("robo_reward.agents.beta_policy:Nope")
    model = PPO(BetaPolicy, gym.make("robo_reward/DrivingRoute-v0"), n_steps=64, batch_size=32, n_epochs=1, seed=0)
    model.learn(128)
    obs = np.zeros((3, 25), np.float32)
    actions, _ = model.predict(obs, deterministic=True)
    assert actions.shape == (3, 2) and np.abs(actions).max() <= 1.0
    model.save(tmp_path / "beta")
    loaded = PPO.load(tmp_path / "beta")
    assert np.allclose(loaded.predict(obs, deterministic=True)[0], actions)
    with pytest.raises(TypeError, match="Box"):
        PPO(BetaPolicy, "CartPole-v1")


def test_configs_pair_minibatch_sizes_over_the_same_rollout() -> None:
    cfgs = {Path(p).stem: load_config(p) for p in sorted(glob.glob(str(CONFIGS / "*.yaml")))}
    assert {"carl_mb64", "carl_mb2048", "additive_mb64", "additive_mb2048"} <= set(cfgs)
    rollout = {n: c.agent.kwargs["n_steps"] * c.env.n_envs for n, c in cfgs.items()}
    assert len(set(rollout.values())) == 1
    for reward in ("carl", "additive"):
        small, large = cfgs[f"{reward}_mb64"].agent.kwargs, cfgs[f"{reward}_mb2048"].agent.kwargs
        assert (small["batch_size"], large["batch_size"]) == (64, 2048)
        assert {k: v for k, v in small.items() if k != "batch_size"} == {k: v for k, v in large.items()
                                                                         if k != "batch_size"}
    assert not cfgs["additive_mb64"].reward.terms and cfgs["additive_mb64"].reward.extrinsic_weight == 1.0
    assert cfgs["carl_mb64"].reward.terms == [{"name": "carl"}] and cfgs["carl_mb64"].reward.extrinsic_weight == 0.0
    assert cfgs["carl_beta_mb64"].agent.policy.endswith(":BetaPolicy")


@pytest.mark.parametrize("env_id", ["robo_reward/DrivingRoute-v0", "robo_reward/LineRoute-v0"])
def test_envs_pass_gymnasiums_checker(env_id: str) -> None:
    from gymnasium.utils.env_checker import check_env

    check_env(gym.make(env_id).unwrapped, skip_render_check=True)


def test_perf_times_a_registered_reward() -> None:
    from robo_reward.perf import run_perf

    table = run_perf("robo_reward/DrivingRoute-v0", n_envs=(2,), steps=40, repeats=1, reward="carl")
    assert list(table["mode"]) == ["raw", "numpy", "reward:carl"]
    assert (table["steps_per_s"] > 0).all()
