"""The safety layer without ROS: clipping, rate limiting, position guard, NaN rejection, watchdog, e-stop."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robo_reward.hardware.profile import parse_profile
from robo_reward.hardware.safety import EStop, SafetyLayer, SafetyViolation, Watchdog


def profile(mode="velocity", **command):
    return parse_profile({
        "name": "t", "control_rate_hz": 10,
        "joints": {"names": ["a", "b"], "position_lower": [-1, -1], "position_upper": [1, 1],
                   "velocity_limit": [1.0, 0.5]},
        "observations": {"q": {"source": "joint_state"}},
        "command": {"interface": "float64_multi_array", "topic": "/c", "mode": mode, **command},
    })


def layer(mode="velocity", **command):
    return SafetyLayer(profile(mode, **command), np.array([-1.0, -1.0]), np.array([1.0, 1.0]))


def test_clipped_to_action_space_then_joint_limits():
    s = layer(scale=2.0)
    out = s.filter(np.array([3.0, -0.2]), np.zeros(2))
    assert out.values.tolist() == [1.0, -0.4]  # a: action 3 -> 1 -> 2 rad/s -> velocity limit 1
    assert out.clipped.tolist() == [True, False]
    np.testing.assert_allclose(out.executed_action, [0.5, -0.2])  # what the robot does, in action units


def test_rate_limit_ramps_both_ways():
    s = layer(scale=1.0, max_delta=0.3)
    seq = [s.filter(np.array([1.0, 0.0]), np.zeros(2)).values[0] for _ in range(5)]
    np.testing.assert_allclose(seq, [0.3, 0.6, 0.9, 1.0, 1.0])
    down = [s.filter(np.array([-1.0, 0.0]), np.zeros(2)).values[0] for _ in range(3)]
    np.testing.assert_allclose(down, [0.7, 0.4, 0.1])


def test_velocity_guard_at_position_limits():
    s = layer(scale=1.0)
    at_upper = np.array([0.98, -0.99])
    out = s.filter(np.array([1.0, -1.0]), at_upper)
    np.testing.assert_allclose(out.values, [0.2, -0.1])  # (1 - 0.98) / 0.1 and (-1 + 0.99) / 0.1
    beyond = s.filter(np.array([1.0, 1.0]), np.array([1.2, 0.0]))
    assert beyond.values[0] == 0.0 and beyond.values[1] == 0.5  # past the limit: may not go further


def test_position_mode_starts_from_measured_and_holds():
    s = layer("position", scale=1.0, max_delta=0.1)
    measured = np.array([0.5, -0.5])
    out = s.filter(np.array([1.0, 1.0]), measured)
    np.testing.assert_allclose(out.values, [0.6, -0.4])  # no jump: first step starts at the measured position
    np.testing.assert_allclose(s.stop_command(np.array([2.0, 0.1])), [1.0, 0.1])  # hold, inside the limits
    with pytest.raises(SafetyViolation, match="no joint position"):
        s.stop_command(None)


def test_stop_bypasses_rate_limit_and_next_command_ramps_from_zero():
    s = layer(scale=1.0, max_delta=0.25)
    for _ in range(4):
        s.filter(np.array([1.0, 1.0]), np.zeros(2))
    assert s.stop_command(np.zeros(2)).tolist() == [0.0, 0.0]
    assert s.filter(np.array([1.0, 1.0]), np.zeros(2)).values.tolist() == [0.25, 0.25]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_actions_rejected(bad):
    with pytest.raises(SafetyViolation, match="non-finite action"):
        layer().filter(np.array([0.0, bad]), np.zeros(2))
    with pytest.raises(SafetyViolation, match="3 action values"):
        layer().filter(np.zeros(3), np.zeros(2))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.floats(-50, 50), min_size=2, max_size=2), min_size=1, max_size=20),
       st.lists(st.floats(-1.5, 1.5), min_size=2, max_size=2))
def test_property_always_within_limits_and_rate(actions, measured):
    s = layer(scale=3.0, max_delta=0.2)
    prev = np.zeros(2)
    for a in actions:
        v = s.filter(np.array(a), np.array(measured)).values
        assert (np.abs(v) <= np.array([1.0, 0.5]) + 1e-12).all()
        assert (np.abs(v - prev) <= 0.2 + 1e-12).all()
        prev = v


def test_watchdog_and_estop_latch():
    w = Watchdog({"joints": 0.2, "camera": 0.5})
    assert w.stale(1.0, {"joints": 0.9, "camera": 0.6}) == []
    stale = w.stale(1.0, {"joints": 0.7, "camera": None})
    assert stale == ["joints: last message 300.0 ms ago (limit 200.0 ms)", "camera: no message received yet"]
    e = EStop()
    assert e.trigger("joints stale") and not e.trigger("other")
    assert e.latched and e.reason == "joints stale" and e.count == 1
    e.reset()
    assert not e.latched
