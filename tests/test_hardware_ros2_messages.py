"""ROS 2 message construction for every command interface and the reward layout (rclpy messages, no node, no
network traffic)."""

import numpy as np
import pytest

from robo_reward.hardware.convert import command_from_message, image_to_array, make_command

pytest.importorskip("rclpy", reason="ROS 2 Python packages not installed (pip install robo-reward[ros2])")
ros2 = pytest.importorskip("robo_reward.hardware.ros2")


@pytest.mark.parametrize("interface, mode, names", [
    ("float64_multi_array", "velocity", ["a", "b", "c"]),
    ("joint_trajectory", "velocity", ["a", "b", "c"]),
    ("joint_trajectory", "position", ["a", "b", "c"]),
    ("twist", "velocity", ["linear.x", "angular.z", "linear.y"]),
])
def test_commands_round_trip_through_ros_messages(interface, mode, names):
    values = np.array([0.5, -0.25, 1.0])
    msg = ros2.command_message(make_command(values, interface, mode, names, time_from_start=0.05))
    assert isinstance(msg, ros2.COMMAND_TYPES[interface])
    np.testing.assert_array_equal(command_from_message(msg, interface, mode, names), values)
    if interface == "joint_trajectory":
        assert msg.points[0].time_from_start.nanosec == 50_000_000 and list(msg.joint_names) == names
        assert (len(msg.points[0].positions) == 0) == (mode == "velocity")
    if interface == "twist":
        assert msg.linear.z == 0.0 and msg.angular.x == 0.0


def test_reward_message_layout():
    msg = ros2.reward_message(7, -0.5, {"progress": 0.25, "action_cost": -0.75})
    assert msg.layout.dim[0].label == "tick,total,action_cost,progress" and msg.layout.dim[0].size == 4
    assert ros2.parse_reward_message(msg) == (7, -0.5, {"action_cost": -0.75, "progress": 0.25})


def test_real_image_message_converts():
    from sensor_msgs.msg import Image

    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    msg = Image(height=2, width=3, encoding="bgr8", step=11)
    rows = np.zeros((2, 11), np.uint8)
    rows[:, :9] = rgb[:, :, ::-1].reshape(2, 9)
    msg.data = rows.tobytes()
    np.testing.assert_array_equal(image_to_array(msg, (2, 3, 3)), rgb)


def test_qos_profiles():
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    assert ros2.qos("best_effort").reliability == ReliabilityPolicy.BEST_EFFORT and ros2.qos("best_effort").depth == 1
    assert ros2.qos("reliable").reliability == ReliabilityPolicy.RELIABLE
    assert ros2.qos("latched").durability == DurabilityPolicy.TRANSIENT_LOCAL


class _Pub:
    def __init__(self, subscribers: int, acked: bool, calls: list[str], name: str) -> None:
        self.subscribers, self.acked, self.calls, self.topic_name = subscribers, acked, calls, name

    def get_subscription_count(self) -> int:
        return self.subscribers

    def wait_for_all_acked(self, timeout) -> bool:
        self.calls.append(f"ack {self.topic_name} {timeout.nanoseconds / 1e9:g}")
        return self.acked


@pytest.mark.parametrize("acked", [True, False])
def test_close_waits_for_the_robot_to_acknowledge_the_last_command_before_shutting_down(acked, caplog):
    calls: list[str] = []
    transport = ros2.Ros2Transport()
    transport._cmd_pub = _Pub(1, acked, calls, "/cmd")
    transport._status_pub = _Pub(0, acked, calls, "/status")  # nobody listening: nothing to wait for
    transport.context = type("Ctx", (), {"shutdown": lambda self: calls.append("shutdown")})()
    transport._executor = type("Ex", (), {"shutdown": lambda self, timeout_sec: None})()
    transport.node = type("Node", (), {"destroy_node": lambda self: calls.append("destroy")})()
    with caplog.at_level("WARNING", logger="robo_reward.hardware.ros2"):
        transport.close(ack_timeout_s=0.5)
    assert calls == ["ack /cmd 0.5", "shutdown", "destroy"]
    assert ("not acknowledged" in caplog.text) is (not acked)
    transport.close()
    assert calls == ["ack /cmd 0.5", "shutdown", "destroy"]
