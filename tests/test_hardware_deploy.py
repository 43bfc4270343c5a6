"""The control loop, the Gymnasium face and run-folder loading over the in-memory transport (no ROS needed)."""

import os
import signal
import threading
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from robo_reward.hardware.bridge import RobotBridge, TickClock, observation_space
from robo_reward.hardware.convert import HeaderData, JointStateData
from robo_reward.hardware.deploy import Deployment
from robo_reward.hardware.env import EStopLatched, RosRobotEnv
from robo_reward.hardware.profile import parse_profile
from robo_reward.hardware.transport import InMemoryTransport
from robo_reward.protocol import TransitionBatch
from robo_reward.registry import make_reward

NAMES = ["a", "b"]
ROBOTS = Path(__file__).parents[1] / "configs" / "robots"
PERIOD = 0.125  # exact in binary, so the watchdog's thresholds are exact too


def profile(**extra):
    data = {
        "name": "t", "control_rate_hz": 1 / PERIOD,
        "joints": {"names": NAMES, "position_lower": -5, "position_upper": 5, "velocity_limit": 1.0},
        "observations": {"joint_pos": {"source": "joint_state"},
                         "joint_vel": {"source": "joint_state", "field": "velocity"}},
        "command": {"interface": "float64_multi_array", "topic": "/c", "scale": 2.0, "max_delta": 0.25},
    }
    data.update(extra)
    return parse_profile(data)


class Rig:
    """An in-memory robot driven tick by tick on a manual clock."""

    def __init__(self, policy, reward=None, prof=None):
        self.now = 0.0
        self.profile = prof or profile()
        self.transport = InMemoryTransport(clock=lambda: self.now)
        self.transport.start(self.profile)
        self.bridge = RobotBridge(self.profile, self.transport, -np.ones(2), np.ones(2), clock=lambda: self.now)
        if reward is not None:
            reward.bind(observation_space(self.profile), gym.spaces.Box(-1, 1, (2,)), 1)
        self.deploy = Deployment(self.bridge, policy, reward, clock=TickClock(PERIOD, clock=lambda: self.now))
        self.q = np.array([0.1, -0.2])
        self.records = []

    def publish(self, **fields):
        msg = dict(name=["b", "x", "a"], position=[self.q[1], 0.0, self.q[0]], velocity=[0.0, 0.0, 0.0])
        msg.update(fields)
        self.transport.push("/joint_states", JointStateData(**msg))

    def run(self, ticks, silent=False, **fields):
        for _ in range(ticks):
            k = len(self.records)
            self.now = k * PERIOD
            if not silent:
                self.publish(**fields)
            self.deploy.clock.index = k
            self.records.append(self.deploy.tick(self.now))
            if self.transport.commands:
                self.q = self.q + self.transport.commands[-1].values * PERIOD
        return self.records[-ticks:]


def test_loop_reorders_filters_and_publishes_reward():
    reward = make_reward("fake_robot_demo", image_key=None, seed=3)
    rig = Rig(lambda obs: np.array([5.0, -0.1]), reward)
    recs = rig.run(8)
    assert all(r["status"] == "running" for r in recs)
    np.testing.assert_allclose(recs[0]["obs"]["joint_pos"], [0.1, -0.2])  # reordered by name, extra joint dropped
    sent = np.array([c.values for c in rig.transport.commands])
    np.testing.assert_allclose(sent[:, 0], [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0])  # ramp, then the limit
    np.testing.assert_allclose(sent[:, 1], -0.2)
    assert [t for t, _, _ in rig.transport.rewards] == list(range(1, 8))  # tick 0 starts the episode
    offline = make_reward("fake_robot_demo", image_key=None, seed=0)
    offline.load_state_dict(reward.state_dict())
    offline.bind(observation_space(rig.profile), gym.spaces.Box(-1, 1, (2,)), 1)
    for k in range(1, 8):
        obs = {key: np.asarray(v)[None] for key, v in recs[k - 1]["obs"].items()}
        nxt = {key: np.asarray(v)[None] for key, v in recs[k]["obs"].items()}
        act = np.asarray(recs[k - 1]["executed_action"])[None]
        out = offline.evaluate(TransitionBatch(obs, act, nxt, np.zeros(1), np.zeros(1, bool), np.zeros(1, bool)))
        _tick, total, terms = rig.transport.rewards[k - 1]
        assert total == pytest.approx(float(out.total[0]), abs=1e-12)
        assert terms["progress"] == pytest.approx(float(out.terms["progress"][0]), abs=1e-12)
        assert terms["action_cost"] == pytest.approx(-0.01 * np.square(act).sum())


def test_watchdog_stops_within_three_periods_and_latches_until_reset():
    rig = Rig(lambda obs: np.array([0.5, 0.5]))
    rig.run(5)
    silent = rig.run(4, silent=True)  # last message at t=0.5; stale once older than 2 periods
    assert [r["status"] for r in silent] == ["running", "running", "estop", "estop"]
    assert silent[2]["t"] - 0.5 <= 3 * PERIOD
    assert "watchdog: joint_pos: last message 375.0 ms ago (limit 250.0 ms)" in rig.transport.statuses[-1]
    assert rig.transport.commands[-1].values.tolist() == [0.0, 0.0]
    back = rig.run(3)  # the robot is back, but the e-stop stays latched
    assert all(r["status"] == "estop" for r in back)
    assert all(c.values.tolist() == [0.0, 0.0] for c in rig.transport.commands[-3:])
    rig.run(3, silent=True)
    rig.transport.request_reset()
    refused = rig.run(1, silent=True)[0]
    assert refused["status"] == "estop" and "last message" in refused["reset"]
    assert rig.transport.statuses[-1].startswith("ESTOP: reset refused: watchdog")
    rig.transport.request_reset()
    resumed = rig.run(2)
    assert resumed[0]["reset"] == "ok" and [r["status"] for r in resumed] == ["running", "running"]
    assert rig.transport.commands[-2].values.tolist() == [0.25, 0.25]  # ramps up from the stop again


@pytest.mark.parametrize("fields, fragment", [
    ({"name": ["b", "x"], "position": [0.0, 0.0], "velocity": [0.0, 0.0]}, "missing joint 'a'"),
    ({"position": [np.nan, 0.0, 0.0]}, "joint 'b' has non-finite position"),
    ({"velocity": [0.0, 0.0]}, "'velocity' has 2 values for 3 joint names"),
])
def test_malformed_messages_stop_with_a_clear_reason(fields, fragment):
    rig = Rig(lambda obs: np.array([0.5, 0.5]))
    rig.run(3)
    rec = rig.run(1, **fields)[0]
    assert rec["status"] == "estop" and fragment in rec["reason"]
    assert rig.transport.statuses[-1].startswith("ESTOP: MessageError") and fragment in rig.transport.statuses[-1]
    assert rig.transport.commands[-1].values.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("policy, fragment", [
    (lambda obs: np.array([np.nan, 0.0]), "non-finite action"),
    (lambda obs: 1 / 0, "ZeroDivisionError"),
])
def test_policy_failures_stop(policy, fragment):
    rig = Rig(policy)
    rec = rig.run(1)[0]
    assert rec["status"] == "estop" and fragment in rec["reason"]
    assert rig.transport.commands[-1].values.tolist() == [0.0, 0.0]
    assert rig.bridge.estop.latched


def test_nan_reward_stops_the_robot():
    reward = make_reward("fake_robot_demo", image_key=None)
    rig = Rig(lambda obs: np.array([0.5, 0.5]), reward)
    rig.run(2)
    with torch.no_grad():
        next(reward.net.parameters()).fill_(float("nan"))
    rec = rig.run(1)[0]
    assert rec["status"] == "estop" and "returned NaN or inf on the robot" in rec["reason"]
    assert rig.transport.commands[-1].values.tolist() == [0.0, 0.0]


def test_position_mode_holds_measured_position_on_stop():
    prof = profile(command={"interface": "float64_multi_array", "topic": "/c", "mode": "position",
                            "max_delta": 0.05})
    rig = Rig(lambda obs: np.array([1.0, 1.0]), prof=prof)
    rig.run(2)
    np.testing.assert_allclose(rig.transport.commands[0].values, [0.15, -0.15])  # from the measured position
    rig.run(4, silent=True)
    np.testing.assert_allclose(rig.transport.commands[-1].values, rig.records[1]["obs"]["joint_pos"])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_ends_loop_with_a_stop_command(sig):
    transport = InMemoryTransport()
    prof = profile(control_rate_hz=100)
    transport.start(prof)
    bridge = RobotBridge(prof, transport, -np.ones(2), np.ones(2))
    done = threading.Event()

    def feed():
        while not done.is_set():
            transport.push("/joint_states", JointStateData(name=NAMES, position=[0.0, 0.0], velocity=[0.0, 0.0]))
            time.sleep(0.002)

    threading.Thread(target=feed, daemon=True).start()
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    threading.Timer(0.3, lambda: os.kill(os.getpid(), sig)).start()
    try:
        summary = Deployment(bridge, lambda obs: np.array([0.3, 0.3])).run(duration=10)
    finally:
        done.set()
    assert summary.stopped_by == sig.name and summary.commands > 5
    assert transport.commands[-1].values.tolist() == [0.0, 0.0]
    assert transport.commands[-2].values.tolist() != [0.0, 0.0]
    assert transport.statuses[-1] == f"stopped: {sig.name}"
    assert {s: signal.getsignal(s) for s in before} == before  # the caller's handlers are back


class _FeedingTransport(InMemoryTransport):
    """Publishes a fresh joint state whenever the bridge looks (a robot that always answers)."""

    def latest(self, topic):
        self.push(topic, JointStateData(name=NAMES, position=[0.2, 0.1], velocity=[0.0, 0.0]))
        return super().latest(topic)


def test_ros_robot_env_steps_at_the_control_rate():
    transport = _FeedingTransport()
    env = RosRobotEnv(profile(control_rate_hz=200), transport=transport,
                      reward=make_reward("fake_robot_demo", image_key=None))
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"joint_pos", "joint_vel"} and obs in env.observation_space
    t0 = time.monotonic()
    for _ in range(10):
        obs, _, terminated, truncated, info = env.step(np.array([1.0, -1.0]))
    assert time.monotonic() - t0 >= 9 * 0.005
    assert not terminated and not truncated and {"reward/progress", "reward/action_cost"} <= set(info)
    assert transport.commands[-1].values.tolist() == [1.0, -1.0]
    obs, _, terminated, truncated, info = env.step(np.array([np.nan, 0.0]))
    assert truncated and not terminated and "non-finite action" in info["estop"]
    assert transport.commands[-1].values.tolist() == [0.0, 0.0]
    with pytest.raises(EStopLatched):
        env.step(np.zeros(2))
    with pytest.raises(EStopLatched, match="clear_estop"):
        env.reset()
    env.reset(options={"clear_estop": True})
    env.close()
    assert transport.commands[-1].values.tolist() == [0.0, 0.0]


def _deploy_args(run_dir, robot, **kw):
    import argparse

    base = dict(run_dir=run_dir, robot=robot, policy=None, reward=None, log=None, duration=None, max_ticks=None,
                wait=1.0, stochastic=False, torch_threads=1, middleware="ros2")
    base.update(kw)
    return argparse.Namespace(**base)


@pytest.fixture(scope="module")
def train_layout(tmp_path_factory):
    """A run folder laid out as ``robo-reward train`` writes it: checkpoints/latest -> step_N/{agent.zip,reward.pt}."""
    import yaml

    from robo_reward.hardware.demo import make_demo_run

    root = tmp_path_factory.mktemp("run")
    data = yaml.safe_load((ROBOTS / "fake_arm7.yaml").read_text())
    (root / "robot.yaml").write_text(yaml.safe_dump(data))
    make_demo_run(root / "run" / "checkpoints" / "step_64", parse_profile(data), seed=1)
    (root / "run" / "checkpoints" / "latest").write_text("step_64")
    return root


def test_build_deployment_from_a_train_run_folder(train_layout):
    from robo_reward.hardware.cli import build_deployment
    from robo_reward.hardware.policy import SB3Policy

    dep = build_deployment(_deploy_args(train_layout / "run", train_layout / "robot.yaml"), InMemoryTransport())
    assert isinstance(dep.policy, SB3Policy) and dep.policy.path.parent.name == "step_64"
    assert dep.reward is not None and dep.reward.name == "fake_robot_demo" and dep.reward.gamma == 0.99
    obs = observation_space(dep.bridge.profile).sample()
    action = dep.policy(obs)
    assert action.shape == (7,) and np.abs(action).max() <= 1.0
    assert np.array_equal(action, dep.policy(obs))  # deterministic


def test_build_deployment_names_what_does_not_fit(train_layout, tmp_path):
    import yaml

    from robo_reward.hardware.cli import build_deployment
    from robo_reward.hardware.policy import RunFolderError

    data = yaml.safe_load((train_layout / "robot.yaml").read_text())
    data["observations"]["image"]["shape"] = [64, 64, 3]
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(RunFolderError, match=r"observation 'image': the policy expects shape \(3, 84, 84\)"):
        build_deployment(_deploy_args(train_layout / "run", tmp_path / "small.yaml"), InMemoryTransport())
    del data["observations"]["joint_vel"]
    data["observations"]["image"]["shape"] = [84, 84, 3]
    (tmp_path / "novel.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(RunFolderError, match=r"keys \['image', 'joint_pos', 'joint_vel'\] but the robot profile"):
        build_deployment(_deploy_args(train_layout / "run", tmp_path / "novel.yaml"), InMemoryTransport())
    with pytest.raises(RunFolderError, match="no policy checkpoint"):
        build_deployment(_deploy_args(tmp_path, train_layout / "robot.yaml"), InMemoryTransport())
    with pytest.raises(FileNotFoundError, match=r"nope\.pt does not exist"):
        build_deployment(_deploy_args(train_layout / "run", train_layout / "robot.yaml", reward=str(tmp_path / "nope.pt")),
                         InMemoryTransport())


def test_waits_for_the_robot_and_names_missing_topics():
    transport = InMemoryTransport()
    prof = profile(control_rate_hz=100)
    transport.start(prof)
    bridge = RobotBridge(prof, transport, -np.ones(2), np.ones(2))
    with pytest.raises(TimeoutError, match=r"joint_pos: no message received yet.*\['/joint_states'\]"):
        Deployment(bridge, lambda obs: np.zeros(2)).run(wait_ready=0.1)
    assert transport.commands == []
    dep = Deployment(bridge, lambda obs: np.zeros(2))
    threading.Timer(0.1, lambda: dep.request_stop("SIGINT")).start()
    summary = dep.run(wait_ready=5.0)
    assert summary.stopped_by == "SIGINT (before the robot was ready)" and summary.ticks == 0


class _RacingTransport(InMemoryTransport):
    """A new joint state lands between any two reads, as it can with a middleware's callback threads."""

    count = 0

    def latest(self, topic):
        self.count += 1
        k = float(self.count)
        self.push(topic, JointStateData(name=NAMES, position=[k, -k], velocity=[k, -k],
                                                  header=HeaderData(stamp_ns=self.count)))
        return super().latest(topic)


def test_snapshot_takes_keys_that_share_a_message_from_one_message():
    """joint_pos and joint_vel come from one JointState: a snapshot must not tear them across two messages."""
    transport = _RacingTransport()
    bridge = RobotBridge(profile(), transport, -np.ones(2), np.ones(2), clock=transport.clock)
    snap = bridge.snapshot()
    np.testing.assert_array_equal(snap.obs["joint_pos"], snap.obs["joint_vel"])
    np.testing.assert_array_equal(snap.measured_position, snap.obs["joint_pos"])
    assert snap.stamps["joint_pos"] == snap.stamps["joint_vel"]
