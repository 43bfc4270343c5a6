"""The safety layer between a policy and a robot: clipping, rate limiting, a watchdog and a latched e-stop.

Order of operations for every command (:meth:`SafetyLayer.filter`):

1. a non-finite action is rejected (:class:`SafetyViolation`; the caller latches the e-stop and stops);
2. the action is clipped to the policy's action space and mapped to command units (``offset + scale * a``);
3. the command is clipped to its limits (joint velocity or position limits, or the profile's own bounds); in
   velocity mode a joint near a position limit may not move further towards it within one period;
4. the change from the previous command is limited to ``max_delta`` per step (in position mode the first
   command starts from the measured position, so the robot never jumps), then the limits apply once more.

Stopping (:meth:`SafetyLayer.stop_command`) bypasses the rate limit: zero velocity in velocity mode, the last
measured position in position mode ("hold"). The :class:`Watchdog` marks an observation stale once it is older than
its ``max_age`` (2 control periods by default, as specs/hardware.md asks), and :class:`EStop` latches until an
explicit :meth:`EStop.reset`.

>>> from robo_reward.hardware.profile import parse_profile
>>> prof = parse_profile({"name": "d", "control_rate_hz": 10,
...     "joints": {"names": ["a"], "position_lower": -1, "position_upper": 1, "velocity_limit": 1.0},
...     "observations": {"q": {"source": "joint_state"}},
...     "command": {"interface": "float64_multi_array", "topic": "/c", "scale": 2.0, "max_delta": 0.25}})
>>> s = SafetyLayer(prof, action_low=np.array([-1.0]), action_high=np.array([1.0]))
>>> [float(s.filter(np.array([5.0]), np.array([0.0])).values[0]) for _ in range(5)]
[0.25, 0.5, 0.75, 1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from robo_reward.hardware.convert import action_to_command_values, command_values_to_action
from robo_reward.hardware.profile import RobotProfile


class SafetyViolation(RuntimeError):
    """Something the safety layer refuses to send (a NaN action, a stale observation); the robot must stop."""


@dataclass(frozen=True)
class FilteredCommand:
    """A command after the safety layer, and what the layer changed."""

    values: np.ndarray
    executed_action: np.ndarray
    clipped: np.ndarray
    rate_limited: np.ndarray


class SafetyLayer:
    """Clip, guard and rate-limit commands; see the module docstring for the order of operations.

    :param profile: the robot profile (limits, command mapping, control period).
    :param action_low: lower bound of the policy's action space (its Box ``low``).
    :param action_high: upper bound of the policy's action space.
    """

    def __init__(self, profile: RobotProfile, action_low: np.ndarray, action_high: np.ndarray) -> None:
        n = profile.action_dim
        self.action_low = np.broadcast_to(np.asarray(action_low, np.float64), (n,)).copy()
        self.action_high = np.broadcast_to(np.asarray(action_high, np.float64), (n,)).copy()
        self.scale, self.offset = profile.command_scale(), profile.command_offset()
        self.lower, self.upper = profile.command_lower(), profile.command_upper()
        self.max_delta = profile.command_max_delta()
        self.joint_command = profile.command.interface != "twist"
        self.velocity_mode = profile.command.mode == "velocity"
        self.pos_lower, self.pos_upper = profile.joints.position_lowers, profile.joints.position_uppers
        self.period = profile.period
        self.previous: np.ndarray | None = None

    def _bounds(self, measured: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.lower, self.upper
        if self.joint_command and self.velocity_mode and measured is not None:
            hi = np.minimum(hi, np.maximum(0.0, (self.pos_upper - measured) / self.period))
            lo = np.maximum(lo, np.minimum(0.0, (self.pos_lower - measured) / self.period))
        return lo, hi

    def filter(self, action: np.ndarray, measured_position: np.ndarray | None = None) -> FilteredCommand:
        """The command to send for ``action`` given the robot's measured joint positions (policy order)."""
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.size != self.scale.size:
            raise SafetyViolation(f"policy returned {action.size} action values, the robot profile expects "
                                  f"{self.scale.size}")
        if not np.isfinite(action).all():
            raise SafetyViolation(f"policy returned a non-finite action {action.tolist()}; refusing to send it")
        clipped_action = np.clip(action, self.action_low, self.action_high)
        raw = action_to_command_values(clipped_action, self.scale, self.offset)
        lo, hi = self._bounds(measured_position)
        cmd = np.clip(raw, lo, hi)
        clipped = (clipped_action != action) | (cmd != raw)
        start = self.previous
        if start is None:
            start = measured_position if (not self.velocity_mode and measured_position is not None) else None
            if start is None and self.velocity_mode:
                start = np.zeros_like(cmd)
        limited = np.zeros(cmd.shape, bool)
        if self.max_delta is not None and start is not None:
            step = np.clip(cmd - start, -self.max_delta, self.max_delta)
            limited = step != cmd - start
            cmd = np.clip(start + step, lo, hi)
        self.previous = cmd
        executed = command_values_to_action(cmd, self.scale, self.offset)
        return FilteredCommand(values=cmd, executed_action=executed, clipped=clipped, rate_limited=limited)

    def stop_command(self, measured_position: np.ndarray | None) -> np.ndarray:
        """Zero velocity, or hold the measured position; the next command ramps up from here."""
        if self.velocity_mode:
            stop = np.zeros_like(self.scale)
        elif measured_position is None:
            raise SafetyViolation("cannot hold position: no joint position has ever been received")
        else:
            stop = np.clip(np.asarray(measured_position, np.float64), self.lower, self.upper)
        self.previous = stop
        return stop

    def reset(self) -> None:
        """Forget the previous command (the next position command starts from the measured position)."""
        self.previous = None


class Watchdog:
    """Per-observation freshness: stale once older than ``max_age`` seconds, or never received.

    >>> w = Watchdog({"joints": 0.04, "camera": 0.1})
    >>> w.stale(now=1.0, received={"joints": 0.97, "camera": 0.85})
    ['camera: last message 150.0 ms ago (limit 100.0 ms)']
    """

    def __init__(self, max_age: Mapping[str, float]) -> None:
        self.max_age = dict(max_age)

    def stale(self, now: float, received: Mapping[str, float | None]) -> list[str]:
        """A description of each stale observation (empty when all are fresh)."""
        out = []
        for key, limit in self.max_age.items():
            t = received.get(key)
            if t is None:
                out.append(f"{key}: no message received yet")
            elif now - t > limit:
                out.append(f"{key}: last message {1e3 * (now - t):.1f} ms ago (limit {1e3 * limit:.1f} ms)")
        return out


class EStop:
    """A latched emergency stop: once triggered it stays on until :meth:`reset` is called explicitly.

    >>> e = EStop(); first, again = e.trigger("camera stale"), e.trigger("later reason")
    >>> first, again, e.latched, e.reason
    (True, False, True, 'camera stale')
    >>> e.reset(); e.latched
    False
    """

    def __init__(self) -> None:
        self.latched = False
        self.reason = ""
        self.count = 0

    def trigger(self, reason: str) -> bool:
        """Latch with ``reason``; returns True if this call latched it (False if it already was)."""
        if self.latched:
            return False
        self.latched, self.reason = True, reason
        self.count += 1
        return True

    def reset(self) -> None:
        self.latched, self.reason = False, ""
