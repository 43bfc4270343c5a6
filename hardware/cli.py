"""``robo-reward deploy RUN_DIR --robot configs/robots/<name>.yaml``: run a trained policy on a robot.

Plugged into the core CLI through the ``robo_reward.commands`` entry-point group (:func:`add_command`); also runs
alone as ``python -m robo_reward.hardware.cli deploy ...``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``deploy`` subcommand to the core CLI."""
    p = subparsers.add_parser(
        "deploy", help="run a trained policy and its learned reward on a robot over ROS 2",
        description="Run the policy (and learned reward) of a run folder on a robot described by a robot profile, "
                    "at the profile's control rate, behind the safety layer. Stop with Ctrl-C or SIGTERM; the "
                    "robot gets a stop command on the way out.")
    p.add_argument("run_dir", type=Path, help="run folder written by `robo-reward train`")
    p.add_argument("--robot", required=True, type=Path, help="robot profile YAML (configs/robots/<name>.yaml)")
    p.add_argument("--policy", type=Path, help="SB3 zip to use instead of the run folder's model")
    p.add_argument("--reward", help="reward checkpoint instead of RUN_DIR/reward.pt, or 'none' to publish no reward")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the run's config.yaml when rebuilding its reward "
                        "(e.g. reward.terms.0.weight=0.5)")
    p.add_argument("--log", type=Path, help="write one JSON line per control tick here")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--max-ticks", type=int, help="stop after this many control ticks")
    p.add_argument("--wait", type=float, default=10.0, help="seconds to wait for the robot's first observations")
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of the deterministic action")
    p.add_argument("--middleware", choices=["ros2", "ros1"], default="ros2",
                   help="ROS 2 through rclpy (the ros2 extra) or ROS 1 through the system's rospy")
    p.add_argument("--torch-threads", type=int, default=1,
                   help="torch threads for inference (1 is fastest for one observation and keeps jitter low)")
    p.set_defaults(func=run_deploy)


def build_deployment(args: argparse.Namespace, transport: Any = None) -> Any:
    """Load the profile, policy and reward, check they fit, and return a ready :class:`Deployment`."""
    import torch

    from robo_reward.errors import RunFolderError, UserError
    from robo_reward.hardware.bridge import RobotBridge, observation_space
    from robo_reward.hardware.deploy import DeployLog, Deployment
    from robo_reward.hardware.policy import (
        SB3Policy,
        check_policy_fits,
        find_policy_file,
        find_reward_file,
        load_run_reward,
    )
    from robo_reward.hardware.profile import load_profile

    torch.set_num_threads(args.torch_threads)
    profile = load_profile(args.robot)
    run_dir = Path(args.run_dir)
    policy = SB3Policy(args.policy or find_policy_file(run_dir), deterministic=not args.stochastic)
    robot_obs = observation_space(profile)
    check_policy_fits(policy.observation_space, robot_obs)
    if policy.action_space.shape != (profile.action_dim,):
        raise UserError(f"the policy's action space {policy.action_space} does not match the robot profile's "
                         f"{profile.action_dim} command values ({profile.command.interface})")
    reward = None
    reward_path = None if args.reward == "none" else (Path(args.reward) if args.reward else find_reward_file(run_dir))
    if reward_path is not None:
        if not reward_path.is_file():
            raise RunFolderError(f"reward checkpoint {reward_path} does not exist; pass --reward PATH, or --reward "
                                 "none to deploy without a learned reward")
        overrides = getattr(args, "set", [])
        if overrides and not (run_dir / "config.yaml").is_file():
            raise UserError(f"--set overrides the run's config.yaml, but {run_dir} has none; drop --set")
        reward = load_run_reward(run_dir, reward_path, robot_obs, policy.action_space, policy.gamma,
                                 overrides=overrides)
    elif args.reward != "none":
        print(f"no reward.pt beside the policy in {run_dir}: deploying without a learned reward", file=sys.stderr)
    if transport is None:
        from robo_reward.hardware.transport import make_transport

        try:
            transport = make_transport(args.middleware)
        except ImportError as exc:
            raise UserError(f"--middleware {args.middleware}: {exc}") from exc
    transport.start(profile)
    bridge = RobotBridge(profile, transport, policy.action_space.low, policy.action_space.high)
    log = DeployLog(args.log) if args.log else None
    return Deployment(bridge, policy, reward, log=log)


def run_deploy(args: argparse.Namespace) -> int:
    """Build the deployment and run it; a run folder, profile or policy that does not fit is a
    :class:`~robo_reward.errors.UserError` (the CLI prints it and exits 2)."""
    from robo_reward.errors import UserError
    from robo_reward.hardware.policy import RunFolderError
    from robo_reward.hardware.profile import ProfileError

    try:
        deployment = build_deployment(args)
    except (RunFolderError, ProfileError) as exc:
        raise UserError(str(exc)) from exc
    try:
        summary = deployment.run(max_ticks=args.max_ticks, duration=args.duration, wait_ready=args.wait)
    finally:
        deployment.bridge.transport.close()
    print(json.dumps(summary.__dict__), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m robo_reward.hardware.cli deploy ...``: the core CLI's ``deploy`` (same errors and ``--debug``)."""
    from robo_reward.cli import main as cli_main

    return cli_main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    raise SystemExit(main())
