"""``robo-reward rapl CONFIG``: align frame encoders from preference triplets and score them on held-out rollouts.

Registered through the ``robo_reward.commands`` entry point, so the core CLI never imports the method.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``rapl`` subcommand: RAPL vs RLHF vs unaligned OT, Spearman with the hidden preference return."""
    p = subparsers.add_parser("rapl", help="RAPL: align encoders from preference triplets, Spearman with the "
                                           "hidden return")
    p.add_argument("config", help="a kind: rapl_pipeline YAML")
    p.add_argument("--seeds", type=int, help="run the first N of the config's seeds")
    p.add_argument("--out", help="output folder (default: <output_dir>/<name>)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")

    def run(args: argparse.Namespace) -> int:
        from robo_reward.config import load_any
        from robo_reward.methods.rapl.pipeline import _markdown, run_pipeline

        cfg = load_any(args.config, args.set, expect="rapl_pipeline")
        seeds = list(cfg.seeds[: args.seeds]) if args.seeds else None  # type: ignore[attr-defined]
        out = Path(args.out or Path(cfg.output_dir) / cfg.name)  # type: ignore[attr-defined]
        summary = run_pipeline(cfg, out, seeds=seeds)  # type: ignore[arg-type]
        print(_markdown(summary))
        print(f"report: {out / 'summary.md'}")
        return 0

    p.set_defaults(func=run)
