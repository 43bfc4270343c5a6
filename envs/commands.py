"""``robo-reward collect-demos``: write scripted-expert demonstrations as a Minari dataset.

Loaded by the core CLI through the ``robo_reward.commands`` entry-point group::

    robo-reward collect-demos robo_reward/PickPlace-v0 --episodes 100 --noise 0.1 --pixels --root demos/

reads back with ``robo_reward.envs.demos.load_demos("demos/robo_reward/PickPlace/expert-noise0p1-pixels-v0")``
(or ``minari.load_dataset`` with ``MINARI_DATASETS_PATH=demos``).
"""

from __future__ import annotations

import argparse
import json
import sys


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``collect-demos`` subcommand."""
    p = subparsers.add_parser(
        "collect-demos",
        help="record scripted-expert demos of a robo_reward task as a Minari dataset",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("env_id", help="task id, e.g. robo_reward/PickPlace-v0 (or just PickPlace)")
    p.add_argument("--episodes", type=int, default=100, help="episodes to record (default 100)")
    p.add_argument("--noise", type=float, default=0.0, help="std of Gaussian action noise (default 0)")
    p.add_argument(
        "--pixels", action="store_true", help="also record camera frames (state+pixels observations)"
    )
    p.add_argument("--cameras", default="front,wrist", help="comma-separated cameras with --pixels")
    p.add_argument("--image-size", type=int, default=64, help="camera image side with --pixels (default 64)")
    p.add_argument("--seed", type=int, default=0, help="episode i uses seed SEED + i (default 0)")
    p.add_argument("--only-success", action="store_true", help="keep successful episodes only")
    p.add_argument(
        "--env-kwargs",
        default="{}",
        help="JSON dict of task kwargs (a variant), e.g. '{\"num_distractors\": 2}'",
    )
    p.add_argument(
        "--dataset-id",
        default=None,
        help="Minari id (default robo_reward/<Task>/expert[-noise<x>][-pixels]-v0)",
    )
    p.add_argument(
        "--root", default=None, help="datasets folder (default: $MINARI_DATASETS_PATH or ~/.minari/datasets)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset with the same id")
    p.add_argument("--jpeg", action="store_true", help="store frames JPEG-compressed (smaller, lossy)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Collect and write the dataset; prints where it went. Returns the exit status."""
    import gymnasium as gym

    import robo_reward  # noqa: F401  (registers the tasks)
    from robo_reward.envs.demos import collect_demos, default_dataset_id, write_dataset

    env_id = args.env_id if "/" in args.env_id else f"robo_reward/{args.env_id}"
    if "-v" not in env_id:
        env_id += "-v0"
    try:
        env_kwargs = json.loads(args.env_kwargs)
        if not isinstance(env_kwargs, dict):
            raise ValueError("not a JSON object")
    except ValueError as err:
        print(f"error: --env-kwargs must be a JSON object ({err})", file=sys.stderr)
        return 2
    cameras = tuple(c.strip() for c in args.cameras.split(",") if c.strip())
    dataset_id = args.dataset_id or default_dataset_id(env_id, args.noise, args.pixels)
    try:
        episodes = collect_demos(
            env_id,
            episodes=args.episodes,
            noise=args.noise,
            pixels=args.pixels,
            cameras=cameras,
            image_size=args.image_size,
            seed=args.seed,
            only_success=args.only_success,
            env_kwargs=env_kwargs,
        )
        path = write_dataset(dataset_id, episodes, root=args.root, overwrite=args.overwrite, jpeg=args.jpeg)
    except (ValueError, TypeError, RuntimeError, FileExistsError, gym.error.Error) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rate = sum(ep.success for ep in episodes) / len(episodes)
    steps = sum(ep.length for ep in episodes)
    print(f"wrote {len(episodes)} episodes ({steps} steps, success {rate:.0%}) as {dataset_id} to {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``collect-demos`` on its own (``python -m robo_reward.envs.commands ...``)."""
    parser = argparse.ArgumentParser(prog="robo-reward")
    add_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["collect-demos", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
