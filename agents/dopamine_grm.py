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

from robo_reward.methods.dopamine.progress import LearnedGRM
from robo_reward.methods.dopamine.training import build_hop_dataset, hop_mse, save_grm, train_grm, voc


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int = Field(2000, ge=0)
    batch_size: int = Field(32, ge=1)
    lr: float = 3e-4
    augment: int = 4


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
    for i, (name, kwargs) in enumerate(cfg.train_variants.items()):
        t0 = time.time()
        train_sets[name] = _demos(cfg, out, f"train-{name}", kwargs, cfg.demos_per_variant, cfg.seed + 1000 * i)
        log(f"demos {name}: {train_sets[name]} ({time.time() - t0:.0f} s)")
    heldout_seed = cfg.seed + 1000 * len(tasks) + 500
    reference = _demos(cfg, out, "heldout-reference", cfg.heldout_variant, 1, heldout_seed)
    evaluation = _demos(cfg, out, "heldout-eval", cfg.heldout_variant, cfg.heldout_eval_demos, heldout_seed + 1)

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


def _report(out: Path, cfg: GRMPipelineConfig, rows: list[dict[str, Any]]) -> None:
    """``voc.csv``, ``report.md`` and the pretraining loss curve ``curves.png``."""
    pd.DataFrame(rows).to_csv(out / "voc.csv", index=False)
    lines = [f"# Dopamine GRM on `{cfg.env_id}` (held-out variant {cfg.heldout_variant})", "",
             "| GRM | voc+ (held-out demos) | voc- (reversed) | hop MSE (held-out pairs) | demos |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['voc_plus']:.3f} | {r['voc_minus']:.3f} | {r['hop_mse']:.4f} | {r['demos']} |"
              for r in rows]
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
