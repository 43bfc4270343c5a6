"""``robo-reward dopamine-grm CONFIG [--set key=value] [--run-dir DIR]``: demos -> GRM pretraining -> one-shot
adaptation -> VOC report.

The config is a ``kind: grm_pipeline`` config of the package's one schema system (``base:`` inheritance and
``--set`` overrides as for experiments). Every stage writes its result into the run folder and is skipped when the
result is already there (delete a file to redo its stage), so the benchmark configs can point at
``checkpoints/grm_adapted.pt`` and the reference demo while a rerun costs nothing. The run folder holds the same
layout as a training run: ``config.yaml``, ``checkpoints/`` (``grm_pretrained.pt``, ``grm_adapted.pt``),
``pretrain.csv`` (loss against step), ``voc.csv``, ``report.md`` and ``curves.png``, plus the demos under
``minari/``. Config (YAML)::

    kind: grm_pipeline
    env_id: robo_reward/PickPlace-v0
    cameras: [front, wrist]
    image_size: 48
    train_variants: {default: {}, small_blue: {object_half_size: 0.016, object_color: blue}}
    heldout_variant: {object_color: purple}
    demos_per_variant: 20
    heldout_eval_demos: 4
    noise: 0.0
    pretrain: {steps: 2000, batch_size: 32, lr: 0.0003}
    adapt: {steps: 300, batch_size: 32, lr: 0.0001}
    run_dir: runs/dopamine/grm_pickplace
    seed: 0

``model: phi`` trains the per-state progress head instead (``LearnedProgressHead``): ``data.episodes`` rollouts
per pretraining variant and behaviour (:func:`collect_progress_data`, cached as ``progress_data.npz``), every
``validation_every``-th rollout held out for the report's accuracy columns, ``head`` (ensemble, beta, encoder) and
``adapt_replay`` (the fraction of each adaptation batch replayed from pretraining); see
``configs/dopamine/grm_reach_phi.yaml``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats

from robo_reward.methods.dopamine.progress import LearnedGRM, LearnedProgressHead
from robo_reward.methods.dopamine.training import (
    ProgressData,
    build_hop_dataset,
    head_progress,
    hop_mse,
    save_grm,
    train_grm,
    train_progress_head,
    voc,
)


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int = Field(2000, ge=0)
    batch_size: int = Field(32, ge=1)
    lr: float = 3e-4
    augment: int = 4


BEHAVIOURS = ("expert", "dart", "decoy", "random", "failed")


class DataConfig(BaseModel):
    """Rollouts per pretraining variant and behaviour for the per-state progress head (``model: phi``)."""

    model_config = ConfigDict(extra="forbid")
    episodes: dict[str, int] = Field(default_factory=lambda: {b: 20 for b in BEHAVIOURS})
    noise: float = 0.1
    burst_probability: float = 0.15
    burst_steps: tuple[int, int] = (3, 10)


def _policy_action(env: Any, kind: str, expert: Any, rng: np.random.Generator, state: dict[str, Any],
                   cfg: DataConfig) -> np.ndarray:
    """One action of a data-collection behaviour (see :func:`collect_progress_data`)."""
    space = env.action_space
    if kind == "random":
        return rng.uniform(space.low, space.high).astype(np.float32)
    if kind == "dart":
        if state["burst"] > 0:
            state["burst"] -= 1
            return rng.uniform(space.low, space.high).astype(np.float32)
        if rng.random() < cfg.burst_probability:
            state["burst"] = int(rng.integers(cfg.burst_steps[0], cfg.burst_steps[1] + 1)) - 1
            return rng.uniform(space.low, space.high).astype(np.float32)
    if kind == "decoy" and state["t"] < state["decoy_steps"]:
        base = env.unwrapped
        delta = np.clip((state["decoy"] - base.grip_pos) / base.max_delta, -1.0, 1.0)
        noisy = delta + rng.normal(0.0, cfg.noise, size=3)
        return np.append(np.clip(noisy, -1.0, 1.0), 1.0).astype(np.float32)
    if kind == "failed" and state["stopped"]:
        return (0.3 * rng.uniform(space.low, space.high)).astype(np.float32)
    return np.asarray(expert.act()[0], dtype=np.float32)


def collect_progress_data(env_id: str, variants: dict[str, dict[str, Any]], cfg: DataConfig, *,
                          cameras: list[str], anchor_camera: str, image_size: int, seed: int) -> ProgressData:
    """Rollouts of the pretraining variants, every state labelled with the simulator's ``info["progress"]``.

    Behaviours: ``expert`` (the scripted expert with action noise), ``dart`` (the expert with bursts of random
    actions that it then recovers from, DART-style), ``decoy`` (driven towards a random decoy point for a random
    part of the episode, then the expert; some episodes end before it recovers), ``random`` (uniform actions) and
    ``failed`` (the expert until a random progress level, then small random actions). START is the episode's own
    first frame; END is the last frame of a separate clean expert demo to the same goal from another start.

    Departures from the paper: its pretraining labels are step-aware labels of successful human and robot videos
    (i/M between keyframes); here the pretraining variants' simulator progress labels every state, failing and
    wandering ones included, because a model trained on successful demos alone (and their time reversals) has
    never seen what a state off the demos is worth (measured: ``benchmarks/dopamine/reach_80k/NOTE.md``). The
    held-out task contributes only its one demo, with step-aware labels.
    """
    import gymnasium as gym

    from robo_reward.envs.experts import make_expert

    unknown = set(cfg.episodes) - set(BEHAVIOURS)
    if unknown:
        raise ValueError(f"data.episodes has unknown behaviours {sorted(unknown)}; choose from {list(BEHAVIOURS)}")
    needed = sorted({*cameras, anchor_camera})
    frames: dict[str, list[np.ndarray]] = {c: [] for c in needed}
    progress, episode, start_row, ends = [], [], [], []
    rng = np.random.default_rng(seed)
    rows = 0
    for v, kwargs in enumerate(variants.values()):
        env = gym.make(env_id, obs_mode="state+pixels", cameras=tuple(needed), image_size=image_size, **kwargs)
        base = env.unwrapped
        for b, kind in enumerate(BEHAVIOURS):
            for i in range(cfg.episodes.get(kind, 0)):
                ep_seed = seed + 100_000 * v + 10_000 * b + i
                obs, info = env.reset(seed=ep_seed)
                goal = np.array(base.goal)
                expert = make_expert(base, noise=cfg.noise, seed=ep_seed)
                expert.reset()
                decoy = rng.uniform(base.goal_low, base.goal_high)
                if decoy.size == 2:  # a table-top goal box (Push): the decoy lies at the gripper's start height
                    decoy = np.append(decoy, base.grip_pos[2])
                state = {"burst": 0, "t": 0, "stopped": False, "decoy": decoy,
                         "decoy_steps": int(rng.integers(5, 40)), "stop_at": rng.uniform(0.1, 0.9)}
                start_row.append(rows)
                done = False
                while True:
                    for c in needed:
                        frames[c].append(obs[c])
                    progress.append(float(info["progress"]))
                    episode.append(len(start_row) - 1)
                    rows += 1
                    if done:
                        break
                    state["stopped"] = state["stopped"] or float(info["progress"]) >= state["stop_at"]
                    obs, _, terminated, truncated, info = env.step(_policy_action(env, kind, expert, rng, state, cfg))
                    state["t"] += 1
                    done = terminated or truncated
                obs, info = env.reset(seed=ep_seed + 7_777_777, options={"goal_pos": goal})
                anchor_expert = make_expert(base, noise=0.0, seed=ep_seed)
                anchor_expert.reset()
                done = False
                while not done:
                    obs, _, terminated, truncated, info = env.step(anchor_expert.act()[0])
                    done = terminated or truncated
                ends.append(obs[anchor_camera])
        env.close()
    return ProgressData({c: np.stack(f) for c, f in frames.items()}, np.asarray(progress),
                        np.asarray(episode, np.int64), np.asarray(start_row, np.int64), np.stack(ends))


class HeadConfig(BaseModel):
    """The per-state progress head's size and pessimism (``model: phi``)."""

    model_config = ConfigDict(extra="forbid")
    ensemble: int = Field(5, ge=1)
    beta: float = Field(1.0, ge=0.0)
    embed_dim: int = 64
    hidden: int = 128
    bootstrap: float = Field(0.8, gt=0.0, le=1.0)
    encoder: Literal["conv", "spatial"] = "conv"
    width: int = Field(16, ge=1)


class GRMPipelineConfig(BaseModel):
    """The GRM pipeline's config (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["grm_pipeline"] = "grm_pipeline"
    env_id: str = "robo_reward/PickPlace-v0"
    cameras: list[str] = Field(default_factory=lambda: ["front", "wrist"])
    anchor_camera: str = "front"
    image_size: int = 48
    train_variants: dict[str, dict[str, Any]]
    heldout_variant: dict[str, Any]
    demos_per_variant: int = Field(20, ge=1)
    heldout_eval_demos: int = Field(4, ge=1)
    noise: float = 0.0
    pretrain: TrainConfig = Field(default_factory=TrainConfig)
    adapt: TrainConfig = Field(default_factory=lambda: TrainConfig(steps=300, lr=1e-4))
    max_pairs: int = 1000
    model: Literal["hop", "phi"] = "hop"
    data: DataConfig = Field(default_factory=DataConfig)
    head: HeadConfig = Field(default_factory=HeadConfig)
    adapt_replay: float = Field(0.5, ge=0.0, lt=1.0)
    validation_every: int = Field(10, ge=2)
    run_dir: str = "runs/dopamine/grm"
    seed: int = 0
    threads: int = 1  # torch threads; more threads only help on an otherwise idle machine


def _demos(cfg: GRMPipelineConfig, out: Path, name: str, kwargs: dict[str, Any], episodes: int, seed: int) -> Path:
    """Scripted-expert pixel demos of one variant as a Minari dataset under ``out/minari`` (cached)."""
    from robo_reward.datasets import write_dataset
    from robo_reward.envs.demos import collect_demos

    path = out / "minari" / "robo_reward" / "dopamine" / f"{name}-v0"
    if not (path / "data").exists():
        demos = collect_demos(cfg.env_id, episodes=episodes, noise=cfg.noise, pixels=True, cameras=cfg.cameras,
                              image_size=cfg.image_size, seed=seed, only_success=True, env_kwargs=kwargs)
        path = write_dataset(f"robo_reward/dopamine/{name}-v0", demos, root=out / "minari", overwrite=True)
    return path


def run_pipeline(cfg: GRMPipelineConfig, log: Any = print) -> dict[str, Any]:
    """Run (or resume) every stage; returns the VOC table rows."""
    import torch

    from robo_reward.datasets import load_demos

    torch.set_num_threads(cfg.threads)
    out = Path(cfg.run_dir).resolve()
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    tasks = list(cfg.train_variants)
    train_sets = {}
    for i, (name, kwargs) in enumerate(cfg.train_variants.items() if cfg.model == "hop" else ()):
        t0 = time.time()
        train_sets[name] = _demos(cfg, out, f"train-{name}", kwargs, cfg.demos_per_variant, cfg.seed + 1000 * i)
        log(f"demos {name}: {train_sets[name]} ({time.time() - t0:.0f} s)")
    heldout_seed = cfg.seed + 1000 * len(tasks) + 500
    reference = _demos(cfg, out, "heldout-reference", cfg.heldout_variant, 1, heldout_seed)
    evaluation = _demos(cfg, out, "heldout-eval", cfg.heldout_variant, cfg.heldout_eval_demos, heldout_seed + 1)

    if cfg.model == "phi":
        return _run_head_pipeline(cfg, out, reference, evaluation, log)
    pretrained_path = out / "checkpoints" / "grm_pretrained.pt"
    if pretrained_path.exists():
        pretrained = LearnedGRM.load(str(pretrained_path))
    else:
        demos, task_ids = [], []
        for i, name in enumerate(tasks):
            loaded = load_demos(train_sets[name])
            demos += loaded
            task_ids += [i] * len(loaded)
        data = build_hop_dataset(demos, task_ids, cfg.cameras, cfg.anchor_camera, np.random.default_rng(cfg.seed),
                                 max_pairs=cfg.max_pairs)
        pretrained = LearnedGRM(cfg.cameras, cfg.anchor_camera, tasks=tasks, image_size=cfg.image_size,
                                seed=cfg.seed)
        t0 = time.time()
        losses = train_grm(pretrained, data, steps=cfg.pretrain.steps, batch_size=cfg.pretrain.batch_size,
                           lr=cfg.pretrain.lr, augment=cfg.pretrain.augment, seed=cfg.seed,
                           callback=lambda s, loss: log(f"pretrain step {s}: mse {loss:.4f}"))
        log(f"pretrained on {len(data)} pairs from {len(demos)} demos in {time.time() - t0:.0f} s")
        save_grm(pretrained, pretrained_path)
        pd.DataFrame({"step": np.arange(1, len(losses) + 1), "loss": losses}).to_csv(out / "pretrain.csv", index=False)

    ref_demo = load_demos(reference)[0]
    adapted_path = out / "checkpoints" / "grm_adapted.pt"
    if adapted_path.exists():
        adapted = LearnedGRM.load(str(adapted_path))
    else:
        adapted = LearnedGRM.load(str(pretrained_path))
        # Each stage seeds its own sampler, so whether the previous stage was cached does not change this one.
        data = build_hop_dataset([ref_demo], [0], cfg.cameras, cfg.anchor_camera, np.random.default_rng(cfg.seed),
                                 max_pairs=cfg.max_pairs)
        t0 = time.time()
        train_grm(adapted, data, steps=cfg.adapt.steps, batch_size=cfg.adapt.batch_size, lr=cfg.adapt.lr,
                  augment=cfg.adapt.augment, seed=cfg.seed + 1)
        log(f"adapted on {len(data)} pairs from one demo in {time.time() - t0:.0f} s")
        save_grm(adapted, adapted_path)

    anchors = ref_demo.frames(cfg.anchor_camera)
    start, goal = anchors[0], anchors[-1]
    eval_demos = load_demos(evaluation)
    eval_pairs = build_hop_dataset(eval_demos, [0] * len(eval_demos), cfg.cameras, cfg.anchor_camera,
                                   np.random.default_rng(cfg.seed + 7), max_pairs=200, swap_probability=0.0)
    rows = []
    for name, model in (("zero-shot", pretrained), ("adapted", adapted)):
        scores = np.array([voc(model, d, start, goal, np.random.default_rng(cfg.seed)) for d in eval_demos])
        rows.append({"model": name, "voc_plus": float(scores[:, 0].mean()), "voc_minus": float(scores[:, 1].mean()),
                     "hop_mse": hop_mse(model, eval_pairs), "demos": len(scores)})
    _report(out, cfg, rows)
    log((out / "report.md").read_text())
    return {"voc": rows, "pretrained": str(pretrained_path), "adapted": str(adapted_path),
            "reference": str(reference), "report": str(out / "report.md")}


def _load_or_collect(cfg: GRMPipelineConfig, out: Path, log: Any) -> ProgressData:
    path = out / "progress_data.npz"
    if path.exists():
        z = np.load(path)
        return ProgressData({c: z[f"frames_{c}"] for c in sorted({*cfg.cameras, cfg.anchor_camera})}, z["progress"],
                            z["episode"], z["start_row"], z["end_anchor"])
    t0 = time.time()
    data = collect_progress_data(cfg.env_id, cfg.train_variants, cfg.data, cameras=cfg.cameras,
                                 anchor_camera=cfg.anchor_camera, image_size=cfg.image_size, seed=cfg.seed)
    np.savez(path, progress=data.progress, episode=data.episode, start_row=data.start_row,
             end_anchor=data.end_anchor, **{f"frames_{c}": f for c, f in data.frames.items()})
    log(f"progress data: {len(data)} states from {len(data.start_row)} rollouts ({time.time() - t0:.0f} s)")
    return data


def _run_head_pipeline(cfg: GRMPipelineConfig, out: Path, reference: Path, evaluation: Path,
                       log: Any) -> dict[str, Any]:
    """The per-state progress head: rollout data -> pretraining -> one-shot adaptation -> VOC and accuracy."""
    from robo_reward.datasets import load_demos

    data = _load_or_collect(cfg, out, log)
    episodes = np.arange(len(data.start_row))
    val = data.subset(episodes[episodes % cfg.validation_every == 0])
    train = data.subset(episodes[episodes % cfg.validation_every != 0])
    head_kwargs = {"image_size": cfg.image_size, "beta": cfg.head.beta, "ensemble": cfg.head.ensemble,
                   "embed_dim": cfg.head.embed_dim, "hidden": cfg.head.hidden, "encoder": cfg.head.encoder,
                   "width": cfg.head.width}
    pretrained_path = out / "checkpoints" / "grm_pretrained.pt"
    if pretrained_path.exists():
        pretrained = LearnedGRM.load(str(pretrained_path))
    else:
        pretrained = LearnedProgressHead(cfg.cameras, cfg.anchor_camera, seed=cfg.seed, **head_kwargs)
        t0 = time.time()
        losses = train_progress_head(pretrained, train, steps=cfg.pretrain.steps, batch_size=cfg.pretrain.batch_size,
                                     lr=cfg.pretrain.lr, augment=cfg.pretrain.augment, bootstrap=cfg.head.bootstrap,
                                     seed=cfg.seed, callback=lambda s, loss: log(f"pretrain step {s}: mse {loss:.4f}"))
        log(f"pretrained on {len(train)} states in {time.time() - t0:.0f} s")
        save_grm(pretrained, pretrained_path)
        pd.DataFrame({"step": np.arange(1, len(losses) + 1), "loss": losses}).to_csv(out / "pretrain.csv", index=False)
    ref_demo = load_demos(reference)[0]
    adapted_path = out / "checkpoints" / "grm_adapted.pt"
    if adapted_path.exists():
        adapted = LearnedGRM.load(str(adapted_path))
    else:
        adapted = LearnedGRM.load(str(pretrained_path))
        assert isinstance(adapted, LearnedProgressHead)
        demo_data = ProgressData.from_demo(ref_demo, cfg.cameras, cfg.anchor_camera)
        t0 = time.time()
        train_progress_head(adapted, demo_data, steps=cfg.adapt.steps, batch_size=cfg.adapt.batch_size,
                            lr=cfg.adapt.lr, augment=cfg.adapt.augment, bootstrap=1.0, replay=train,
                            replay_fraction=cfg.adapt_replay, seed=cfg.seed + 1)
        log(f"adapted on {len(demo_data)} states of one demo in {time.time() - t0:.0f} s")
        save_grm(adapted, adapted_path)
    anchors = ref_demo.frames(cfg.anchor_camera)
    start, goal = anchors[0], anchors[-1]
    eval_demos = load_demos(evaluation)
    rows = []
    kinds = np.concatenate([np.full(n, b) for b, n in _episode_kinds(cfg)])
    val_kind = kinds[episodes[episodes % cfg.validation_every == 0]][val.episode]
    for name, model in (("zero-shot", pretrained), ("adapted", adapted)):
        assert isinstance(model, LearnedProgressHead)
        scores = np.array([voc(model, d, start, goal, np.random.default_rng(cfg.seed)) for d in eval_demos])
        pred = head_progress(model, val)
        row = {"model": name, "voc_plus": float(scores[:, 0].mean()), "voc_minus": float(scores[:, 1].mean()),
               "val_mse": float(np.mean((pred - val.progress) ** 2)),
               "val_spearman": float(stats.spearmanr(pred, val.progress).statistic), "demos": len(scores)}
        for kind in np.unique(val_kind):
            sel = val_kind == kind
            row[f"spearman_{kind}"] = float(stats.spearmanr(pred[sel], val.progress[sel]).statistic)
        rows.append(row)
    _report(out, cfg, rows)
    log((out / "report.md").read_text())
    return {"voc": rows, "pretrained": str(pretrained_path), "adapted": str(adapted_path),
            "reference": str(reference), "report": str(out / "report.md")}


def _episode_kinds(cfg: GRMPipelineConfig) -> list[tuple[str, int]]:
    """(behaviour, episodes) in collection order over all variants."""
    return [(b, cfg.data.episodes.get(b, 0)) for _ in cfg.train_variants for b in BEHAVIOURS]


def _report(out: Path, cfg: GRMPipelineConfig, rows: list[dict[str, Any]]) -> None:
    """``voc.csv``, ``report.md`` and the pretraining loss curve ``curves.png``."""
    pd.DataFrame(rows).to_csv(out / "voc.csv", index=False)
    lines = [f"# Dopamine GRM on `{cfg.env_id}` (held-out variant {cfg.heldout_variant})", ""]
    if cfg.model == "phi":
        extra = [k for k in rows[0] if k.startswith("spearman_")]
        lines += ["Per-state progress head. voc on held-out demos; val: every "
                  f"{cfg.validation_every}th pretraining-variant rollout (not trained on), against simulator progress.",
                  "", "| GRM | voc+ | voc- | val MSE | val Spearman | " + " | ".join(extra) + " |",
                  "|---|---|---|---|---|" + "---|" * len(extra)]
        lines += [f"| {r['model']} | {r['voc_plus']:.3f} | {r['voc_minus']:.3f} | {r['val_mse']:.4f} | "
                  f"{r['val_spearman']:.3f} | " + " | ".join(f"{r[k]:.3f}" for k in extra) + " |" for r in rows]
    else:
        lines += ["| GRM | voc+ (held-out demos) | voc- (reversed) | hop MSE (held-out pairs) | demos |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['voc_plus']:.3f} | {r['voc_minus']:.3f} | {r['hop_mse']:.4f} | "
                  f"{r['demos']} |" for r in rows]
    if (out / "pretrain.csv").exists():
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        curve = pd.read_csv(out / "pretrain.csv")
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot(curve["step"], curve["loss"])
        ax.set(xlabel="pretraining step", ylabel="hop MSE (train batch)", yscale="log")
        fig.tight_layout()
        fig.savefig(out / "curves.png", dpi=100)
        plt.close(fig)
        lines += ["", "![pretraining loss](curves.png)"]
    (out / "report.md").write_text("\n".join(lines) + "\n")


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """``robo-reward dopamine-grm CONFIG``: collect demos, pretrain and adapt the GRM, report VOC."""
    p = subparsers.add_parser("dopamine-grm", help="train the Dopamine GRM (pretrain, one-shot adapt, VOC)")
    p.add_argument("config", help="a kind: grm_pipeline YAML config")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    p.add_argument("--run-dir", help="run folder (default: the config's run_dir)")

    def run(args: argparse.Namespace) -> int:
        from robo_reward.config import load_any

        overrides = [*args.set, *([f"run_dir={args.run_dir}"] if args.run_dir else [])]
        cfg = load_any(args.config, overrides, expect="grm_pipeline")
        assert isinstance(cfg, GRMPipelineConfig)
        result = run_pipeline(cfg)
        print(f"report: {result['report']}")
        return 0

    p.set_defaults(func=run)
