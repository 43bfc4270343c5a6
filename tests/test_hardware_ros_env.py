"""RosRobotEnv over real ROS 2 (and ROS 1 where installed): a JointTrajectory position-controlled arm, stepped at
its control rate.

The fake robot and the env run as two processes in a loopback-only network namespace; the env steps a constant
action and the test checks what the robot received against what ``step`` reported.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from robo_reward.hardware.testing import loopback_command, ros_unavailable_reason

pytestmark = [pytest.mark.ros, pytest.mark.slow]

RATE, STEPS, MAX_DELTA = 10.0, 15, 0.05
ACTION = [1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 0.0]


@pytest.fixture(scope="module", params=["ros2", "ros1"])
def run(request, tmp_path_factory):
    middleware = request.param
    reason = ros_unavailable_reason(middleware)
    if reason:
        pytest.skip(f"{middleware} scenario skipped: {reason}")
    root = tmp_path_factory.mktemp(f"env_{middleware}")
    data = yaml.safe_load((Path(__file__).parents[1] / "configs/robots/fake_arm7.yaml").read_text())
    data.update(control_rate_hz=RATE, observation_layout="concat",
                observations={"joint_pos": {"source": "joint_state", "field": "position"}},
                command={"interface": "joint_trajectory", "topic": "/arm_controller/joint_trajectory",
                         "mode": "position", "scale": 0.5, "max_delta": MAX_DELTA})
    (root / "robot.yaml").write_text(yaml.safe_dump(data))
    cmd = loopback_command([sys.executable, "-m", "robo_reward.hardware.testing", "env", "--robot",
                            str(root / "robot.yaml"), "--out", str(root / "out"), "--steps", str(STEPS),
                            "--action", json.dumps(ACTION), "--middleware", middleware])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((root / "out/env.json").read_text()), dict(np.load(root / "out/robot.npz")), data


def test_steps_report_what_the_robot_received(run):
    env, robot, _ = run
    assert "ended" not in env and len(env["command"]) == STEPS
    received = robot["cmd_values"]
    # reset() sends a hold before the first step, which a robot still discovering the env may miss
    assert len(received) in (STEPS + 1, STEPS + 2)
    np.testing.assert_allclose(received[-STEPS - 1:-1], env["command"], atol=1e-12)


def test_observations_are_the_robots_state_in_profile_order(run):
    env, robot, _ = run
    by_stamp = {int(s): i for i, s in enumerate(robot["js_stamp"])}
    for obs, stamps in zip(env["obs"], env["stamps"], strict=True):
        np.testing.assert_array_equal(obs, robot["js_pos"][by_stamp[stamps["joint_pos"]]])


def test_position_commands_ramp_from_the_measured_position(run):
    env, robot, profile = run
    lo, hi = np.array(profile["joints"]["position_lower"]), np.array(profile["joints"]["position_upper"])
    target = np.clip(0.5 * np.array(ACTION), lo, hi)
    expected, previous = [], np.asarray(env["obs"][0])
    for _ in range(STEPS):
        previous = np.clip(previous + np.clip(target - previous, -MAX_DELTA, MAX_DELTA), lo, hi)
        expected.append(previous)
    np.testing.assert_allclose(env["command"], expected, atol=1e-12)
    assert np.abs(np.diff(env["command"], axis=0)).max() == pytest.approx(MAX_DELTA)
    np.testing.assert_allclose(robot["cmd_values"][-1], env["obs"][-1], atol=1e-12)  # close() holds


def test_step_waits_for_the_next_control_tick(run):
    env, _, _ = run
    dt = np.diff(env["t"][1:])
    assert abs(np.median(dt) - 1 / RATE) < 0.01, dt
