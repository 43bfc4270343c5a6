"""``robo-reward``: train, benchmark, evaluate, and list envs and rewards.

    robo-reward train CONFIG [--set key=value ...] [--seed N] [--run-dir DIR]
    robo-reward train --resume RUN_DIR [--set key=value ...]
    robo-reward bench CONFIG [CONFIG ...] --seeds N [--jobs J] [--out DIR]
    robo-reward eval RUN_DIR [--episodes N] [--checkpoint step_N] [--set key=value ...]
    robo-reward audit CONFIG_OR_RUN_DIR [--set audit.episodes=20] [--out DIR]
    robo-reward label RUN_OR_DATASET [--store PREFS.jsonl] [--port 8765]
    robo-reward rapl CONFIG [--seeds N] [--out DIR]
    robo-reward envs | rewards
    robo-reward perf [--env HalfCheetah-v5] [--n-envs 1 8]

Other packages (and robo_reward's own envs/hardware parts) add subcommands through the ``robo_reward.commands``
entry-point group: each entry point is ``add_command(subparsers)`` and sets ``func`` on its parser; they load
only when the command line names one of them (or asks for help), so the core commands start fast.

A user's mistake (a :class:`robo_reward.errors.UserError`, which includes ``ConfigError``, or a known library
error: a reward that does not fit the env's spaces, a file that does not exist, an unregistered Gymnasium id, a
plugin's pydantic validation) prints one message naming the problem and the fix and exits 2. ``--debug``, before
or after the command, shows the traceback as well. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")


def _preflight(cfg: Any) -> None:
    """Name an unknown env id or agent algo before torch and SB3 load (seconds saved on every typo)."""
    from robo_reward.agents_registry import check_algo
    from robo_reward.errors import check_env_id

    check_env_id(cfg.env.id)
    check_algo(cfg.agent.algo)


def _train(args: argparse.Namespace) -> int:
    from robo_reward.config import load_config
    from robo_reward.errors import UserError, run_config_path

    if args.resume:
        given = [f for f, v in (("CONFIG", args.config), ("--seed", args.seed), ("--run-dir", args.run_dir)) if v]
        if given:
            raise UserError(f"train --resume continues {args.resume} with its own config.yaml, seed and folder, so "
                            f"{' and '.join(given)} cannot be given with it; drop them (change the config with --set)")
        run_config_path(args.resume)
        from robo_reward.runner import resume

        summary = resume(args.resume, progress=not args.no_progress, overrides=args.set)
        run_dir = Path(args.resume)
    else:
        if not args.config:
            raise UserError("give a CONFIG file to train from (robo-reward train configs/quickstart/"
                            "reach_shaped.yaml), or --resume RUN_DIR to continue a run")
        cfg = load_config(args.config, args.set)
        _preflight(cfg)
        from robo_reward.runner import default_run_dir, train

        seed = cfg.seed if args.seed is None else args.seed
        run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(cfg, seed)
        summary = train(cfg, run_dir, seed=seed, progress=not args.no_progress)
    print(json.dumps(summary, indent=2))
    print(f"report: {run_dir / 'report.md'}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from robo_reward.config import load_config
    from robo_reward.errors import UserError

    designs = [load_config(c, args.set) for c in args.configs]
    names = [d.name for d in designs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UserError(f"the designs of a benchmark need distinct names, but {repeated} name more than one config; "
                        "set name: in each config")
    for design in designs:
        _preflight(design)
    from robo_reward.bench import default_jobs, run_bench

    out = Path(args.out or Path(designs[0].output_dir) / "bench" / "-".join(d.name for d in designs))
    table = run_bench(designs, out, seeds=args.seeds, jobs=args.jobs or default_jobs(),
                      progress=not args.no_progress)
    print((out / "summary.md").read_text() if (out / "summary.md").exists() else table)
    print(f"report: {out / 'summary.md'}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from robo_reward.config import load_config
    from robo_reward.errors import run_config_path

    cfg = load_config(run_config_path(args.run_dir), args.set)
    if args.episodes:
        cfg.eval.episodes = args.episodes
    _preflight(cfg)
    from robo_reward.runner import TrainingRun

    run = TrainingRun(cfg, args.run_dir, progress=False)
    run.restore(checkpoint=args.checkpoint)
    row = run.evaluate()
    (Path(args.run_dir) / "eval_final.json").write_text(json.dumps(row, indent=2))
    print(json.dumps(row, indent=2))
    return 0


def _audit(args: argparse.Namespace) -> int:
    from robo_reward.audit import run_audit
    from robo_reward.config import load_config

    target = Path(args.target)
    run_dir = target if target.is_dir() else None
    cfg = load_config(target / "config.yaml" if run_dir else target, args.set)
    out = Path(args.out) if args.out else (run_dir / "audit" if run_dir else Path(cfg.output_dir) / "audit" / cfg.name)
    table = run_audit(cfg, out, run_dir=run_dir)
    print(table.to_string(index=False))
    print(f"report: {out / 'audit.md'}")
    return 0


def _label(args: argparse.Namespace) -> int:
    from robo_reward.labelling import serve

    serve(args.target, store=args.store, port=args.port, seed=args.seed)
    return 0


def _envs(args: argparse.Namespace) -> int:
    import gymnasium as gym

    import robo_reward  # noqa: F401

    ids = sorted(k for k in gym.registry if k.startswith("robo_reward/"))
    for env_id in ids:
        spec = gym.registry[env_id]
        print(f"{env_id:40s} max_episode_steps={spec.max_episode_steps}  ({spec.entry_point})")
    if not ids:
        print("no robo_reward/ envs registered")
    return 0


def _rewards(args: argparse.Namespace) -> int:
    from robo_reward.registry import resolve_reward, reward_names

    for name in reward_names():
        try:
            doc = (resolve_reward(name).__doc__ or "").strip().splitlines()[0]
        except Exception as exc:  # a plugin that fails to import is listed with its error
            doc = f"(cannot import: {exc})"
        print(f"{name:22s} {doc}")
    return 0


def _perf(args: argparse.Namespace) -> int:
    if args.rllib:
        from robo_reward.agents_registry import PERF_BACKENDS, resolve_backend
        from robo_reward.config import load_config

        cfg = load_config(args.rllib, args.set)
        scaling = resolve_backend("rllib", PERF_BACKENDS)(cfg, args.runners, steps=args.steps,
                                                          repeats=args.repeats, out=args.out)
        print(scaling.to_string(index=False))
        print(f"report: {Path(args.out) / 'rllib_scaling.md'}")
        return 0
    if args.pixels:
        from robo_reward.perf import run_pixel_perf

        table = run_pixel_perf(args.env, tuple(args.n_envs), cameras=tuple(args.pixels), image_size=args.image_size,
                               steps=args.steps, repeats=args.repeats, out=args.out)
        print(table.to_string(index=False))
        print(f"report: {Path(args.out) / 'perf.md'}")
        return 0
    from robo_reward.perf import run_perf

    table = run_perf(args.env, tuple(args.n_envs), steps=args.steps, repeats=args.repeats, out=args.out,
                     learn_steps=args.learn_steps, reward=args.reward, imitation_path=args.imitation_path)
    print(table.to_string(index=False))
    print(f"report: {Path(args.out) / 'perf.md'}")
    return 0


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``robo-reward`` parser; plugin commands are added unless ``argv`` names a core command."""
    parser = argparse.ArgumentParser(prog="robo-reward", description="Reward design for robot learning.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error, too")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one agent with a reward design")
    p.add_argument("config", nargs="?", help="experiment YAML")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    p.add_argument("--seed", type=int)
    p.add_argument("--run-dir")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_train)

    p = sub.add_parser("bench", help="compare reward designs over seeds")
    p.add_argument("configs", nargs="+")
    p.add_argument("--seeds", type=int, help="number of seeds (default: each config's seeds list)")
    p.add_argument("--jobs", type=int, help="parallel runs (default: 2 on 2+ cores)")
    p.add_argument("--out")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_bench)

    p = sub.add_parser("eval", help="evaluate a run's latest agent on the env's own reward")
    p.add_argument("run_dir")
    p.add_argument("--episodes", type=int)
    p.add_argument("--checkpoint", metavar="step_N", help="a checkpoint folder instead of the newest")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the run's config.yaml (e.g. eval.env_kwargs.obs_mode=state)")
    p.set_defaults(func=_eval)

    p = sub.add_parser("audit", help="correlate each reward term with true progress under several behaviours")
    p.add_argument("target", help="an experiment config, or a run folder (adds its policy at every checkpoint)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (e.g. audit.episodes=20, audit.behaviours=[random])")
    p.add_argument("--out", help="audit folder (default: RUN_DIR/audit, or runs/audit/<name>)")
    p.set_defaults(func=_audit)

    p = sub.add_parser("label", help="rank rollout videos on a local web page (127.0.0.1) into a preference store")
    p.add_argument("target", metavar="RUN_OR_DATASET", help="a rollout dataset (.npz) or a folder holding rollouts*.npz")
    p.add_argument("--store", help="preference store (.jsonl; default: prefs/human.jsonl beside the dataset)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--seed", type=int, default=0, help="seeds which triplets are shown")
    p.set_defaults(func=_label)

    sub.add_parser("envs", help="list the robo_reward/ envs").set_defaults(func=_envs)
    sub.add_parser("rewards", help="list registered rewards").set_defaults(func=_rewards)

    p = sub.add_parser("perf", help="reward-path speed benchmark (VecEnv steps/s)")
    p.add_argument("--env", default="HalfCheetah-v5")
    p.add_argument("--n-envs", type=int, nargs="+", default=[1, 8])
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--learn-steps", type=int, default=0, help="also time PPO training for this many env steps")
    p.add_argument("--reward", help="time this registered reward instead of the MLP rewards (e.g. carl)")
    p.add_argument("--rllib", metavar="CONFIG", help="instead: RLlib env-runner scaling of CONFIG's env and reward")
    p.add_argument("--runners", type=int, nargs="+", default=[1, 2], help="env-runner counts for --rllib")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a field of --rllib's CONFIG")
    p.add_argument("--imitation-path", metavar="DIR", help="folder holding the imitation package: time it beside ours")
    p.add_argument("--pixels", nargs="+", metavar="CAMERA",
                   help="instead: render these cameras (--env must take obs_mode/cameras/image_size) and time each "
                        "pixel reward registered in the robo_reward.pixel_perf entry points (Dopamine's) on them "
                        "against render-only")
    p.add_argument("--image-size", type=int, default=48, help="image side with --pixels")
    p.add_argument("--out", default="runs/perf")
    p.set_defaults(func=_perf)

    command = next((a for a in argv if not a.startswith("-")), None) if argv is not None else None
    if command not in sub.choices:
        for ep in importlib.metadata.entry_points(group="robo_reward.commands"):
            ep.load()(sub)
    for command_parser in sub.choices.values():
        command_parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                    help="show the traceback of an error, too")
    return parser


def user_message(exc: BaseException) -> str | None:
    """The message to print for an exception that is the user's mistake; None for a bug (keep the traceback)."""
    from robo_reward.errors import UserError
    from robo_reward.protocol import SpaceMismatchError

    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, str) else None
    if isinstance(exc, (UserError, SpaceMismatchError)):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        if exc.filename is None:
            return str(exc)
        return f"{exc.filename} does not exist ({exc.strerror}); check the path"
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(exc, pydantic.ValidationError):
        lines = [f"invalid {exc.title}:"]
        for err in exc.errors():
            lines.append(f"  {'.'.join(str(p) for p in err['loc']) or '<top level>'}: {err['msg']} "
                         f"(got {err.get('input')!r})")
        return "\n".join(lines)
    gym_error = getattr(sys.modules.get("gymnasium"), "error", None)
    if gym_error is not None and isinstance(exc, (gym_error.UnregisteredEnv, gym_error.DeprecatedEnv,
                                                  gym_error.DependencyNotInstalled)):
        return f"{exc}; `robo-reward envs` lists robo_reward's tasks"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a user's mistake prints its message and returns 2 (``--debug`` adds the traceback)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (Exception, SystemExit) as exc:
        message = user_message(exc)
        if message is None:
            raise
        if args.debug:
            traceback.print_exception(exc)
        prefix = "" if message.startswith("robo-reward") else f"robo-reward {args.command}: "
        print(prefix + message, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
