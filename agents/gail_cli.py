"""``robo-reward gail``: make expert demos for off-policy GAIL, and train it (an alias of ``robo-reward train``).

    robo-reward gail expert ENV_ID --dataset ID [--steps N] [--demos 10] [--seed S] [--root runs/minari]
    robo-reward gail train CONFIG.yaml [--set key.sub=value ...] [--seed N] [--run-dir DIR]

GAIL runs are ordinary experiment configs (``configs/gail/``: a ``gail`` reward term, SAC with the core relabelling
buffer, DAC absorbing states as an env wrapper), so ``gail train`` is ``robo-reward train``: the same loader,
``--set``, errors and run folder (config.yaml, checkpoints/, eval.csv, report.md, curves.png, summary.json).
Registered through the ``robo_reward.commands`` entry-point group.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``gail`` subcommand to the ``robo-reward`` CLI."""
    parser = subparsers.add_parser("gail", help="off-policy GAIL with a Lipschitz discriminator (expert demos, train)")
    sub = parser.add_subparsers(dest="gail_command", required=True)

    expert = sub.add_parser("expert", help="train an SB3 SAC expert on the true reward and save demos to Minari")
    expert.add_argument("env_id")
    expert.add_argument("--dataset", required=True, help="Minari dataset id, e.g. pendulum/expert-v0")
    expert.add_argument("--steps", type=int, default=10_000, help="SAC training steps of the expert")
    expert.add_argument("--demos", type=int, default=10, help="episodes recorded")
    expert.add_argument("--seed", type=int, default=0)
    expert.add_argument("--root", default="runs/minari",
                        help="Minari store to write into (MINARI_DATASETS_PATH; default runs/minari)")
    expert.set_defaults(func=_expert)

    train = sub.add_parser("train", help="robo-reward train for a GAIL experiment config (configs/gail/)")
    train.add_argument("config", help="experiment YAML with a gail reward term")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    train.add_argument("--seed", type=int)
    train.add_argument("--run-dir")
    train.add_argument("--no-progress", action="store_true")
    train.set_defaults(func=_train, resume=None)


def _expert(args: argparse.Namespace) -> int:
    import os

    from robo_reward.agents.experts import make_expert_dataset

    os.environ["MINARI_DATASETS_PATH"] = str(Path(args.root).resolve())

    report = make_expert_dataset(args.env_id, args.dataset, steps=args.steps, n_demos=args.demos, seed=args.seed)
    print(f"dataset {Path(args.root) / report.dataset_id}: expert return {report.expert_return:.1f}, random {report.random_return:.1f}, "
          f"demo returns {[round(r, 1) for r in report.demo_returns]}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from robo_reward.cli import _train as core_train

    return core_train(args)
