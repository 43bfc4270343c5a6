"""Run ROS 2 processes safely in tests and benchmarks: a loopback-only network namespace and a scenario runner.

DDS discovery multicasts on the machine's real interfaces by default. Every rclpy process of a test or benchmark
runs inside a fresh network namespace that has only ``lo`` (with multicast routed to it), so no packet can leave
the machine (specs/hardware.md)::

    unshare --net bash -c 'ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo && CMD'

:func:`run_scenario` (``python -m robo_reward.hardware.testing deploy``) is what a test runs inside that namespace: it
starts the fake robot and ``deploy`` as separate processes, plays an operator timeline (tell the robot to go
silent or send malformed messages, request e-stop resets), stops the deployment with a signal, and leaves the
robot's recording, the deployment log and the operator's timeline in one folder for the test to check.
:func:`run_env_scenario` (``... testing env``) does the same for :class:`~robo_reward.hardware.env.RosRobotEnv`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

NETNS_SETUP = "ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo"


def loopback_command(argv: list[str]) -> list[str]:
    """``argv`` wrapped to run in a new loopback-only network namespace."""
    return ["unshare", "--net", "bash", "-c", f"{NETNS_SETUP} && exec {shlex.join(argv)}"]


def network_interfaces() -> list[str]:
    """Interfaces of this process's network namespace (``/proc/self/net/dev``; ``/sys/class/net`` shows the
    namespace that mounted ``/sys``, not ours)."""
    with open("/proc/self/net/dev") as fh:
        return sorted(line.split(":")[0].strip() for line in fh.readlines()[2:])


def only_loopback() -> bool:
    """True inside a network namespace whose only interface is ``lo``."""
    return network_interfaces() == ["lo"]


@lru_cache(maxsize=2)
def ros_unavailable_reason(middleware: str = "ros2") -> str | None:
    """Why ROS tests cannot run here (None if they can): the client library is missing, or no loopback-only
    namespace can be made. ROS 1 is probed in a subprocess (its messages would shadow ROS 2's in this one)."""
    if middleware == "ros2":
        missing = [m for m in ("rclpy", "sensor_msgs", "std_msgs", "std_srvs", "trajectory_msgs", "geometry_msgs")
                   if importlib.util.find_spec(m) is None]
        if missing:
            return f"ROS 2 Python packages {missing} are not installed (pip install robo-reward[ros2])"
    else:
        if shutil.which("roscore") is None:
            return "ROS 1 is not installed: no `roscore` (apt-get install ros-core python3-sensor-msgs ...)"
        probe = subprocess.run([sys.executable, "-c", "from robo_reward.hardware.ros1 import messages; messages()"],
                               capture_output=True, text=True, timeout=60)
        if probe.returncode != 0:
            return f"ROS 1 Python packages do not import: {probe.stderr.strip().splitlines()[-1:]}"
    for tool, pkg in (("unshare", "util-linux"), ("ip", "iproute2")):
        if shutil.which(tool) is None:
            return f"`{tool}` is not on PATH (apt-get install {pkg}); it is needed for a loopback-only namespace"
    probe = subprocess.run(loopback_command(["cat", "/proc/self/net/dev"]), capture_output=True, text=True,
                           timeout=20)
    names = [line.split(":")[0].strip() for line in probe.stdout.splitlines()[2:]]
    if probe.returncode != 0 or names != ["lo"]:
        return ("cannot create a loopback-only network namespace (needs root or user namespaces): "
                f"{probe.stderr.strip() or probe.stdout.strip()}")
    return None


def require_loopback() -> None:
    """Refuse to start DDS traffic outside a loopback-only namespace (the harness's own guard)."""
    if not only_loopback():
        raise RuntimeError(f"refusing to run ROS test processes with network interfaces {network_interfaces()}"
                           "; run this inside loopback_command([...]) so DDS stays on loopback")


# ----------------------------------------------------------------------------------------------------------------
# The operator and the scenario runner (inside the namespace)


class Operator:
    """An rclpy node that plays the operator: controls the fake robot and asks the bridge to reset its e-stop."""

    def __init__(self, reset_service: str, status_topic: str) -> None:
        import rclpy
        from rclpy.signals import SignalHandlerOptions
        from std_msgs.msg import String
        from std_srvs.srv import Trigger

        from robo_reward.hardware.fake_robot import CONTROL_TOPIC
        from robo_reward.hardware.ros2 import qos

        self.context = rclpy.Context()
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node("operator", context=self.context)
        self.String, self.Trigger = String, Trigger
        self.control = self.node.create_publisher(String, CONTROL_TOPIC, qos("reliable", 10))
        self.reset_client = self.node.create_client(Trigger, reset_service)
        self.statuses: list[tuple[float, str]] = []
        self.node.create_subscription(String, status_topic,
                                      lambda m: self.statuses.append((time.monotonic(), m.data)),
                                      qos("latched", 20))
        from rclpy.executors import SingleThreadedExecutor

        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.executor.spin_once(timeout_sec=min(left, 0.01))

    def wait_for_status(self, prefix: str, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(text.startswith(prefix) for _, text in self.statuses):
                return True
            self.spin_for(0.01)
        return False

    def send_control(self, text: str) -> None:
        self.control.publish(self.String(data=text))

    def reset_estop(self, timeout: float = 2.0) -> str:
        if not self.reset_client.wait_for_service(timeout_sec=timeout):
            return "reset service not available"
        future = self.reset_client.call_async(self.Trigger.Request())
        end = time.monotonic() + timeout
        while not future.done() and time.monotonic() < end:
            self.spin_for(0.01)
        return future.result().message if future.done() else "reset call timed out"

    def close(self) -> None:
        self.node.destroy_node()
        self.context.shutdown()


class Ros1Operator(Operator):
    """The operator as a rospy node (same methods as :class:`Operator`)."""

    def __init__(self, reset_service: str, status_topic: str) -> None:
        from robo_reward.hardware.fake_robot import CONTROL_TOPIC
        from robo_reward.hardware.ros1 import import_ros1, messages

        self.rospy = rospy = import_ros1()
        self.msgs = messages()
        rospy.init_node("operator", disable_signals=True)
        self.control = rospy.Publisher(CONTROL_TOPIC, self.msgs["String"], queue_size=10, latch=False)
        self.reset_service = reset_service
        self.statuses = []
        rospy.Subscriber(status_topic, self.msgs["String"],
                         lambda m: self.statuses.append((time.monotonic(), m.data)), queue_size=20)

    def spin_for(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    def send_control(self, text: str) -> None:
        self.control.publish(self.msgs["String"](data=text))

    def reset_estop(self, timeout: float = 2.0) -> str:
        try:
            self.rospy.wait_for_service(self.reset_service, timeout=timeout)
            return str(self.rospy.ServiceProxy(self.reset_service, self.msgs["Trigger"])().message)
        except Exception as exc:
            return f"reset call failed: {exc}"

    def close(self) -> None:
        self.rospy.signal_shutdown("operator done")


def start_roscore(out_dir: Path, timeout: float = 30.0) -> subprocess.Popen[str]:
    """Start a ROS master on localhost:11311 (inside the namespace) and wait until it answers."""
    os.environ.update(ROS_MASTER_URI="http://localhost:11311", ROS_HOSTNAME="localhost")
    core = _start(["roscore", "-p", "11311"], out_dir / "roscore.log")
    from robo_reward.hardware.ros1 import import_ros1

    import_ros1()
    import rosgraph

    end = time.monotonic() + timeout
    while not rosgraph.is_master_online():
        if core.poll() is not None or time.monotonic() > end:
            raise RuntimeError(f"roscore did not start:\n{(out_dir / 'roscore.log').read_text()}")
        time.sleep(0.1)
    return core


def _start(argv: list[str], log: Path) -> subprocess.Popen[str]:
    fh = log.open("w")
    return subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, text=True)


def _wait_for_line(log: Path, text: str, proc: subprocess.Popen[str], timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if text in log.read_text():
            return
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited ({proc.returncode}) before '{text}':\n{log.read_text()}")
        time.sleep(0.02)
    raise TimeoutError(f"no '{text}' from {proc.args!r} within {timeout} s:\n{log.read_text()}")


def run_scenario(run_dir: str, robot: str, out: str, timeline: list[list[Any]], *, stop_signal: str = "SIGTERM",
                 robot_args: list[str] | None = None, deploy_args: list[str] | None = None,
                 middleware: str = "ros2") -> dict[str, Any]:
    """Fake robot + ``deploy`` + an operator timeline; returns (and writes ``out/operator.json``) what happened.

    ``timeline`` holds ``[seconds_after_start, action]`` with action ``control:<text>`` (to the fake robot) or
    ``reset`` (the e-stop reset service); the deployment is stopped with ``stop_signal`` after the last entry.
    ``middleware="ros1"`` starts a ROS master first and runs every node with rospy.
    """
    require_loopback()
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    core = start_roscore(out_dir) if middleware == "ros1" else None
    fake = _start([py, "-m", "robo_reward.hardware.fake_robot", "--robot", robot, "--record",
                   str(out_dir / "robot.npz"), "--middleware", middleware, *(robot_args or [])],
                  out_dir / "robot.log")
    deploy = None
    operator = None
    events: list[tuple[float, str, str]] = []
    try:
        _wait_for_line(out_dir / "robot.log", "fake robot ready", fake, 60)
        from robo_reward.hardware.profile import load_profile

        profile = load_profile(robot)
        operator = (Ros1Operator if middleware == "ros1" else Operator)(profile.topics.reset_service,
                                                                        profile.topics.status)
        deploy = _start([py, "-m", "robo_reward.hardware.cli", "deploy", run_dir, "--robot", robot,
                         "--log", str(out_dir / "deploy.jsonl"), "--middleware", middleware, *(deploy_args or [])],
                        out_dir / "deploy.log")
        if not operator.wait_for_status("running: deployment started", 120):
            raise TimeoutError(f"deploy never started:\n{(out_dir / 'deploy.log').read_text()}")
        t0 = time.monotonic()
        events.append((t0, "start", ""))
        for at, action in timeline:
            operator.spin_for(max(0.0, t0 + float(at) - time.monotonic()))
            now = time.monotonic()
            if action.startswith("control:"):
                operator.send_control(action.removeprefix("control:"))
                events.append((now, action, ""))
            elif action == "reset":
                events.append((now, action, operator.reset_estop()))
            else:
                raise ValueError(f"unknown timeline action {action!r}; use control:<text> or reset")
        events.append((time.monotonic(), "signal", stop_signal))
        deploy.send_signal(getattr(signal, stop_signal))
        deploy.wait(timeout=20)
        operator.spin_for(0.2)
    finally:
        for proc in (deploy, fake, core):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if operator is not None:
            operator.close()
    result = {"events": events, "statuses": operator.statuses if operator else [],
              "deploy_returncode": deploy.returncode if deploy else None, "robot_returncode": fake.returncode}
    (out_dir / "operator.json").write_text(json.dumps(result))
    return result


def run_env_scenario(robot: str, out: str, steps: int, action: list[float],
                     robot_args: list[str] | None = None, middleware: str = "ros2") -> dict[str, Any]:
    """Fake robot + :class:`~robo_reward.hardware.env.RosRobotEnv` in this process: reset, ``steps`` steps of a
    constant ``action``, close; writes ``out/env.json`` (observations, infos, step times) and ``out/robot.npz``."""
    import numpy as np

    from robo_reward.hardware.env import RosRobotEnv

    require_loopback()
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    core = start_roscore(out_dir) if middleware == "ros1" else None
    fake = _start([sys.executable, "-m", "robo_reward.hardware.fake_robot", "--robot", robot, "--record",
                   str(out_dir / "robot.npz"), "--middleware", middleware, *(robot_args or [])],
                  out_dir / "robot.log")
    record: dict[str, Any] = {"obs": [], "stamps": [], "command": [], "executed_action": [], "t": []}
    try:
        _wait_for_line(out_dir / "robot.log", "fake robot ready", fake, 60)
        env = RosRobotEnv(robot, middleware=middleware)
        try:
            obs, info = env.reset(seed=0)
            record["obs"].append(np.asarray(obs).tolist())
            record["stamps"].append(info["stamps"])
            record["t"].append(time.monotonic())
            for _ in range(steps):
                obs, _, terminated, truncated, info = env.step(np.asarray(action))
                record["t"].append(time.monotonic())
                if terminated or truncated:
                    record["ended"] = info.get("estop", "terminated")
                    break
                record["obs"].append(np.asarray(obs).tolist())
                record["stamps"].append(info["stamps"])
                record["command"].append(info["command"].tolist())
                record["executed_action"].append(info["executed_action"].tolist())
        finally:
            env.close()
        time.sleep(0.3)
    finally:
        for proc in (fake, core):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=20)
    (out_dir / "env.json").write_text(json.dumps(record))
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m robo_reward.hardware.testing", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    dep = sub.add_parser("deploy", help="fake robot + deploy + operator timeline")
    dep.add_argument("run_dir")
    dep.add_argument("--timeline", default="[]", help='JSON list of [seconds, action], e.g. [[1.0, "reset"]]')
    dep.add_argument("--stop-signal", default="SIGTERM", choices=["SIGINT", "SIGTERM"])
    dep.add_argument("--deploy-args", default="", help="extra deploy arguments (one shell-quoted string)")
    dep.add_argument("--middleware", default="ros2", choices=["ros2", "ros1"])
    env = sub.add_parser("env", help="fake robot + RosRobotEnv stepping a constant action")
    env.add_argument("--steps", type=int, default=20)
    env.add_argument("--action", default="[]", help="JSON list, the constant action")
    env.add_argument("--middleware", default="ros2", choices=["ros2", "ros1"])
    for p in (dep, env):
        p.add_argument("--robot", required=True)
        p.add_argument("--out", required=True)
        p.add_argument("--robot-args", default="", help="extra fake robot arguments (one shell-quoted string)")
    args = parser.parse_args(argv)
    if args.what == "deploy":
        run_scenario(args.run_dir, args.robot, args.out, json.loads(args.timeline), stop_signal=args.stop_signal,
                     robot_args=shlex.split(args.robot_args), deploy_args=shlex.split(args.deploy_args),
                     middleware=args.middleware)
    else:
        run_env_scenario(args.robot, args.out, args.steps, json.loads(args.action), shlex.split(args.robot_args),
                         middleware=args.middleware)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
