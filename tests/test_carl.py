"""CaRL's reward on the deterministic 1-D stand-in and on synthetic infos: sums, zeros, hint, composition, holds."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from robo_reward import RewardWrapper
from robo_reward.envs.driving.line import LineRouteEnv
from robo_reward.methods.carl import CarlReward
from robo_reward.protocol import TransitionBatch
from robo_reward.registry import make_reward

SPACE = gym.spaces.Box(-1.0, 1.0, (2,))
BASE = dict(route_completion=0.0, speed=10.0, speed_limit=10.0, yaw=0.0, dt=0.1, lane_offset=0.0)


def line_episode(env: LineRouteEnv, speeds: Any, **reward_kwargs: Any) -> tuple[list[float], list[dict], bool, bool]:
    """Drive the stand-in at the given speeds through RewardWrapper (the env's own reward off)."""
    wrapped = RewardWrapper(env, CarlReward(**reward_kwargs), extrinsic_weight=0.0)
    wrapped.reset(seed=0)
    rewards, infos = [], []
    terminated = truncated = False
    for v in speeds:
        _, r, terminated, truncated, info = wrapped.step(np.array([v], dtype=np.float32))
        rewards.append(float(r))
        infos.append(info)
        if terminated or truncated:
            break
    return rewards, infos, terminated, truncated


class Stepper:
    """Feeds one env's synthetic infos to a bound CaRL reward, one step at a time; route completion advances by
    ``delta`` percent per step unless a step says otherwise."""

    def __init__(self, delta: float = 1.0, **kwargs: Any) -> None:
        self.reward = CarlReward(**kwargs)
        self.reward.bind(SPACE, SPACE, 1)
        self.reward.reset(np.zeros((1, 2)), np.ones(1, bool))
        self.rc, self.delta = 0.0, delta
        self.defaults: dict[str, Any] = {}

    def step(self, action: Any = (0.0, 0.0), **info: Any) -> dict[str, float]:
        self.rc += self.delta
        full = {**BASE, "route_completion": self.rc, **self.defaults, **info}
        batch = TransitionBatch(np.zeros((1, 2)), np.asarray([action], float), np.zeros((1, 2)), np.zeros(1),
                                np.zeros(1, bool), np.zeros(1, bool), infos=[full])
        out = self.reward.evaluate(batch)
        return {k: float(v[0]) for k, v in out.terms.items()}


def test_clean_route_sums_to_100_and_ends_truncated() -> None:
    rewards, infos, terminated, truncated = line_episode(LineRouteEnv(route_length=100.0, speed_limit=10.0),
                                                         [7.0] * 500)
    assert sum(rewards) == pytest.approx(100.0)
    assert truncated and not terminated
    assert infos[-1]["route_completion"] == pytest.approx(100.0)


def test_standstill_pays_exactly_zero() -> None:
    rewards, _, terminated, truncated = line_episode(LineRouteEnv(), [0.0] * 50)
    assert rewards == [0.0] * 50 and not terminated and not truncated


def test_crash_terminates_with_delta_minus_one() -> None:
    env = LineRouteEnv(route_length=100.0, dt=0.1, script={5: {"collision": True}})
    rewards, _, terminated, truncated = line_episode(env, [10.0] * 20)
    assert len(rewards) == 5 and terminated and not truncated
    assert rewards[-1] == pytest.approx(1.0 - 1.0)  # delta = 10 m/s * 0.1 s / 100 m = 1 percent
    assert rewards[:4] == pytest.approx([1.0] * 4)


def test_off_road_termination_has_no_hint() -> None:
    env = LineRouteEnv(route_length=100.0, dt=0.1, script={3: {"off_road": True}})
    rewards, _, terminated, _ = line_episode(env, [10.0] * 20)
    assert terminated and rewards[-1] == pytest.approx(1.0)


@pytest.mark.parametrize("info, factor", [
    ({"speed": 11.115}, 0.5),
    ({"speed": 10.0 + 2.23}, 0.0),
    ({"speed": 15.0}, 0.0),
    ({"ttc_violation": True}, 0.5),
    ({"outside_route_lanes": True}, 0.0),
    ({"speed": 11.115, "ttc_violation": True}, 0.25),
    ({"outside_route_lanes": True, "ttc_violation": True}, 0.0),
])
def test_single_step_factors_compose_multiplicatively(info: dict, factor: float) -> None:
    s = Stepper(delta=2.0)
    for _ in range(3):
        s.step()
    assert s.step(**info)["carl"] == pytest.approx(2.0 * factor)


def comfort_stepper(**kwargs: Any) -> Stepper:
    """A stepper whose window is full of calm driving, so the next harsh frame is judged."""
    s = Stepper(**kwargs)
    s.defaults["speed_limit"] = 30.0
    for _ in range(15):
        assert s.step()["carl/comfort"] == 1.0
    return s


def test_all_six_comfort_metrics_halve_progress() -> None:
    s = comfort_stepper()
    out = s.step(speed=20.0, yaw=2.0)  # sudden acceleration and yaw: every metric exceeds its limit
    assert out["carl/comfort"] == pytest.approx(0.5) and out["carl"] == pytest.approx(0.5)


def test_one_comfort_metric_costs_one_twelfth() -> None:
    s = Stepper()
    s.defaults.update(speed=1.0, speed_limit=30.0)
    for _ in range(15):
        s.step()
    out = s.step(yaw=0.8)  # at 1 m/s a 0.8 rad yaw step breaks the yaw-rate limit alone
    assert out["carl/comfort"] == pytest.approx(1.0 - 0.5 / 6) and out["carl"] == pytest.approx(1.0 - 0.5 / 6)


@pytest.mark.parametrize("extra, factor", [
    ({"speed_limit": 20.0 - 1.115}, 0.5),                   # comfort x speeding
    ({"ttc_violation": True}, 0.5),                         # comfort x TTC
    ({"speed_limit": 20.0 - 1.115, "ttc_violation": True}, 0.25),
])
def test_comfort_composes_with_other_factors(extra: dict, factor: float) -> None:
    s = comfort_stepper()
    s.step(speed=20.0, yaw=2.0)
    out = s.step(speed=20.0, yaw=2.0, **extra)  # comfort holds (all six active) while the other factor joins
    assert out["carl/comfort"] == pytest.approx(0.5)
    assert out["carl"] == pytest.approx(0.5 * factor)


def test_ttc_hold_lasts_exactly_hold_steps() -> None:
    hold = 7
    s = Stepper(ttc_hold=hold)
    s.step()
    out = [s.step(ttc_violation=True)["carl"]] + [s.step()["carl"] for _ in range(hold)]
    assert out[0] == 0.5
    assert out[hold - 1] == 0.5  # step t + hold - 1 still halved
    assert out[hold] == 1.0      # step t + hold free again


def test_comfort_hold_persists_then_expires() -> None:
    s = comfort_stepper(comfort_hold=5)
    s.step(speed=20.0, yaw=2.0)
    factors = [s.step(speed=20.0, yaw=2.0)["carl/comfort"] for _ in range(30)]
    assert factors[-1] == 1.0 and min(factors) == pytest.approx(0.5)


def test_lane_offset_counter_needs_three_seconds_continuous() -> None:
    s = Stepper(lane_frames=30)
    off = [s.step(lane_offset=0.8)["carl/lane_centre"] for _ in range(31)]
    assert off[:30] == [1.0] * 30 and off[30] == 0.5
    s = Stepper(lane_frames=30)
    pattern = ([0.8] * 25 + [0.0] * 25) * 3
    assert all(s.step(lane_offset=x)["carl/lane_centre"] == 1.0 for x in pattern)  # counts down when centred
    s = Stepper(lane_frames=30)
    assert all(s.step(lane_offset=0.8, in_junction=True)["carl/lane_centre"] == 1.0 for _ in range(40))


def test_action_change_penalty_is_optional() -> None:
    s = Stepper(action_change=0.25)
    s.step(action=(0.0, 0.0))
    assert s.step(action=(0.3, 0.0))["carl"] == 0.5
    assert s.step(action=(0.4, 0.1))["carl"] == 1.0
    assert "carl/action_change" not in Stepper().step(action=(1.0, 1.0))


def test_nuplan_variant_when_compliant() -> None:
    s = Stepper(delta=2.0, variant="nuplan")
    assert s.step()["carl"] == pytest.approx((5 * 2.0 + 5 * 0.05 + 4 * 0.05 + 2 * 0.05) / 16)
    assert s.step(speed=11.0)["carl"] == pytest.approx((5 * 2.0 + 5 * 0.05 + 2 * 0.05) / 16)


def test_progress_is_the_best_completion_so_far() -> None:
    s = Stepper(delta=0.0)
    assert s.step(route_completion=3.0)["carl"] == 3.0
    assert s.step(route_completion=2.0)["carl"] == 0.0
    assert s.step(route_completion=4.0)["carl"] == pytest.approx(1.0)


def test_envs_are_independent_and_reset_per_env() -> None:
    r = make_reward("carl", ttc_hold=100)
    r.bind(SPACE, SPACE, 2)
    r.reset(np.zeros((2, 2)), np.ones(2, bool))

    def batch(rc: list[float], ttc: list[bool]) -> TransitionBatch:
        infos = [{**BASE, "route_completion": c, "ttc_violation": t} for c, t in zip(rc, ttc, strict=True)]
        return TransitionBatch(np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((2, 2)), np.zeros(2),
                               np.zeros(2, bool), np.zeros(2, bool), infos=infos)

    assert r(batch([1.0, 1.0], [True, False])).tolist() == [0.5, 1.0]
    r.reset(np.zeros((2, 2)), np.array([True, False]))
    assert r(batch([1.0, 2.0], [False, False])).tolist() == [1.0, 1.0]  # env 0 restarted: hold and RC cleared


def test_state_dict_roundtrip_keeps_holds() -> None:
    s = Stepper()
    s.step(ttc_violation=True)
    state = s.reward.state_dict()
    fresh = CarlReward()
    fresh.bind(SPACE, SPACE, 1)
    fresh.load_state_dict(state)
    batch = TransitionBatch(np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 2)), np.zeros(1), np.zeros(1, bool),
                            np.zeros(1, bool), infos=[{**BASE, "route_completion": 2.0}])
    assert fresh(batch).tolist() == [0.5]


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="variant"):
        CarlReward(variant="carla")
    with pytest.raises(ValueError, match="ttc_hold"):
        CarlReward(ttc_hold=0)
    r = CarlReward()
    r.bind(SPACE, SPACE, 1)
    b = TransitionBatch(np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 2)), np.zeros(1), np.zeros(1, bool),
                        np.zeros(1, bool), infos=[{"speed": 1.0}])
    with pytest.raises(KeyError, match="route_completion"):
        r(b)
    with pytest.raises(ValueError, match="infos"):
        r(TransitionBatch(np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 2)), np.zeros(1), np.zeros(1, bool),
                          np.zeros(1, bool)))


def test_info_reader_handles_missing_and_late_keys() -> None:
    from robo_reward.methods.carl import LANE, TTC, InfoReader

    reader = InfoReader(("collision", "red_light"))
    full = {**BASE, "lane_offset": 0.8, "ttc_violation": True, "collision": True}
    table = reader([full, {**BASE, "collision": False}])  # second row lacks lane_offset and ttc_violation
    assert table[:, LANE].tolist() == [0.8, 0.0] and table[:, TTC].tolist() == [1.0, 0.0]
    assert reader.hint_keys == ("collision",) and table[:, TTC + 1].tolist() == [1.0, 0.0]
    late = InfoReader(("collision",))
    assert late([dict(BASE)])[:, TTC].tolist() == [0.0]
    assert late([{**BASE, "ttc_violation": True, "collision": True}])[:, TTC:].tolist() == [[1.0, 1.0]]


def test_hint_flag_reported_only_later_still_counts() -> None:
    s = Stepper()
    assert s.step()["carl/hint"] == 0.0
    assert s.step(red_light=True)["carl"] == pytest.approx(1.0 - 1.0)


def test_partial_batch_updates_only_its_envs() -> None:
    r = make_reward("carl", ttc_hold=100)
    r.bind(SPACE, SPACE, 3)
    r.reset(np.zeros((3, 2)), np.ones(3, bool))
    info = {**BASE, "route_completion": 1.0, "ttc_violation": True}
    one = TransitionBatch(np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 2)), np.zeros(1), np.zeros(1, bool),
                          np.zeros(1, bool), infos=[info], env_ids=np.array([1]))
    assert r(one).tolist() == [0.5]
    state = r.state_dict()
    assert state["best"].tolist() == [0.0, 1.0, 0.0] and state["monitor"]["frames"].tolist() == [0, 1, 0]
    assert state["monitor"]["ttc_until"].tolist() == [0, 101, 0]


def test_non_finite_info_is_named_and_leaves_state_alone() -> None:
    from robo_reward.evaluator import RewardEvaluator
    from robo_reward.protocol import RewardError

    ev = RewardEvaluator(CarlReward(), extrinsic_weight=0.0)
    ev.bind(SPACE, SPACE, 2)
    ev.reset(np.zeros((2, 2)), np.ones(2, bool))
    infos = [{**BASE, "route_completion": 1.0}, {**BASE, "route_completion": 1.0, "speed": float("nan")}]
    batch = TransitionBatch(np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((2, 2)), np.zeros(2), np.zeros(2, bool),
                            np.zeros(2, bool), infos=infos)
    with pytest.raises(RewardError, match=r"carl.*env rows \[1\]"):
        ev.step(batch)
    assert ev.reward.state_dict()["monitor"]["frames"].tolist() == [1, 0]


def test_env_ids_outside_the_bound_envs_are_refused() -> None:
    r = CarlReward()
    r.bind(SPACE, SPACE, 2)
    r.reset(np.zeros((2, 2)), np.ones(2, bool))
    b = TransitionBatch(np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 2)), np.zeros(1), np.zeros(1, bool),
                        np.zeros(1, bool), infos=[dict(BASE)], env_ids=np.array([2]))
    with pytest.raises(ValueError, match=r"env_ids \[2\] are not integers in \[0, 2\)"):
        r(b)
    with pytest.raises(ValueError, match="env_ids"):
        r(TransitionBatch(b.obs, b.action, b.next_obs, b.reward, b.terminated, b.truncated, b.infos,
                          env_ids=np.array([0.0])))


def test_rows_of_one_env_are_consecutive_steps() -> None:
    r = CarlReward(ttc_hold=3)
    r.bind(SPACE, SPACE, 1)
    r.reset(np.zeros((1, 2)), np.ones(1, bool))
    infos = [{**BASE, "route_completion": 1.0, "ttc_violation": True}, {**BASE, "route_completion": 3.0}]
    b = TransitionBatch(np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((2, 2)), np.zeros(2), np.zeros(2, bool),
                        np.zeros(2, bool), infos=infos, env_ids=np.array([0, 0]))
    assert r(b).tolist() == [0.5, 1.0]  # delta 1 then 2; the TTC hold set by the first row covers the second
    assert r.state_dict()["monitor"]["frames"].tolist() == [2]


def test_unlimited_speed_is_allowed_and_bad_dt_is_named() -> None:
    s = Stepper()
    assert s.step(speed_limit=float("inf"), speed=50.0)["carl/speed"] == 1.0
    with pytest.raises(ValueError, match="dt"):
        s.step(dt=0.0)
