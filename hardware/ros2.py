"""ROS 2 transport through rclpy (``pip install robo-reward[ros2]``; the PyPI wheels need nothing sourced).

One node, in its own rclpy context, spun by a single-threaded executor on a background thread: subscription
callbacks only store the newest message and its arrival time, so the control loop (on its own clock, in the
caller's thread) never waits on ROS. QoS follows specs/hardware.md: reliable with a short history for joint states,
poses and commands; best-effort, depth 1 for cameras. The e-stop reset is a ``std_srvs/Trigger`` service.

DDS discovers peers by multicast on every interface: tests and benchmarks run these nodes in a loopback-only
network namespace (:mod:`robo_reward.hardware.testing`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from robo_reward.hardware.convert import Command
from robo_reward.hardware.profile import RobotProfile
from robo_reward.hardware.transport import Stamped, Transport, reward_labels

try:
    import rclpy
    from geometry_msgs.msg import PoseStamped, Twist
    from rclpy.duration import Duration
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from rclpy.signals import SignalHandlerOptions
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import Float64MultiArray, MultiArrayDimension, String
    from std_srvs.srv import Trigger
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
except ImportError as exc:  # pragma: no cover - exercised where the extra is missing
    raise ImportError(
        f"the ROS 2 backend needs rclpy and the message packages ({exc}); install them with "
        "`pip install robo-reward[ros2]`"
    ) from exc

log = logging.getLogger(__name__)

MESSAGE_TYPES: dict[str, Any] = {"joint_state": JointState, "image": Image, "pose": PoseStamped}
COMMAND_TYPES: dict[str, Any] = {"float64_multi_array": Float64MultiArray, "joint_trajectory": JointTrajectory,
                                 "twist": Twist}


def qos(policy: str, depth: int = 5) -> QoSProfile:
    """Reliable (joint states, commands), best-effort with depth 1 (camera streams), or ``latched``: reliable and
    transient-local, so a late subscriber still gets the last ``depth`` messages (the status topic)."""
    if policy == "best_effort":
        return QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)
    durability = DurabilityPolicy.TRANSIENT_LOCAL if policy == "latched" else DurabilityPolicy.VOLATILE
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                      durability=durability)


def command_message(command: Command, stamp: Any = None) -> Any:
    """The ROS 2 message for a :class:`Command`."""
    if command.interface == "float64_multi_array":
        return Float64MultiArray(data=command.values.tolist())
    if command.interface == "joint_trajectory":
        point = JointTrajectoryPoint()
        if command.mode == "velocity":
            point.velocities = command.values.tolist()
        else:
            point.positions = command.values.tolist()
        secs = int(command.time_from_start)
        point.time_from_start.sec, point.time_from_start.nanosec = secs, int((command.time_from_start - secs) * 1e9)
        msg = JointTrajectory(joint_names=list(command.names), points=[point])
        if stamp is not None:
            msg.header.stamp = stamp
        return msg
    twist = Twist()
    for axis, value in command.twist().items():
        part, comp = axis.split(".")
        setattr(getattr(twist, part), comp, float(value))
    return twist


def reward_message(tick: int, total: float, terms: Mapping[str, float]) -> Float64MultiArray:
    """``[tick, total, <terms sorted by name>]``; the one dimension's label lists the names, comma-separated."""
    labels = reward_labels(terms)
    msg = Float64MultiArray(data=[float(tick), float(total), *(float(terms[k]) for k in labels[2:])])
    msg.layout.dim = [MultiArrayDimension(label=",".join(labels), size=len(labels), stride=len(labels))]
    return msg


def parse_reward_message(msg: Any) -> tuple[int, float, dict[str, float]]:
    """Inverse of :func:`reward_message`."""
    labels = msg.layout.dim[0].label.split(",")
    data = list(msg.data)
    return int(data[0]), data[1], dict(zip(labels[2:], data[2:], strict=True))


class Ros2Transport(Transport):
    """The bridge's node: subscriptions to the profile's topics, command/reward/status publishers, reset service.

    :param node_name: the ROS node name.
    :param domain_id: the ROS domain (default: ``ROS_DOMAIN_ID`` or 0).
    """

    def __init__(self, node_name: str = "robo_reward_bridge", domain_id: int | None = None) -> None:
        self.node_name, self.domain_id = node_name, domain_id
        self._latest: dict[str, Stamped] = {}
        self._reset = threading.Event()
        self._lock = threading.Lock()
        self.context: Any = None
        self.node: Any = None
        self._thread: threading.Thread | None = None

    def start(self, profile: RobotProfile) -> None:
        self.profile = profile
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=self.domain_id, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node(self.node_name, context=self.context)
        topics: dict[str, tuple[Any, str]] = {profile.joints.state_topic: (JointState, "reliable")}
        for key, obs in profile.observations.items():
            topics[profile.topic_of(key)] = (MESSAGE_TYPES[obs.source], obs.qos_policy)
        for topic, (msg_type, policy) in topics.items():
            self.node.create_subscription(msg_type, topic, self._store(topic), qos(policy))
        cmd = profile.command
        self._cmd_pub = self.node.create_publisher(COMMAND_TYPES[cmd.interface], cmd.topic, qos("reliable", 10))
        self._reward_pub = self.node.create_publisher(Float64MultiArray, profile.topics.reward, qos("reliable", 10))
        self._status_pub = self.node.create_publisher(String, profile.topics.status, qos("latched", 20))
        self.node.create_service(Trigger, profile.topics.reset_service, self._on_reset)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, args=(self.context,), name="ros2-transport",
                                        daemon=True)
        self._thread.start()

    def _spin(self, context: Any) -> None:
        try:
            while context.ok():
                self._executor.spin_once(timeout_sec=0.1)
        except Exception:  # the context was shut down under the executor
            if context.ok():
                raise

    def _store(self, topic: str):  # type: ignore[no-untyped-def]
        def callback(msg: Any) -> None:
            stamped = Stamped(msg, time.monotonic())
            with self._lock:
                self._latest[topic] = stamped
        return callback

    def _on_reset(self, _request: Any, response: Any) -> Any:
        self._reset.set()
        response.success = True
        response.message = "reset requested: the e-stop clears at the next tick if every observation is fresh " \
                           "and valid (watch the status topic)"
        return response

    def latest(self, topic: str) -> Stamped | None:
        with self._lock:
            return self._latest.get(topic)

    def publish_command(self, command: Command) -> None:
        stamp = self.node.get_clock().now().to_msg() if command.interface == "joint_trajectory" else None
        self._cmd_pub.publish(command_message(command, stamp))

    def publish_reward(self, tick: int, total: float, terms: Mapping[str, float]) -> None:
        self._reward_pub.publish(reward_message(tick, total, terms))

    def publish_status(self, text: str) -> None:
        self._status_pub.publish(String(data=text))

    def command_subscribers(self) -> int | None:
        return int(self._cmd_pub.get_subscription_count())

    def take_reset_request(self) -> bool:
        if self._reset.is_set():
            self._reset.clear()
            return True
        return False

    def close(self, ack_timeout_s: float = 2.0) -> None:
        """Shut the node down once the robot has acknowledged the last command and status (reliable QoS), so the
        hold sent on close is not lost with the process; a warning says when it was not acknowledged in time.

        :param ack_timeout_s: how long to wait for the acknowledgements.
        """
        if self.context is None:
            return
        for name, pub in (("command", self._cmd_pub), ("status", self._status_pub)):
            if pub.get_subscription_count() and not pub.wait_for_all_acked(Duration(seconds=ack_timeout_s)):
                log.warning("closing with the last %s on %s not acknowledged after %.1f s: the robot may not have "
                            "received it", name, pub.topic_name, ack_timeout_s)
        context, self.context = self.context, None
        try:
            context.shutdown()
        finally:
            if self._thread is not None:
                self._thread.join(timeout=2.0)
            self._executor.shutdown(timeout_sec=1.0)
            self.node.destroy_node()
