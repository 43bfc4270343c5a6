"""From ``robo-reward train`` to ``deploy``: a real run folder (PPO + a shaped reward, saved by the core) loads into
the bridge, and the reward published on the robot equals the core reward's own evaluation of the same transitions.
"""

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

from robo_reward.checkpoint import load_reward_state
from robo_reward.cli import main
from robo_reward.config import load_config
from robo_reward.hardware.cli import add_command
from robo_reward.hardware.convert import JointStateData
from robo_reward.hardware.transport import InMemoryTransport
from robo_reward.protocol import TransitionBatch
from robo_reward.runner import build_design

CONFIG = {  # MountainCarContinuous: obs (position, velocity), one action, like a one-joint robot
    "name": "car",
    "env": {"id": "MountainCarContinuous-v0", "n_envs": 1},
    "reward": {"terms": [{"name": "goal_distance", "delta": [0], "weight": 0.5}]},
    "agent": {"algo": "PPO", "kwargs": {"n_steps": 64, "batch_size": 64, "n_epochs": 1}},
    "budget": {"total_timesteps": 128, "checkpoint_every": 64},
    "eval": {"every": 128, "episodes": 1, "metric": "return"},
    "logging": {"progress": False},
}
ROBOT = {
    "name": "one_joint", "control_rate_hz": 8,
    "joints": {"names": ["slider"], "position_lower": -1.2, "position_upper": 0.6, "velocity_limit": 0.07},
    "observations": {"pos": {"source": "joint_state", "field": "position"},
                     "vel": {"source": "joint_state", "field": "velocity"}},
    "observation_layout": "concat",
    "command": {"interface": "float64_multi_array", "topic": "/slider/commands", "scale": 0.07},
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    (root / "car.yaml").write_text(yaml.safe_dump(CONFIG))
    (root / "robot.yaml").write_text(yaml.safe_dump(ROBOT))
    assert main(["train", str(root / "car.yaml"), "--run-dir", str(root / "run"), "--no-progress"]) == 0
    return root


def test_deploy_runs_a_trained_run_and_publishes_the_core_reward(run_dir):
    import argparse

    parser = argparse.ArgumentParser()
    add_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["deploy", str(run_dir / "run"), "--robot", str(run_dir / "robot.yaml")])
    transport = InMemoryTransport()
    from robo_reward.hardware.cli import build_deployment

    dep = build_deployment(args, transport)
    latest = (run_dir / "run" / "checkpoints" / "latest").read_text()
    assert dep.policy.path == Path(run_dir / "run" / "checkpoints" / latest / "agent.zip")
    states = [(-0.5 + 0.01 * k, 0.001 * k) for k in range(6)]
    records = []
    for k, (x, v) in enumerate(states):
        transport.push("/joint_states", JointStateData(name=["slider"], position=[x], velocity=[v]))
        dep.clock.index = k
        records.append(dep.tick(transport.clock()))
    assert all(r["status"] == "running" for r in records)
    reward = build_design(load_config(run_dir / "run" / "config.yaml").reward)  # the core's resume route
    reward.bind(gym.spaces.Box(-np.inf, np.inf, (2,)), gym.spaces.Box(-1, 1, (1,)), 1)
    load_reward_state(reward, run_dir / "run" / "checkpoints" / latest / "reward.pt")
    reward.reset(np.array([states[0]]), np.ones(1, bool))
    for k in range(1, len(states)):
        batch = TransitionBatch(np.array([states[k - 1]]), np.asarray(records[k - 1]["executed_action"])[None],
                                np.array([states[k]]), np.zeros(1), np.zeros(1, bool), np.zeros(1, bool))
        out = reward.evaluate(batch)
        tick, total, terms = transport.rewards[k - 1]
        assert tick == k and total == pytest.approx(float(out.total[0]), abs=1e-12)
        assert terms == pytest.approx({name: float(v[0]) for name, v in out.terms.items()}, abs=1e-12)
