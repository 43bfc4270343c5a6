"""Reports: a run's learning curves and ``report.md``, and a benchmark's comparison plot and table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from robo_reward.config import ExperimentConfig
from robo_reward.stats import mean_curve


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def plot_run(run_dir: Path, eval_rows: Sequence[Mapping[str, float]],
             episode_rows: Sequence[Mapping[str, float]]) -> Path:
    """``curves.png``: success rate and return against env steps, and each reward term per episode."""
    ev = pd.DataFrame(eval_rows)
    ep = pd.DataFrame(episode_rows)
    terms = [c for c in ep.columns if c.startswith("reward/")] if len(ep) else []
    has_success = bool(ev["success_rate"].notna().any())
    panels = 1 + int(has_success) + int(bool(terms))
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.4), squeeze=False)
    panel_axes = list(axes[0])
    ax = panel_axes.pop(0)
    if has_success:
        ax.plot(ev["timestep"], ev["success_rate"], marker="o")
        ax.set(title="success rate (eval)", xlabel="env steps", ylim=(-0.05, 1.05))
        ax = panel_axes.pop(0)
    ax.plot(ev["timestep"], ev["return_mean"], marker="o")
    ax.fill_between(ev["timestep"], ev["return_mean"] - ev["return_std"], ev["return_mean"] + ev["return_std"],
                    alpha=0.2)
    ax.set(title="env return (eval)", xlabel="env steps")
    if terms:
        ax = panel_axes.pop(0)
        window = max(1, len(ep) // 30)
        for term in terms:
            ax.plot(ep["timestep"], ep[term].rolling(window, min_periods=1).mean(), label=term.split("/", 1)[1])
        ax.set(title="reward terms per training episode", xlabel="env steps")
        ax.legend(fontsize=7)
    for ax in fig.axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = run_dir / "curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_run_report(run_dir: Path, cfg: ExperimentConfig, summary: Mapping[str, Any],
                     eval_rows: Sequence[Mapping[str, float]], episode_rows: Sequence[Mapping[str, float]]) -> Path:
    """``report.md`` with the setup, the final evaluation, each term's mean and the curve plot."""
    plot_run(run_dir, eval_rows, episode_rows)
    terms = ", ".join(t["name"] for t in cfg.reward.terms) or "env reward only"
    lines = [
        f"# Run `{cfg.name}` (seed {summary['seed']})", "",
        f"- env: `{cfg.env.id}` x{cfg.env.n_envs}; agent: {cfg.agent.algo} ({cfg.agent.policy})",
        f"- reward: {cfg.reward.extrinsic_weight} x env reward + {terms}",
        f"- budget: {summary['timesteps']} env steps in {summary['wall_time']:.0f} s", "",
        "## Final evaluation (env's own reward)", "",
        "| success rate | return | steps to threshold |", "|---|---|---|",
        f"| {_fmt(summary['final_success'])} | {_fmt(summary['final_return'])} | "
        f"{_fmt(summary['steps_to_threshold'])} ({summary['metric']} >= {summary['threshold']}) |", "",
    ]
    info = [k for k in summary if k.startswith("final_info/")]
    if info:
        lines += ["Env metrics at episode ends (`eval.info_metrics`):", "",
                  "| " + " | ".join(k.removeprefix("final_info/") for k in info) + " |", "|---" * len(info) + "|",
                  "| " + " | ".join(_fmt(summary[k]) for k in info) + " |", ""]
    if episode_rows:
        ep = pd.DataFrame(episode_rows)
        tail = ep.iloc[-max(1, len(ep) // 10):]
        lines += ["## What the agent was paid (per-episode sums, last 10% of training)", "",
                  "| term | mean |", "|---|---|"]
        lines += [f"| {c.split('/', 1)[1]} | {_fmt(float(tail[c].mean()))} |" for c in ep.columns
                  if c.startswith("reward/")]
        lines.append("")
    lines += ["![learning curves](curves.png)", ""]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


def plot_bench(out: Path, curves: Mapping[str, Sequence[tuple[np.ndarray, np.ndarray]]], *, metric: str,
               threshold: float | None = None, filename: str = "curves.png") -> Path:
    """One curve per design: mean over seeds with a 95% bootstrap band, against env steps."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    top = max((steps.max() for runs in curves.values() for steps, _ in runs if len(steps)), default=1.0)
    grid = np.linspace(0, top, 60)
    for name, runs in curves.items():
        mean, lo, hi = mean_curve(runs, grid)
        ax.plot(grid, mean, label=f"{name} (n={len(runs)})")
        ax.fill_between(grid, lo, hi, alpha=0.2)
    if threshold is not None:
        ax.axhline(threshold, color="grey", ls="--", lw=0.8)
    ax.set(xlabel="env steps", ylabel=metric.replace("_", " "), title=f"{metric.replace('_', ' ')} (mean, 95% CI)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / filename
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
