"""A fake robot as a real rclpy node, for tests and demos of the bridge without hardware.

It integrates the commanded joint velocities (or tracks commanded positions, clamped to the joint limits), publishes
``sensor_msgs/JointState`` (joints deliberately in another order than the profile's, with an extra gripper joint)
and a camera ``sensor_msgs/Image`` (a synthetic rendering of the joint angles: one coloured bar per joint, in the
encoding and with the row padding asked for), and records everything it published and received so tests can
compare. The task suite's MuJoCo scene is not used yet; the synthetic image keeps the node light and deterministic.

A ``std_msgs/String`` on ``/fake_robot/control`` changes its behaviour while running:

* ``silent`` / ``resume``: stop and restart publishing (to trip the bridge's watchdog);
* ``fault:missing_joint:<name>``, ``fault:nan``, ``fault:wrong_size_joints``, ``fault:wrong_size_image``,
  ``fault:bad_encoding``, ``fault:none``: publish malformed messages of that kind, or stop doing so.

Run it (inside a loopback-only namespace, see :mod:`robo_reward.hardware.testing`)::

    python -m robo_reward.hardware.fake_robot --robot configs/robots/fake_arm7.yaml --record /tmp/robot.npz

``--middleware ros1`` runs it as a rospy node instead (with a ROS master running).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from robo_reward.hardware.convert import ImageData, array_to_image, command_from_message
from robo_reward.hardware.profile import RobotProfile, load_profile

CONTROL_TOPIC = "/fake_robot/control"
EXTRA_JOINT = "gripper_finger_joint"


def render_joints(q: np.ndarray, lower: np.ndarray, upper: np.ndarray, height: int, width: int) -> np.ndarray:
    """A deterministic RGB picture of the joint angles: a gradient background and one bar per joint."""
    y = np.linspace(0.0, 1.0, height)[:, None]
    x = np.linspace(0.0, 1.0, width)[None, :]
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = (40 + 60 * x).astype(np.uint8)
    img[..., 1] = (30 + 50 * y).astype(np.uint8)
    img[..., 2] = 90
    frac = np.clip((q - lower) / (upper - lower), 0.0, 1.0)
    band = max(1, height // max(1, len(q)))
    for i, f in enumerate(frac):
        rows = slice(i * band, min(height, (i + 1) * band - (band > 2)))
        img[rows, : max(1, round(f * width)), :] = (230, 200 - 20 * (i % 5), 40 + 30 * (i % 4))
    return img


class FakeRobot:
    """The robot's logic and records, independent of the middleware (see the module docstring).

    The node classes below call :meth:`on_command` etc. from their subscriptions and ask :meth:`joint_state` and
    :meth:`image` for what to publish on their timers.
    """

    def __init__(self, profile: RobotProfile, *, encoding: str = "bgr8", row_padding: int = 4, seed: int = 0,
                 camera_size: tuple[int, int] | None = None) -> None:
        if profile.command.interface == "twist":
            raise ValueError("the fake robot simulates joint robots; give a profile with a joint command interface")
        self.profile, self.encoding, self.row_padding = profile, encoding, row_padding
        self.names = list(profile.joints.names)
        self.lower, self.upper = profile.joints.position_lowers, profile.joints.position_uppers
        rng = np.random.default_rng(seed)
        self.q = self.lower + (self.upper - self.lower) * rng.uniform(0.35, 0.65, len(self.names))
        self.v_cmd = np.zeros(len(self.names))
        self.pos_target: np.ndarray | None = None
        order = list(reversed(self.names))
        order.insert(len(order) // 2, EXTRA_JOINT)
        self.msg_order = order
        images = [o for o in profile.observations.values() if o.source == "image"]
        self.camera_topic = images[0].topic if images else None
        shape = images[0].shape if images else (84, 84, 3)
        self.camera_size = camera_size or (shape[0], shape[1])  # type: ignore[index]
        self.silent = False
        self.fault = "none"
        self.lock = threading.Lock()
        self.out_lock = threading.Lock()
        self.last_step = time.monotonic()
        self.rec: dict[str, list[Any]] = {k: [] for k in (
            "js_time", "js_stamp", "js_pos", "js_vel", "img_time", "img_stamp", "img_rgb", "cmd_time",
            "cmd_values", "reward_time", "reward_data", "status_time", "status_text", "control_time",
            "control_text")}
        self.reward_labels = ""

    # -- what arrives ----------------------------------------------------------------------------------------
    def on_command(self, msg: Any) -> None:
        t = time.monotonic()
        cmd = self.profile.command
        values = command_from_message(msg, cmd.interface, cmd.mode, self.names)
        with self.lock:
            if cmd.mode == "velocity":
                self.v_cmd = values
            else:
                self.pos_target = values
        self.rec["cmd_time"].append(t)
        self.rec["cmd_values"].append(values)

    def on_reward(self, msg: Any) -> None:
        self.rec["reward_time"].append(time.monotonic())
        self.rec["reward_data"].append(list(msg.data))
        self.reward_labels = msg.layout.dim[0].label if msg.layout.dim else ""

    def on_status(self, msg: Any) -> None:
        self.rec["status_time"].append(time.monotonic())
        self.rec["status_text"].append(msg.data)

    def on_control(self, msg: Any) -> None:
        text = msg.data
        with self.out_lock:
            self.rec["control_time"].append(time.monotonic())
            self.rec["control_text"].append(text)
            if text in ("silent", "resume"):
                self.silent = text == "silent"
                return
        if text.startswith("fault:"):
            self.fault = text.removeprefix("fault:")
        else:
            print(f"fake robot: unknown control {text!r}", file=sys.stderr, flush=True)

    # -- what leaves -----------------------------------------------------------------------------------------
    def _step(self) -> None:
        now = time.monotonic()
        dt, self.last_step = now - self.last_step, now
        with self.lock:
            if self.profile.command.mode == "velocity":
                self.q = np.clip(self.q + self.v_cmd * dt, self.lower, self.upper)
            elif self.pos_target is not None:
                self.q = np.clip(self.pos_target, self.lower, self.upper)

    def joint_state(self) -> tuple[list[str], list[float], list[float]] | None:
        """Advance the simulation; (names, positions, velocities) to publish, or None while silent."""
        self._step()
        if self.silent:
            return None
        q = {n: float(v) for n, v in zip(self.names, self.q, strict=True)}
        v = {n: float(x) for n, x in zip(self.names, self.v_cmd, strict=True)}
        q[EXTRA_JOINT], v[EXTRA_JOINT] = 0.01, 0.0
        order = list(self.msg_order)
        if self.fault.startswith("missing_joint:"):
            order.remove(self.fault.split(":", 1)[1])
        positions = [q[n] for n in order]
        if self.fault == "nan":
            positions[order.index(self.names[0])] = float("nan")
        if self.fault == "wrong_size_joints":
            positions = positions[:-1]
        return order, positions, [v[n] for n in order]

    def publish_joint_state(self, send: Callable[[tuple[list[str], list[float], list[float]]], int]) -> None:
        """Decide, send and record one joint-state message atomically with respect to controls: a ``silent``
        received between the decision and the record would otherwise log a message sent after the silence.

        :param send: publishes (names, positions, velocities) and returns the message's stamp in ns.
        """
        with self.out_lock:
            state = self.joint_state()
            if state is not None:
                self.published_joint_state(send(state))

    def published_joint_state(self, stamp_ns: int) -> None:
        self.rec["js_time"].append(time.monotonic())
        self.rec["js_stamp"].append(stamp_ns)
        self.rec["js_pos"].append(self.q.copy())
        self.rec["js_vel"].append(self.v_cmd.copy())

    def image(self) -> tuple[ImageData, np.ndarray] | None:
        """The camera frame to publish (possibly malformed on purpose) and its RGB truth, or None while silent."""
        if self.silent or self.camera_topic is None:
            return None
        rgb = render_joints(self.q, self.lower, self.upper, *self.camera_size)
        data = array_to_image(rgb, self.encoding, row_padding=self.row_padding)
        if self.fault == "bad_encoding":
            data.encoding = "yuv422"
        if self.fault == "wrong_size_image":
            data.data = data.data[: len(data.data) - data.step // 2]
        return data, rgb

    def published_image(self, stamp_ns: int, rgb: np.ndarray) -> None:
        self.rec["img_time"].append(time.monotonic())
        self.rec["img_stamp"].append(stamp_ns)
        self.rec["img_rgb"].append(rgb)

    def save(self, path: str | Path) -> None:
        """Write everything recorded as one ``.npz`` (arrays; the texts as JSON strings)."""
        n = len(self.names)
        r = self.rec
        np.savez_compressed(
            path,
            joint_names=np.array(self.names), msg_order=np.array(self.msg_order),
            js_time=np.array(r["js_time"]), js_stamp=np.array(r["js_stamp"], np.int64),
            js_pos=np.array(r["js_pos"]).reshape(-1, n), js_vel=np.array(r["js_vel"]).reshape(-1, n),
            img_time=np.array(r["img_time"]), img_stamp=np.array(r["img_stamp"], np.int64),
            img_rgb=np.array(r["img_rgb"], np.uint8).reshape(-1, *self.camera_size, 3),
            cmd_time=np.array(r["cmd_time"]), cmd_values=np.array(r["cmd_values"]).reshape(-1, n),
            reward_time=np.array(r["reward_time"]), reward_data=np.array(r["reward_data"], dtype=np.float64),
            reward_labels=np.array(self.reward_labels),
            status=np.array(json.dumps(list(zip(r["status_time"], r["status_text"], strict=True)))),
            control=np.array(json.dumps(list(zip(r["control_time"], r["control_text"], strict=True)))),
        )


def _fill_image(msg: Any, data: ImageData) -> None:
    msg.height, msg.width, msg.step, msg.encoding = data.height, data.width, data.step, data.encoding
    msg.data = data.data


class Ros2FakeRobotNode:
    """The fake robot as an rclpy node."""

    def __init__(self, robot: FakeRobot, rate_hz: float, camera_hz: float) -> None:
        import rclpy
        from rclpy.signals import SignalHandlerOptions
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import Float64MultiArray, String

        from robo_reward.hardware.ros2 import COMMAND_TYPES, qos

        self.robot, self.JointState, self.Image = robot, JointState, Image
        profile = robot.profile
        self.context = rclpy.Context()
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node("fake_robot", context=self.context)
        self.js_pub = self.node.create_publisher(JointState, profile.joints.state_topic, qos("reliable", 10))
        self.img_pub = self.node.create_publisher(Image, robot.camera_topic, qos("best_effort")) \
            if robot.camera_topic else None
        cmd = profile.command
        self.node.create_subscription(COMMAND_TYPES[cmd.interface], cmd.topic, robot.on_command, qos("reliable", 10))
        self.node.create_subscription(Float64MultiArray, profile.topics.reward, robot.on_reward, qos("reliable", 10))
        self.node.create_subscription(String, profile.topics.status, robot.on_status, qos("latched", 20))
        self.node.create_subscription(String, CONTROL_TOPIC, robot.on_control, qos("reliable", 10))
        self.node.create_timer(1.0 / rate_hz, self._publish_joints)
        if self.img_pub is not None:
            self.node.create_timer(1.0 / camera_hz, self._publish_image)

    def _stamp(self) -> tuple[Any, int]:
        stamp = self.node.get_clock().now().to_msg()
        return stamp, stamp.sec * 1_000_000_000 + stamp.nanosec

    def _publish_joints(self) -> None:
        self.robot.publish_joint_state(self._send_joints)

    def _send_joints(self, state: tuple[list[str], list[float], list[float]]) -> int:
        msg = self.JointState()
        msg.header.stamp, ns = self._stamp()
        msg.name, msg.position, msg.velocity = state
        self.js_pub.publish(msg)
        return ns

    def _publish_image(self) -> None:
        frame = self.robot.image()
        if frame is None or self.img_pub is None:
            return
        msg = self.Image()
        msg.header.stamp, ns = self._stamp()
        _fill_image(msg, frame[0])
        self.img_pub.publish(msg)
        self.robot.published_image(ns, frame[1])

    def spin(self, stop: threading.Event) -> None:
        from rclpy.executors import SingleThreadedExecutor

        executor = SingleThreadedExecutor(context=self.context)
        executor.add_node(self.node)
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.05)
        executor.shutdown()

    def close(self) -> None:
        self.node.destroy_node()
        self.context.shutdown()


class Ros1FakeRobotNode:
    """The fake robot as a rospy node (needs a ROS master)."""

    def __init__(self, robot: FakeRobot, rate_hz: float, camera_hz: float) -> None:
        from robo_reward.hardware.ros1 import import_ros1, messages

        self.rospy = rospy = import_ros1()
        m = self.msgs = messages()
        self.robot = robot
        profile = robot.profile
        rospy.init_node("fake_robot", disable_signals=True)
        self.js_pub = rospy.Publisher(profile.joints.state_topic, m["JointState"], queue_size=10, tcp_nodelay=True)
        self.img_pub = rospy.Publisher(robot.camera_topic, m["Image"], queue_size=1, tcp_nodelay=True) \
            if robot.camera_topic else None
        cmd_type = {"float64_multi_array": m["Float64MultiArray"], "joint_trajectory": m["JointTrajectory"]}[
            profile.command.interface]
        rospy.Subscriber(profile.command.topic, cmd_type, robot.on_command, queue_size=10, tcp_nodelay=True)
        rospy.Subscriber(profile.topics.reward, m["Float64MultiArray"], robot.on_reward, queue_size=10)
        rospy.Subscriber(profile.topics.status, m["String"], robot.on_status, queue_size=20)
        rospy.Subscriber(CONTROL_TOPIC, m["String"], robot.on_control, queue_size=10)
        self.timers = [rospy.Timer(rospy.Duration.from_sec(1.0 / rate_hz), lambda _e: self._publish_joints())]
        if self.img_pub is not None:
            self.timers.append(rospy.Timer(rospy.Duration.from_sec(1.0 / camera_hz), lambda _e: self._publish_image()))

    def _stamp(self) -> tuple[Any, int]:
        stamp = self.rospy.Time.now()
        return stamp, int(stamp.to_nsec())

    def _publish_joints(self) -> None:
        self.robot.publish_joint_state(self._send_joints)

    def _send_joints(self, state: tuple[list[str], list[float], list[float]]) -> int:
        msg = self.msgs["JointState"]()
        msg.header.stamp, ns = self._stamp()
        msg.name, msg.position, msg.velocity = state
        self.js_pub.publish(msg)
        return ns

    def _publish_image(self) -> None:
        frame = self.robot.image()
        if frame is None or self.img_pub is None:
            return
        msg = self.msgs["Image"]()
        msg.header.stamp, ns = self._stamp()
        _fill_image(msg, frame[0])
        self.img_pub.publish(msg)
        self.robot.published_image(ns, frame[1])

    def spin(self, stop: threading.Event) -> None:
        while not stop.is_set():
            stop.wait(0.05)

    def close(self) -> None:
        for timer in self.timers:
            timer.shutdown()
            timer.join(timeout=1.0)
        self.rospy.signal_shutdown("fake robot closed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m robo_reward.hardware.fake_robot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robot", required=True, help="robot profile YAML (configs/robots/<name>.yaml)")
    parser.add_argument("--record", help="write what was published and received to this .npz at exit")
    parser.add_argument("--rate", type=float, default=100.0, help="joint state rate, Hz")
    parser.add_argument("--camera-rate", type=float, default=30.0, help="camera rate, Hz")
    parser.add_argument("--encoding", default="bgr8", choices=["rgb8", "bgr8", "mono8"])
    parser.add_argument("--row-padding", type=int, default=4, help="padding bytes per image row (step > width*3)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the initial joint positions")
    parser.add_argument("--middleware", default="ros2", choices=["ros2", "ros1"])
    args = parser.parse_args(argv)
    robot = FakeRobot(load_profile(args.robot), encoding=args.encoding, row_padding=args.row_padding,
                      seed=args.seed)
    node_cls = Ros1FakeRobotNode if args.middleware == "ros1" else Ros2FakeRobotNode
    node = node_cls(robot, args.rate, args.camera_rate)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print("fake robot ready", flush=True)
    try:
        node.spin(stop)
    finally:
        node.close()  # timers stop before the records are written
        if args.record:
            robot.save(args.record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
