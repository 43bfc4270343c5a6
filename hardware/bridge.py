"""The robot as the policy sees it: observation snapshots, safe commands, a watchdog and a latched e-stop.

:class:`RobotBridge` is shared by the deployment loop (:mod:`robo_reward.hardware.deploy`) and the Gymnasium face
(:class:`robo_reward.hardware.env.RosRobotEnv`), so both apply the same checks. :class:`TickClock` gives the fixed
control rate: ticks are scheduled on the monotonic clock at ``t0 + k * period`` (no drift), and a tick that is
late by more than a period is skipped and counted rather than run in a burst.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from robo_reward.hardware.convert import (
    MessageError,
    image_to_array,
    joint_state_to_array,
    make_command,
    pose_to_array,
    stamp_ns,
)
from robo_reward.hardware.profile import RobotProfile
from robo_reward.hardware.safety import EStop, FilteredCommand, SafetyLayer, SafetyViolation, Watchdog
from robo_reward.hardware.transport import Stamped, Transport

Observation = dict[str, np.ndarray] | np.ndarray


def observation_space(profile: RobotProfile) -> gym.Space:
    """The policy observation space a profile produces (Dict by key, or one Box for ``concat``)."""
    n = len(profile.joints.names)
    spaces: dict[str, gym.Space] = {}
    for key, obs in profile.observations.items():
        if obs.source == "joint_state":
            spaces[key] = gym.spaces.Box(-np.inf, np.inf, (n,), np.float64)
        elif obs.source == "pose":
            spaces[key] = gym.spaces.Box(-np.inf, np.inf, (7,), np.float64)
        else:
            spaces[key] = gym.spaces.Box(0, 255, tuple(obs.shape or ()), np.uint8)
    if profile.observation_layout == "concat":
        size = sum(int(np.prod(s.shape or ())) for s in spaces.values())
        return gym.spaces.Box(-np.inf, np.inf, (size,), np.float64)
    return gym.spaces.Dict(spaces)


@dataclass
class Snapshot:
    """Observations taken at one tick: the policy input, message stamps and arrival times per key."""

    obs: Observation
    stamps: dict[str, int]
    received: dict[str, float | None]
    measured_position: np.ndarray | None
    time: float


@dataclass
class TickClock:
    """Fixed-rate ticks on a monotonic clock; :meth:`wait` sleeps until the next tick and returns its time."""

    period: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    t0: float = 0.0
    index: int = -1
    skipped: int = 0
    lateness: list[float] = field(default_factory=list)

    def start(self) -> float:
        self.t0, self.index = self.clock(), 0
        return self.t0

    def wait(self) -> float:
        self.index += 1
        target = self.t0 + self.index * self.period
        now = self.clock()
        if now > target + self.period:
            behind = math.floor((now - self.t0) / self.period) + 1
            self.skipped += behind - self.index
            self.index = behind
            target = self.t0 + self.index * self.period
        if target > now:
            self.sleep(target - now)
        self.lateness.append(self.clock() - target)
        return target


class RobotBridge:
    """Observation snapshots and safe commands over a :class:`Transport`.

    :param profile: the robot profile.
    :param transport: a started transport.
    :param action_low: the policy action space's lower bound.
    :param action_high: the policy action space's upper bound.
    :param clock: monotonic clock (seconds), the same one the transport stamps arrivals with.
    """

    def __init__(self, profile: RobotProfile, transport: Transport, action_low: np.ndarray,
                 action_high: np.ndarray, clock: Callable[[], float] = time.monotonic) -> None:
        self.profile, self.transport, self.clock = profile, transport, clock
        self.safety = SafetyLayer(profile, action_low, action_high)
        required = [k for k, o in profile.observations.items() if o.required]
        self.watchdog = Watchdog({k: profile.max_age(k) for k in required})
        self.estop = EStop()
        self.measured_position: np.ndarray | None = None
        self.command_names = tuple(profile.command.twist_axes or profile.joints.names)
        self.time_from_start = profile.command.time_from_start or profile.period
        self._cache: dict[str, tuple[Stamped, np.ndarray]] = {}

    # -- observations --------------------------------------------------------------------------------------
    def _convert(self, key: str, stamped: Stamped) -> np.ndarray:
        cached = self._cache.get(key)
        if cached is not None and cached[0] is stamped:
            return cached[1]
        obs = self.profile.observations[key]
        where = f"{obs.source} observation '{key}' on {self.profile.topic_of(key)}"
        if obs.source == "joint_state":
            value = joint_state_to_array(stamped.msg, self.profile.joints.names, obs.field, source=where)
        elif obs.source == "image":
            value = image_to_array(stamped.msg, obs.shape, source=where)
        else:
            value = pose_to_array(stamped.msg, obs.frame_id or "", source=where)
        self._cache[key] = (stamped, value)
        return value

    def _measure(self, stamped: Stamped | None) -> tuple[np.ndarray | None, float | None]:
        if stamped is None:
            return None, None
        where = f"joint positions on {self.profile.joints.state_topic}"
        return joint_state_to_array(stamped.msg, self.profile.joints.names, "position", source=where), \
            stamped.received

    def snapshot(self, now: float | None = None) -> Snapshot:
        """Latest observations, checked; raises :class:`SafetyViolation` (stale) or :class:`MessageError`."""
        now = self.clock() if now is None else now
        topics = {self.profile.topic_of(k) for k in self.profile.observations} | {self.profile.joints.state_topic}
        by_topic = {t: self.transport.latest(t) for t in topics}  # once per topic: keys sharing a message agree
        latest = {k: by_topic[self.profile.topic_of(k)] for k in self.profile.observations}
        received = {k: (s.received if s is not None else None) for k, s in latest.items()}
        stale = self.watchdog.stale(now, received)
        if stale:
            raise SafetyViolation("watchdog: " + "; ".join(stale))
        self.measured_position, _ = self._measure(by_topic[self.profile.joints.state_topic])
        values: dict[str, np.ndarray] = {}
        for key, stamped in latest.items():
            if stamped is None:
                continue
            values[key] = self._convert(key, stamped)
        missing = [k for k in self.profile.observations if k not in values]
        if missing:
            raise SafetyViolation(f"optional observations {missing} have never arrived; the policy needs all")
        obs: Observation = values
        if self.profile.observation_layout == "concat":
            obs = np.concatenate([values[k].reshape(-1) for k in self.profile.observations])
        stamps = {k: stamp_ns(s.msg) for k, s in latest.items() if s is not None}
        return Snapshot(obs, stamps, received, self.measured_position, now)

    def wait_ready(self, timeout: float, poll: float = 0.01,
                   should_stop: Callable[[], bool] | None = None) -> Snapshot | None:
        """Block until every observation has arrived and converts and a controller subscribes to the command topic
        (the loop starts only then, so no command is published into the void).

        Returns None if ``should_stop()`` turns True while waiting (e.g. Ctrl-C before the robot came up).
        """
        end = self.clock() + timeout
        while should_stop is None or not should_stop():
            try:
                snap = self.snapshot()
                if self.transport.command_subscribers() == 0:
                    raise SafetyViolation(f"nothing subscribes to the command topic {self.profile.command.topic} "
                                          "(is the robot's controller running?)")
                return snap
            except (SafetyViolation, MessageError) as exc:
                if self.clock() > end:
                    topics = sorted({self.profile.topic_of(k) for k in self.profile.observations})
                    raise TimeoutError(f"robot not ready after {timeout} s: {exc}; check that the robot publishes "
                                       f"the profile's topics {topics}") from exc
            time.sleep(poll)
        return None

    # -- commands ------------------------------------------------------------------------------------------
    def send(self, action: np.ndarray) -> FilteredCommand:
        """Filter ``action`` through the safety layer and publish it; refuses while the e-stop is latched."""
        if self.estop.latched:
            raise SafetyViolation(f"e-stop is latched ({self.estop.reason}); reset it before sending commands")
        filtered = self.safety.filter(action, self.measured_position)
        self.transport.publish_command(self._command(filtered.values))
        return filtered

    def _command(self, values: np.ndarray):  # type: ignore[no-untyped-def]
        cmd = self.profile.command
        return make_command(values, cmd.interface, cmd.mode, self.command_names, self.time_from_start)

    def hold(self) -> np.ndarray | None:
        """Publish the stop command (zero velocity or hold position) without changing the e-stop.

        In position mode with no joint position ever received there is nothing safe to command, so nothing is
        sent (position controllers keep their last target).
        """
        if self.measured_position is None:
            with contextlib.suppress(MessageError):
                self.measured_position, _ = self._measure(self.transport.latest(self.profile.joints.state_topic))
        if self.measured_position is None and not self.safety.velocity_mode:
            return None
        values = self.safety.stop_command(self.measured_position)
        self.transport.publish_command(self._command(values))
        return values

    def stop(self, reason: str) -> np.ndarray | None:
        """Latch the e-stop with ``reason``, publish the stop command and an ``ESTOP:`` status line."""
        first = self.estop.trigger(reason)
        try:
            return self.hold()
        finally:
            if first:
                self.transport.publish_status(f"ESTOP: {reason}")

    def try_reset(self) -> str | None:
        """Clear the e-stop if every required observation is fresh and valid; returns why not, or None."""
        try:
            self.snapshot()
        except (SafetyViolation, MessageError) as exc:
            return str(exc)
        self.estop.reset()
        self.safety.reset()
        self.transport.publish_status("running: e-stop reset by operator")
        return None
