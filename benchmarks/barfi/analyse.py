"""Analyse a BARFI ``robo-reward bench`` folder: permutation tests, normalised scores, curves, learned phi maps.

Reads what the bench wrote (each run's ``summary.json``, ``eval.csv``, ``tb/progress.csv`` and checkpoint) and
trains nothing. Writes ``analysis.md``, ``curves_episodes.png`` (primary return of the training episodes against
episodes) and, for the gridworld, ``phi_maps.png`` (the learned phi1/phi2 per grid cell, mean over seeds)::

    python benchmarks/barfi/analyse.py runs/barfi/gridworld benchmarks/barfi/gridworld
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from robo_reward.methods.barfi import BlendHead, load_blend
from robo_reward.stats import bootstrap_ci, iqm, mean_curve

ORDER = ["rp_only", "naive_good", "potential_good", "barfi_good", "naive_bad", "potential_bad", "barfi_bad"]
PAIRS = [("barfi_bad", "naive_bad"), ("barfi_bad", "potential_bad"), ("barfi_bad", "rp_only"),
         ("barfi_good", "naive_good"), ("naive_good", "barfi_good"), ("barfi_good", "rp_only"),
         ("rp_only", "naive_bad"), ("rp_only", "potential_bad"), ("naive_good", "rp_only"),
         ("barfi_good", "potential_good")]


def permutation_p(a: np.ndarray, b: np.ndarray, *, resamples: int = 20000, seed: int = 0) -> float:
    """One-sided p-value of mean(a) - mean(b) under random relabelling of the runs (a > b is the alternative)."""
    rng = np.random.default_rng(seed)
    pooled, n = np.concatenate([a, b]), len(a)
    observed = a.mean() - b.mean()
    perms = np.argsort(rng.random((resamples, len(pooled))), axis=1)
    diffs = pooled[perms[:, :n]].mean(axis=1) - pooled[perms[:, n:]].mean(axis=1)
    return float((np.sum(diffs >= observed - 1e-12) + 1) / (resamples + 1))


def _iqm_numpy(x: np.ndarray) -> float:
    """The same 25%-trimmed mean as :func:`robo_reward.stats.iqm`, without scipy's per-call overhead (the
    bootstrap calls it thousands of times)."""
    cut = int(0.25 * len(x))
    return float(np.sort(x)[cut:len(x) - cut].mean())


def _fmt(values: np.ndarray) -> str:
    if not np.isfinite(values).all():
        return "-"
    lo, hi = bootstrap_ci(values, statistic=_iqm_numpy)
    return f"{iqm(values):.3g} [{lo:.3g}, {hi:.3g}]"


def late_training_return(run: Path, records: int = 3) -> float:
    """Mean primary return of the last ``records`` x 20 training episodes (the on-policy return the paper plots)."""
    log = pd.read_csv(run / "tb" / "progress.csv").dropna(subset=["rollout/primary_return"])
    return float(log["rollout/primary_return"].iloc[-records:].mean())


def scores(bench: Path) -> tuple[pd.DataFrame, float]:
    """Per run: the final evaluation's primary return and the late training return; the random policy's return
    (every run's first evaluation, at theta = 0)."""
    res = pd.DataFrame([json.loads(f.read_text()) for f in sorted(bench.glob("runs/*/seed*/summary.json"))])
    res["late_return"] = [late_training_return(bench / "runs" / n / f"seed{s}") for n, s in zip(res["name"], res["seed"],
                                                                                                 strict=True)]
    res["final_length"] = [pd.read_csv(bench / "runs" / n / f"seed{s}" / "eval.csv")["length_mean"].iloc[-1]
                           for n, s in zip(res["name"], res["seed"], strict=True)]
    firsts = [pd.read_csv(f)["return_mean"].iloc[0] for f in sorted(bench.glob("runs/*/seed*/eval.csv"))]
    return res, float(np.mean(firsts))


def table(bench: Path) -> str:
    res, random = scores(bench)
    rp = res.loc[res["name"] == "rp_only", "final_return"].to_numpy()
    scale = rp.mean() - random
    if abs(scale) < 1e-9:
        scale = float("nan")
    lines = [f"Random policy (theta = 0) return {random:.3g}; r_p-only final mean {rp.mean():.3g}. Normalised score "
             "= (return - random) / (r_p-only mean - random) ('-' where r_p-only does no better than random).", "",
             "| design | seeds | final primary return IQM [95% CI] | normalised IQM [95% CI] | last 60 training "
             "episodes' primary return IQM [95% CI] | final episode length IQM [95% CI] |", "|---|---|---|---|---|---|"]
    extra = [c for c in res.columns if c.startswith("final_info/")]
    if extra:
        lines[2] = lines[2] + "".join(f" {c.removeprefix('final_info/')} (mean) |" for c in extra)
        lines[3] += "---|" * len(extra)
    for name in sorted(res["name"].unique(), key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n)):
        rows = res[res["name"] == name]
        ret = rows["final_return"].to_numpy(dtype=float)
        cells = [name, str(len(ret)), _fmt(ret), _fmt((ret - random) / scale), _fmt(rows["late_return"].to_numpy()),
                 _fmt(rows["final_length"].to_numpy(dtype=float))]
        cells += [f"{rows[c].mean():.3g}" for c in extra]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Permutation tests over seeds (20000 relabellings, one-sided, H1: first > second), on the final "
              "evaluation's return and on the last 60 training episodes' return:", "",
              "| comparison | final: mean difference | final: p | late: mean difference | late: p |",
              "|---|---|---|---|---|"]
    for a, b in PAIRS:
        cells = [f"{a} > {b}"]
        for key in ("final_return", "late_return"):
            x = res.loc[res["name"] == a, key].to_numpy(dtype=float)
            y = res.loc[res["name"] == b, key].to_numpy(dtype=float)
            cells += [f"{x.mean() - y.mean():+.3g}", f"{permutation_p(x, y):.3g}"] if len(x) and len(y) else ["-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def episode_curves(bench: Path, out: Path) -> None:
    """Primary return of the training episodes (mean of the last 20) against episodes, mean and 95% band."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for design in sorted(p.name for p in (bench / "runs").iterdir()):
        runs = []
        for csv in sorted((bench / "runs" / design).glob("seed*/tb/progress.csv")):
            log = pd.read_csv(csv).dropna(subset=["rollout/episodes"])
            runs.append((log["rollout/episodes"].to_numpy(), log["rollout/primary_return"].to_numpy()))
        if not runs:
            continue
        grid = np.linspace(0, min(r[0].max() for r in runs), 100)
        mean, lo, hi = mean_curve(runs, grid)
        ax.plot(grid, mean, label=f"{design} ({len(runs)})")
        ax.fill_between(grid, lo, hi, alpha=0.15)
    ax.set(xlabel="training episodes", ylabel="primary return (training episodes)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "curves_episodes.png", dpi=110)
    plt.close(fig)


def phi_maps(bench: Path, out: Path) -> bool:
    """Mean learned phi1, phi2 per grid cell (phi is read at s_t; the centre bonus is paid at s_{t+1})."""
    rows = []
    for design in ("barfi_good", "barfi_bad"):
        heads = [BlendHead.from_export(load_blend(run)) for run in sorted((bench / "runs" / design).glob("seed*"))
                 if (run / "checkpoints" / "latest").exists()]
        if not heads or heads[0].features.kind != "grid":
            continue
        bins = heads[0].features.bins
        maps = np.mean([(h.weight.detach().numpy() + h.bias.detach().numpy()[:, None]) for h in heads], axis=0)
        rows.append((design, len(heads), maps.reshape(2, bins, bins)))
    if not rows:
        return False
    fig, axes = plt.subplots(len(rows), 2, figsize=(8, 3.6 * len(rows)), squeeze=False)
    for (design, n, maps), ax_row in zip(rows, axes, strict=True):
        for k, ax in enumerate(ax_row):
            grid = maps[k].T
            limit = np.abs(grid).max() or 1.0
            im = ax.imshow(grid, origin="lower", extent=(0, 1, 0, 1), cmap="coolwarm", vmin=-limit, vmax=limit)
            ax.add_patch(plt.Rectangle((0.4, 0.4), 0.2, 0.2, fill=False, ls="--", color="k"))
            ax.add_patch(plt.Rectangle((0.75, 0.75), 0.24, 0.24, fill=False, color="g"))
            ax.set_title(f"{design}: phi{k + 1}(s) (mean of {n} seeds)", fontsize=9)
            fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(out / "phi_maps.png", dpi=110)
    plt.close(fig)
    return True


def main(bench: str, out: str) -> None:
    bench_dir, out_dir = Path(bench), Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = f"# BARFI analysis of `{bench_dir}`\n\n" + table(bench_dir)
    episode_curves(bench_dir, out_dir)
    text += "\n![primary return against training episodes](curves_episodes.png)\n"
    if phi_maps(bench_dir, out_dir):
        text += "\n![learned phi maps](phi_maps.png)\n"
    (out_dir / "analysis.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main(*sys.argv[1:3])
