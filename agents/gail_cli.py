"""``robo-reward gail``: make expert demos and run off-policy GAIL from any demonstration dataset.

    robo-reward gail expert ENV_ID --dataset ID [--steps N] [--demos 10] [--seed S] [--root runs/minari]
    robo-reward gail train CONFIG.yaml [--set key=value ...] [--out DIR]
    robo-reward gail train --env ENV_ID --demos SOURCE [--algo sac|td3] [--steps N] [--no-penalty] [--out DIR]

``CONFIG.yaml`` holds the fields of :class:`robo_reward.agents.gail.GAILConfig` (see ``configs/gail/``). A run
writes ``curve.csv`` (env steps, true return), ``discriminator.csv``, ``result.json``, ``agent.zip`` and
``reward.pt`` (a core reward checkpoint) into ``--out``. Registered through the ``robo_reward.commands``
entry-point group.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any


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

    train = sub.add_parser("train", help="train SAC/TD3 on the GAIL reward from a demonstration dataset")
    train.add_argument("config", nargs="?", help="YAML file with GAILConfig fields")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    train.add_argument("--env", dest="env_id", help="env id (instead of a config)")
    train.add_argument("--demos", help="Minari dataset id or folder, or .npz")
    train.add_argument("--algo", choices=["sac", "td3"])
    train.add_argument("--steps", type=int, dest="total_steps")
    train.add_argument("--seed", type=int)
    train.add_argument("--no-penalty", action="store_true", help="ablation: no gradient penalty")
    train.add_argument("--out", default=None, help="run folder (default runs/gail/<env>-seed<seed>)")
    train.set_defaults(func=_train)


def _expert(args: argparse.Namespace) -> int:
    import os

    from robo_reward.agents.experts import make_expert_dataset

    os.environ["MINARI_DATASETS_PATH"] = str(Path(args.root).resolve())

    report = make_expert_dataset(args.env_id, args.dataset, steps=args.steps, n_demos=args.demos, seed=args.seed)
    print(f"dataset {Path(args.root) / report.dataset_id}: expert return {report.expert_return:.1f}, random {report.random_return:.1f}, "
          f"demo returns {[round(r, 1) for r in report.demo_returns]}")
    return 0


def _config(args: argparse.Namespace) -> Any:
    import yaml

    from robo_reward.agents.gail import config_from_mapping

    data: dict[str, Any] = {}
    if args.config:
        data = yaml.safe_load(Path(args.config).read_text()) or {}
        if not isinstance(data, dict):
            raise SystemExit(f"robo-reward gail: {args.config} must be a YAML mapping of GAILConfig fields")
    for item in args.set:
        key, sep, raw = item.partition("=")
        if not sep:
            raise SystemExit(f"robo-reward gail: --set {item!r} must look like key=value")
        data[key.strip()] = yaml.safe_load(raw)
    for key in ("env_id", "demos", "algo", "total_steps", "seed"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    if args.no_penalty:
        data["reward_kwargs"] = {**data.get("reward_kwargs", {}), "penalty": "none"}
    if "env_id" not in data:
        raise SystemExit("robo-reward gail train: give a config file or --env ENV_ID --demos SOURCE")
    try:
        return config_from_mapping(data)
    except (KeyError, ValueError, TypeError) as exc:
        raise SystemExit(f"robo-reward gail train: {exc}") from exc


def _train(args: argparse.Namespace) -> int:
    from robo_reward.agents.gail import train

    cfg = _config(args)
    out = Path(args.out or f"runs/gail/{cfg.env_id.replace('/', '_')}-seed{cfg.seed}")
    out.mkdir(parents=True, exist_ok=True)
    result = train(cfg, out_dir=out, on_eval=lambda row: print(
        f"  step {int(row['timestep'])}: true return {row['return']:.1f}", flush=True))
    _write_csv(out / "curve.csv", result["curve"])
    _write_csv(out / "discriminator.csv", result["discriminator"])
    (out / "result.json").write_text(json.dumps({k: v for k, v in result.items() if k != "discriminator"}, indent=2))
    print(f"run folder: {out}")
    return 0


def _write_csv(path: Path, rows: list[dict[str, float]]) -> None:
    if not rows:
        return
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
