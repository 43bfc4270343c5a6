"""Benchmarks: several reward designs over seeds, one table and one plot.

Each config is a design. The env's own reward is always one of them: if no config has an empty reward, a
baseline is derived from the first config with its reward terms removed. Runs go to ``OUT/runs/<design>/seed<k>``;
finished runs are skipped when the same benchmark is started again, so a killed benchmark resumes. Started again
with a larger ``budget.total_timesteps``, a benchmark extends its finished runs from their last checkpoints (the
replay buffer included) instead of training them again; a run that went past the budget asked for is an error, not
a row of another budget in the table. Results (``results.csv``, ``summary.csv``, ``summary.md``, ``curves.png``)
are rewritten after every finished run.

The table reports, per design, the final success rate and return as IQM with 95% bootstrap CIs over seeds, the
env steps to reach the success (or return) threshold, the env steps its mean curve needs to reach the baseline's
final level (and that as a fraction of the baseline's budget), the probability of improving on the baseline,
wall time, and each ``eval.info_metrics`` key's final value (the env's ``info[key]`` at the final evaluation's
episode ends: ``final_info/<key>`` in each run's summary) as IQM with its 95% CI. Beside the final value it
reports the late one (``late_<metric>``): each run's mean over its evaluations in the last quarter of its budget,
because one final evaluation of an off-policy learner can swing from 1 to 0 between two checkpoints (SAC on
Push2D did), and a design should not win or lose on which side of a swing its budget ends.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robo_reward.config import EVAL_COLUMNS, FINAL_KEYS, ExperimentConfig, load_config
from robo_reward.errors import UserError, run_config_path
from robo_reward.report import plot_bench
from robo_reward.stats import bootstrap_ci, iqm, mean_curve, probability_of_improvement

BASELINE = "env_reward"


def with_baseline(designs: Sequence[ExperimentConfig]) -> list[ExperimentConfig]:
    """The designs plus, unless one already is, the env's own reward on the first design's setup."""
    designs = list(designs)
    names = [d.name for d in designs]
    if len(set(names)) != len(names):
        raise ValueError(f"benchmark designs need distinct names, got {names}; set name: in each config")
    if any(not d.reward.terms for d in designs):
        return designs
    base = designs[0].model_copy(deep=True)
    base.name = BASELINE
    base.reward.terms, base.reward.extrinsic_weight, base.reward.checkpoint = [], 1.0, None
    base.agent.relabel = None
    return [base, *designs]


def _run_one(cfg_json: str, seed: int, run_dir: str) -> dict[str, Any]:
    import torch

    from robo_reward.runner import TrainingRun, resume

    torch.set_num_threads(1)
    cfg = ExperimentConfig.model_validate_json(cfg_json)
    run = TrainingRun(cfg, run_dir, seed=seed, progress=False)
    if run.latest_checkpoint() is not None:
        return resume(run_dir, progress=False, overrides=[f"budget.total_timesteps={cfg.budget.total_timesteps}"])
    run.setup()
    return run.learn()


def _exit_with_parent(parent: int) -> None:
    """Pool initializer: end the worker once the bench process is gone. A killed bench otherwise leaves its
    workers running the runs already queued to them, into the same folders a restarted bench then also trains."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-bench", daemon=True).start()


def _extends(design: ExperimentConfig, run_dir: Path) -> bool:
    """Whether a finished run is to be continued to ``design``'s larger budget; one run to a larger one is an error.

    The budget is the one in the run's own ``config.yaml`` (a resume writes its new one there), not its step count,
    which passes the budget by up to one collection: a vector step for SAC, a whole ``n_steps x n_envs`` rollout
    for PPO.
    """
    budget, ran_to = design.budget.total_timesteps, load_config(run_config_path(run_dir)).budget.total_timesteps
    if ran_to > budget:
        raise UserError(f"{run_dir} was run to {ran_to} env steps but design {design.name!r} asks for {budget}: "
                         f"pass the budget it was run with (--set budget.total_timesteps={ran_to}) or another --out")
    return ran_to < budget


def bench_plan(designs: Sequence[ExperimentConfig], out: Path,
               seeds: int | None = None) -> list[tuple[ExperimentConfig, int, Path]]:
    """(design, seed, run folder) in seed-major order, so a benchmark stopped early has every design's first
    seeds rather than all seeds of the first designs."""
    ranked = []
    for order, d in enumerate(designs):
        for rank, seed in enumerate(range(seeds) if seeds is not None else d.seeds):
            ranked.append(((rank, order), (d, int(seed), out / "runs" / d.name / f"seed{seed}")))
    return [item for _, item in sorted(ranked, key=lambda r: r[0])]


def run_bench(designs: Sequence[ExperimentConfig], out: str | Path, *, seeds: int | None = None,
              jobs: int = 1, progress: bool = True) -> pd.DataFrame:
    """Run every design over ``seeds`` seeds (default: each config's ``seeds``) with ``jobs`` processes."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    designs = with_baseline(designs)
    plan = bench_plan(designs, out, seeds)
    done: list[dict[str, Any]] = []
    todo = []
    for d, seed, run_dir in plan:
        path = run_dir / "summary.json"
        summary = json.loads(path.read_text()) if path.exists() else None
        if summary is not None and not _extends(d, run_dir):
            done.append(summary)
        else:
            todo.append((d, seed, run_dir))
    (out / "designs.json").write_text(json.dumps([d.model_dump(mode="json") for d in designs], indent=1))
    summarize(out, designs, done)

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]bench"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("runs", total=len(plan), completed=len(done))
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=ctx, initializer=_exit_with_parent,
                                 initargs=(os.getpid(),)) as pool:
            pending: dict[Future[dict[str, Any]], tuple[str, int]] = {
                pool.submit(_run_one, d.model_dump_json(), seed, str(run_dir)): (d.name, seed)
                for d, seed, run_dir in todo
            }
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    pending.pop(fut)
                    done.append(fut.result())
                    bar.advance(task)
                    summarize(out, designs, done)
    return summarize(out, designs, done)


def _curves(out: Path, name: str, metric: str) -> list[tuple[np.ndarray, np.ndarray]]:
    curves = []
    for csv in sorted((out / "runs" / name).glob("seed*/eval.csv")):
        ev = pd.read_csv(csv)
        if metric in ev:
            curves.append((ev["timestep"].to_numpy(), ev[metric].to_numpy()))
    return curves


def _late(out: Path, name: str, seed: int, metric: str, budget: float) -> float:
    """Mean of ``metric`` over the run's evaluations at or after 3/4 of ``budget``."""
    csv = out / "runs" / name / f"seed{seed}" / "eval.csv"
    if not csv.exists():
        return float("nan")
    ev = pd.read_csv(csv)
    late = ev.loc[ev["timestep"] >= 0.75 * budget, metric] if metric in ev else pd.Series(dtype=float)
    return float(late.mean()) if len(late) else float("nan")


def _first_reaching(grid: np.ndarray, curve: np.ndarray, level: float) -> float | None:
    hit = np.flatnonzero(curve >= level - 1e-9)
    return float(grid[hit[0]]) if hit.size else None


def summarize(out: Path, designs: Sequence[ExperimentConfig], results: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Write results.csv, summary.csv/.md and curves.png for the runs finished so far."""
    res = pd.DataFrame(results)
    if res.empty:
        return res
    metric = EVAL_COLUMNS[designs[0].eval.metric]
    final_key = FINAL_KEYS[designs[0].eval.metric]
    late_key = final_key.replace("final_", "late_", 1)
    res[late_key] = [_late(out, r["name"], int(r["seed"]), metric, float(r.get("timesteps", np.nan)))
                    for _, r in res.iterrows()]
    res.sort_values(["name", "seed"]).to_csv(out / "results.csv", index=False)
    baseline = next((d.name for d in designs if not d.reward.terms), designs[0].name)
    curves = {d.name: _curves(out, d.name, metric) for d in designs}
    top = max((s.max() for runs in curves.values() for s, _ in runs if len(s)), default=1.0)
    grid = np.linspace(0, top, 200)
    base_rows = res[res["name"] == baseline]
    base_final = float(np.mean(base_rows[final_key])) if len(base_rows) else float("nan")
    rows = []
    for d in designs:
        r = res[res["name"] == d.name]
        if r.empty:
            continue
        row: dict[str, Any] = {"design": d.name, "seeds": len(r)}
        for key in ("final_success", "final_return", "final_progress", late_key, *info_columns(designs)):
            if key not in r:
                continue
            vals = r[key].dropna().astype(float).to_numpy() if key.startswith(("final_info/", "late_")) \
                else r[key].astype(float).to_numpy()
            lo, hi = bootstrap_ci(vals)
            row[f"{key}_iqm"], row[f"{key}_ci_low"], row[f"{key}_ci_high"] = iqm(vals), lo, hi
        reached = r["steps_to_threshold"].dropna().astype(float).to_numpy()
        row["reached_threshold"] = f"{len(reached)}/{len(r)}"
        row["steps_to_threshold_iqm"] = iqm(reached) if reached.size else float("nan")
        runs = curves[d.name]
        steps_to_base = None
        if runs and _defined_level(base_final, final_key):
            steps_to_base = _first_reaching(grid, mean_curve(runs, grid)[0], base_final)
        row["steps_to_baseline_final"] = steps_to_base
        base_budget = d.budget.total_timesteps
        row["fraction_of_baseline_steps"] = steps_to_base / base_budget if steps_to_base is not None else None
        row["p_improve_vs_baseline"] = (probability_of_improvement(r[final_key], base_rows[final_key])
                                        if d.name != baseline and len(base_rows) else float("nan"))
        row["wall_time_s"] = float(r["wall_time"].mean())
        rows.append(row)
    table = pd.DataFrame(rows)
    table.to_csv(out / "summary.csv", index=False)
    (out / "summary.md").write_text(_markdown(table, designs[0], baseline, base_final, final_key,
                                              info_columns(designs), late_key))
    plot_bench(out, {k: v for k, v in curves.items() if v}, metric=metric, threshold=designs[0].eval.threshold)
    if metric != "final_progress" and "final_progress" in res and res["final_progress"].notna().any():
        progress = {d.name: _curves(out, d.name, "final_progress") for d in designs}
        plot_bench(out, {k: v for k, v in progress.items() if v}, metric="final_progress",
                   filename="curves_progress.png")
    return table


def info_columns(designs: Sequence[ExperimentConfig]) -> list[str]:
    """``final_info/<key>`` for every ``eval.info_metrics`` key of any design, in first-seen order."""
    keys = dict.fromkeys(key for d in designs for key in d.eval.info_metrics)
    return [f"final_info/{key}" for key in keys]


def _defined_level(level: float, final_key: str) -> bool:
    """Whether "steps to the baseline's final level" means anything: a success or progress of 0 is reached at
    step 0 by every design."""
    if np.isnan(level):
        return False
    return level > 0 or final_key == "final_return"


def _ci(row: pd.Series, key: str) -> str:
    if f"{key}_iqm" not in row or pd.isna(row[f"{key}_iqm"]):
        return "-"
    return f"{row[f'{key}_iqm']:.3g} [{row[f'{key}_ci_low']:.3g}, {row[f'{key}_ci_high']:.3g}]"


def _markdown(table: pd.DataFrame, first: ExperimentConfig, baseline: str, base_final: float,
              final_key: str, info: Sequence[str] = (), late_key: str | None = None) -> str:
    metric = final_key.removeprefix("final_")
    late = late_key is not None and f"{late_key}_iqm" in table
    progress = "final_progress_iqm" in table and bool(table["final_progress_iqm"].notna().any())
    info_head = "".join(f"{key.removeprefix('final_info/')} | " for key in info)
    lines = [
        f"# Benchmark on `{first.env.id}` ({first.agent.algo}, {first.budget.total_timesteps} env steps per run)", "",
        f"Final {metric} IQM with 95% bootstrap CI over seeds; threshold {first.eval.metric} >= "
        f"{first.eval.threshold}; baseline `{baseline}` (final mean {base_final:.3g}"
        + ("" if _defined_level(base_final, final_key) else "; steps to the baseline's final level are undefined")
        + ")." + (f" Late {metric}: each run's mean over its evaluations in the last quarter of its budget."
                  if late else ""), "",
        "| design | seeds | final success | final return | " + ("final progress | " if progress else "")
        + (f"late {metric} | " if late else "")
        + info_head + "reached threshold | steps to threshold (IQM) | steps to baseline's final | fraction of budget "
        "| P(improve) | wall time (s) |",
        "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if progress else "") + ("---|" if late else "")
        + "---|" * len(info),
    ]
    if info:
        names = ", ".join(f"`{key.removeprefix('final_info/')}`" for key in info)
        lines[4:4] = [f"Columns {names}: the env's `info[key]` averaged over the final evaluation's episode ends "
                      "(`eval.info_metrics`), IQM [95% CI] over seeds.", ""]
    for _, row in table.iterrows():
        frac = row["fraction_of_baseline_steps"]
        lines.append(
            f"| {row['design']} | {row['seeds']} | {_ci(row, 'final_success')} | {_ci(row, 'final_return')} | "
            + (f"{_ci(row, 'final_progress')} | " if progress else "")
            + (f"{_ci(row, late_key)} | " if late and late_key else "")
            + "".join(f"{_ci(row, key)} | " for key in info)
            + f"{row['reached_threshold']} | {_num(row['steps_to_threshold_iqm'])} | "
            f"{_num(row['steps_to_baseline_final'])} | {_num(frac, 2)} | {_num(row['p_improve_vs_baseline'], 2)} | "
            f"{row['wall_time_s']:.0f} |")
    lines += ["", "![curves](curves.png)", ""]
    if progress and metric != "progress":
        lines += ["![progress](curves_progress.png)", ""]
    return "\n".join(lines)


def _num(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "-"
    return f"{float(x):.{digits}g}"


def default_jobs() -> int:
    return max(1, min(2, os.cpu_count() or 1))
