"""Where ROS or the namespace tools are missing, the ROS tests skip with a reason that says what to install."""

import importlib.util
import shutil

import pytest

from robo_reward.hardware import testing


@pytest.fixture(autouse=True)
def _fresh_cache():
    testing.ros_unavailable_reason.cache_clear()
    yield
    testing.ros_unavailable_reason.cache_clear()


def test_missing_rclpy_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "rclpy" else real(name, *a))
    reason = testing.ros_unavailable_reason("ros2")
    assert "['rclpy']" in reason and "pip install robo-reward[ros2]" in reason


def test_missing_tools_name_the_package(monkeypatch):
    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda tool: None if tool in ("ip", "roscore") else real(tool))
    if importlib.util.find_spec("rclpy") is not None:  # else the reason names rclpy first
        assert "apt-get install iproute2" in testing.ros_unavailable_reason("ros2")
    assert "no `roscore`" in testing.ros_unavailable_reason("ros1")


def test_refuses_to_run_outside_a_loopback_namespace():
    if testing.only_loopback():
        pytest.skip("this process already runs in a loopback-only namespace")
    with pytest.raises(RuntimeError, match="refusing to run ROS test processes"):
        testing.require_loopback()
