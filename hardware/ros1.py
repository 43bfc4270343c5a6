"""ROS 1 transport through rospy (Debian/Ubuntu packages, e.g. ``apt-get install ros-core python3-sensor-msgs
python3-geometry-msgs python3-std-msgs python3-trajectory-msgs python3-std-srvs``, or a Noetic install).

rospy is not on PyPI; it lives in the system's ``dist-packages`` (``ROBO_REWARD_ROS1_PATH`` overrides the default
``/usr/lib/python3/dist-packages``). That folder is appended to ``sys.path`` (so it never shadows the virtualenv's
numpy or yaml), and the ROS 1 message packages, whose names collide with the ROS 2 wheels' (``std_msgs``,
``sensor_msgs``...), are resolved from it by a small import finder. One process therefore speaks one ROS: ROS 1
and ROS 2 message classes cannot be imported side by side.

Same behaviour as :mod:`robo_reward.hardware.ros2`: the newest message per topic with its arrival time (rospy's
own threads run the callbacks), reliable TCPROS for everything (ROS 1 has no best-effort; cameras get a queue of
one), a latched status topic and a ``std_srvs/Trigger`` reset service. Needs a ROS master (``roscore``).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

from robo_reward.hardware.convert import Command
from robo_reward.hardware.profile import RobotProfile
from robo_reward.hardware.transport import Stamped, Transport, reward_labels

ROS1_PATH = os.environ.get("ROBO_REWARD_ROS1_PATH", "/usr/lib/python3/dist-packages")
MESSAGE_PACKAGES = ("std_msgs", "sensor_msgs", "geometry_msgs", "trajectory_msgs", "std_srvs", "rosgraph_msgs")


class _Ros1MessageFinder(importlib.abc.MetaPathFinder):
    """Resolve the ROS 1 message packages from the ROS 1 folder, ahead of same-named ROS 2 wheels."""

    def __init__(self, root: str) -> None:
        self.root = root

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if path is None and fullname in MESSAGE_PACKAGES:
            return importlib.machinery.PathFinder.find_spec(fullname, [self.root])
        return None


def import_ros1() -> ModuleType:
    """Make rospy and the ROS 1 messages importable in this process and return ``rospy``."""
    ros2_loaded = [m for m in MESSAGE_PACKAGES if m in sys.modules
                   and not str(getattr(sys.modules[m], "__file__", "")).startswith(ROS1_PATH)]
    if ros2_loaded:
        raise ImportError(f"ROS 2 message packages {ros2_loaded} are already imported in this process; ROS 1 and "
                          "ROS 2 messages share package names, so use one middleware per process")
    if not any(isinstance(f, _Ros1MessageFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Ros1MessageFinder(ROS1_PATH))
    if ROS1_PATH not in sys.path:
        sys.path.append(ROS1_PATH)
    try:
        import rospy
    except ImportError as exc:
        raise ImportError(f"the ROS 1 backend needs rospy in {ROS1_PATH} ({exc}); on Debian/Ubuntu: apt-get "
                          "install ros-core python3-sensor-msgs python3-geometry-msgs python3-std-msgs "
                          "python3-trajectory-msgs python3-std-srvs (or set ROBO_REWARD_ROS1_PATH)") from exc
    return rospy


def messages() -> dict[str, Any]:
    """The ROS 1 message classes the bridge uses, by short name."""
    import_ros1()
    from geometry_msgs.msg import PoseStamped, Twist
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import Float64MultiArray, MultiArrayDimension, String
    from std_srvs.srv import Trigger, TriggerResponse
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    return dict(PoseStamped=PoseStamped, Twist=Twist, Image=Image, JointState=JointState,
                Float64MultiArray=Float64MultiArray, MultiArrayDimension=MultiArrayDimension, String=String,
                Trigger=Trigger, TriggerResponse=TriggerResponse, JointTrajectory=JointTrajectory,
                JointTrajectoryPoint=JointTrajectoryPoint)


def command_message(command: Command, msgs: Mapping[str, Any], rospy: ModuleType) -> Any:
    """The ROS 1 message for a :class:`Command`."""
    if command.interface == "float64_multi_array":
        return msgs["Float64MultiArray"](data=command.values.tolist())
    if command.interface == "joint_trajectory":
        point = msgs["JointTrajectoryPoint"](time_from_start=rospy.Duration.from_sec(command.time_from_start))
        if command.mode == "velocity":
            point.velocities = command.values.tolist()
        else:
            point.positions = command.values.tolist()
        msg = msgs["JointTrajectory"](joint_names=list(command.names), points=[point])
        msg.header.stamp = rospy.Time.now()
        return msg
    twist = msgs["Twist"]()
    for axis, value in command.twist().items():
        part, comp = axis.split(".")
        setattr(getattr(twist, part), comp, float(value))
    return twist


class Ros1Transport(Transport):
    """The bridge's rospy node (one per process: rospy's limit). See the module docstring.

    :param node_name: the ROS node name.
    """

    def __init__(self, node_name: str = "robo_reward_bridge") -> None:
        self.node_name = node_name
        self._latest: dict[str, Stamped] = {}
        self._lock = threading.Lock()
        self._reset = threading.Event()
        self._handles: list[Any] = []
        self.rospy: Any = None

    def start(self, profile: RobotProfile) -> None:
        self.rospy = rospy = import_ros1()
        self.msgs = msgs = messages()
        rospy.init_node(self.node_name, disable_signals=True)
        types = {"joint_state": msgs["JointState"], "image": msgs["Image"], "pose": msgs["PoseStamped"]}
        topics: dict[str, tuple[Any, int]] = {profile.joints.state_topic: (msgs["JointState"], 5)}
        for key, obs in profile.observations.items():
            topics[profile.topic_of(key)] = (types[obs.source], 1 if obs.qos_policy == "best_effort" else 5)
        for topic, (msg_type, depth) in topics.items():
            self._handles.append(rospy.Subscriber(topic, msg_type, self._store(topic), queue_size=depth,
                                                  tcp_nodelay=True))
        cmd_type = {"float64_multi_array": msgs["Float64MultiArray"], "joint_trajectory": msgs["JointTrajectory"],
                    "twist": msgs["Twist"]}[profile.command.interface]
        self._cmd_pub = rospy.Publisher(profile.command.topic, cmd_type, queue_size=10, tcp_nodelay=True)
        self._reward_pub = rospy.Publisher(profile.topics.reward, msgs["Float64MultiArray"], queue_size=10)
        self._status_pub = rospy.Publisher(profile.topics.status, msgs["String"], queue_size=20, latch=True)
        self._handles += [self._cmd_pub, self._reward_pub, self._status_pub,
                          rospy.Service(profile.topics.reset_service, msgs["Trigger"], self._on_reset)]

    def _store(self, topic: str):  # type: ignore[no-untyped-def]
        def callback(msg: Any) -> None:
            stamped = Stamped(msg, time.monotonic())
            with self._lock:
                self._latest[topic] = stamped
        return callback

    def _on_reset(self, _request: Any) -> Any:
        self._reset.set()
        return self.msgs["TriggerResponse"](
            success=True, message="reset requested: the e-stop clears at the next tick if every observation is "
                                  "fresh and valid (watch the status topic)")

    def latest(self, topic: str) -> Stamped | None:
        with self._lock:
            return self._latest.get(topic)

    def publish_command(self, command: Command) -> None:
        self._cmd_pub.publish(command_message(command, self.msgs, self.rospy))

    def publish_reward(self, tick: int, total: float, terms: Mapping[str, float]) -> None:
        labels = reward_labels(terms)
        msg = self.msgs["Float64MultiArray"](data=[float(tick), float(total), *(float(terms[k]) for k in labels[2:])])
        msg.layout.dim = [self.msgs["MultiArrayDimension"](label=",".join(labels), size=len(labels),
                                                           stride=len(labels))]
        self._reward_pub.publish(msg)

    def publish_status(self, text: str) -> None:
        self._status_pub.publish(self.msgs["String"](data=text))

    def command_subscribers(self) -> int | None:
        return int(self._cmd_pub.get_num_connections())

    def take_reset_request(self) -> bool:
        if self._reset.is_set():
            self._reset.clear()
            return True
        return False

    def close(self) -> None:
        if self.rospy is None:
            return
        for handle in self._handles:
            handle.unregister() if hasattr(handle, "unregister") else handle.shutdown()
        self._handles = []
        self.rospy.signal_shutdown("robo_reward transport closed")
        self.rospy = None
