"""The small interface between the bridge and a middleware (ROS 2 through rclpy, or memory for tests).

A transport keeps the *latest* message of each observation topic with the monotonic time it arrived (the control
loop snapshots them on its own clock; it is never driven by message callbacks), publishes commands, the learned
reward and a status line, and passes on operator requests to clear the e-stop.

The ROS 2 backend is :class:`robo_reward.hardware.ros2.Ros2Transport` (``pip install robo-reward[ros2]``);
:class:`InMemoryTransport` runs the same control loop in one process without any middleware.
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from robo_reward.hardware.convert import Command
from robo_reward.hardware.profile import RobotProfile


@dataclass(frozen=True)
class Stamped:
    """A message and the monotonic time (``time.monotonic()``, seconds) at which it was received."""

    msg: Any
    received: float


def reward_labels(terms: Mapping[str, Any]) -> list[str]:
    """Layout of a published reward vector: ``[tick, total, <term>...]`` (terms in sorted order)."""
    return ["tick", "total", *sorted(terms)]


class Transport(abc.ABC):
    """Observation topics in, commands/reward/status out. Implementations must be thread-safe for
    :meth:`latest` and :meth:`take_reset_request` called from the control loop while messages arrive."""

    @abc.abstractmethod
    def start(self, profile: RobotProfile) -> None:
        """Subscribe to every observation topic of ``profile`` (and its joint-state topic), create publishers."""

    @abc.abstractmethod
    def latest(self, topic: str) -> Stamped | None:
        """The newest message on ``topic`` (None if nothing arrived yet)."""

    @abc.abstractmethod
    def publish_command(self, command: Command) -> None:
        """Send a command in the profile's interface (Float64MultiArray, JointTrajectory or Twist)."""

    @abc.abstractmethod
    def publish_reward(self, tick: int, total: float, terms: Mapping[str, float]) -> None:
        """Publish the learned reward as ``[tick, total, <term>...]`` (see :func:`reward_labels`)."""

    @abc.abstractmethod
    def publish_status(self, text: str) -> None:
        """Publish a human-readable status line (``running``, ``ESTOP: <reason>``, ...)."""

    def take_reset_request(self) -> bool:
        """True once per operator request to clear the e-stop (consumed by this call)."""
        return False

    def command_subscribers(self) -> int | None:
        """How many subscribers (controllers) the command topic has now; None if the middleware cannot tell."""
        return None

    def close(self) -> None:
        """Release the middleware (idempotent)."""


@dataclass
class InMemoryTransport(Transport):
    """A transport without middleware: tests and notebooks push messages and read what was published.

    >>> from robo_reward.hardware.convert import JointStateData
    >>> t = InMemoryTransport(clock=lambda: 5.0)
    >>> t.push("/joint_states", JointStateData(name=["a"], position=[0.1]))
    >>> t.latest("/joint_states").received
    5.0
    """

    clock: Any = time.monotonic
    commands: list[Command] = field(default_factory=list)
    rewards: list[tuple[int, float, dict[str, float]]] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    _latest: dict[str, Stamped] = field(default_factory=dict)
    _reset: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    profile: RobotProfile | None = None

    def start(self, profile: RobotProfile) -> None:
        self.profile = profile

    def push(self, topic: str, msg: Any, received: float | None = None) -> None:
        with self._lock:
            self._latest[topic] = Stamped(msg, self.clock() if received is None else received)

    def latest(self, topic: str) -> Stamped | None:
        with self._lock:
            return self._latest.get(topic)

    def publish_command(self, command: Command) -> None:
        self.commands.append(command)

    def publish_reward(self, tick: int, total: float, terms: Mapping[str, float]) -> None:
        self.rewards.append((tick, total, dict(terms)))

    def publish_status(self, text: str) -> None:
        self.statuses.append(text)

    def request_reset(self) -> None:
        self._reset = True

    def take_reset_request(self) -> bool:
        with self._lock:
            requested, self._reset = self._reset, False
        return requested


MIDDLEWARES = ("ros2", "ros1")


def make_transport(middleware: str = "ros2", node_name: str = "robo_reward_bridge") -> Transport:
    """A transport for ``middleware``: ``ros2`` (rclpy, the ros2 extra) or ``ros1`` (rospy from the system)."""
    if middleware == "ros2":
        from robo_reward.hardware.ros2 import Ros2Transport

        return Ros2Transport(node_name=node_name)
    if middleware == "ros1":
        from robo_reward.hardware.ros1 import Ros1Transport

        return Ros1Transport(node_name=node_name)
    raise ValueError(f"unknown middleware {middleware!r}; choose one of {list(MIDDLEWARES)}")
