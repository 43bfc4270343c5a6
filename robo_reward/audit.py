"""``robo-reward audit``: does a reward track the task's true progress on the states a policy visits?

A learned reward that fits its demonstrations can still be wrong everywhere else, and RL goes exactly there. The
audit rolls out several behaviours through the configured reward design, records every reward term that the
adapters put in ``info`` (``reward/<term>``) next to the env's privileged ``info["progress"]`` and success, and
reports per behaviour and term:

* Spearman and Pearson correlation of the term with the progress of the state it is paid in (s');
* the bias ``mean(term) - mean(progress)`` (meaningful for potentials on progress's [0, 1] scale);
* the episode Spearman: the term's episode sums against progress's, over the behaviour's episodes (what counts for
  a reward paid at episode end, as RAPL's, whose per-step values only share out the episode's score);
* the term's mean along time-normalised episodes of the noiseless expert (plot ``audit_expert.png``);
* the same over every behaviour's episodes pooled (behaviour ``all``): whether the term ranks the behaviours as the
  target does.

``audit.target`` names another privileged ``info`` key to correlate with instead of progress, such as Push2D's
per-step ``preference_reward`` for a reward that should track a hidden preference.

Behaviours are ``random`` (uniform actions), ``expert`` at each noise level (a scripted expert named by
``audit.expert``, ``"module:function"`` with the signature ``f(env, noise=, seed=)`` returning an object with
``reset()`` and ``act() -> (action, ...)``), and ``policy`` (the run's agent at every checkpoint in the run folder).
The audit never updates the reward: online-learning terms are frozen at the loaded checkpoint.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, SupportsFloat, cast

import gymnasium as gym
import numpy as np
import pandas as pd
from scipy import stats

from robo_reward.config import ConfigError as UserError
from robo_reward.config import ExperimentConfig, load_config

PROGRESS = "progress"


def _import(target: str) -> Callable[..., Any]:
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]
    except (ImportError, AttributeError) as exc:
        raise UserError(f"audit.expert {target!r} cannot be imported ({exc}); name a 'package.module:function' "
                        "that builds a scripted expert for the env") from None


class _Actor:
    """Chooses one vector step of actions for a behaviour."""

    def __init__(self, kind: str, venv: Any, cfg: ExperimentConfig, *, noise: float = 0.0,
                 model: Any = None, seed: int = 0) -> None:
        self.kind, self.venv, self.model = kind, venv, model
        self.space = venv.action_space
        self.space.seed(seed)
        self.experts: list[Any] = []
        if kind == "expert":
            if not cfg.audit.expert:
                raise UserError(f"behaviour 'expert' needs audit.expert (e.g. --set audit.expert="
                                f"robo_reward.envs.experts:make_expert) for env {cfg.env.id}")
            make = _import(cfg.audit.expert)
            self.experts = [make(env, noise=noise, seed=seed + i) for i, env in enumerate(_base_envs(venv))]

    def reset(self, mask: np.ndarray) -> None:
        for i in np.flatnonzero(mask):
            if self.experts:
                self.experts[i].reset()

    def act(self, obs: Any) -> np.ndarray:
        if self.kind == "random":
            return np.stack([self.space.sample() for _ in range(self.venv.num_envs)])
        if self.kind == "expert":
            return np.stack([np.asarray(e.act()[0]) for e in self.experts])
        action, _ = self.model.predict(obs, deterministic=True)
        return np.asarray(action)


def _base_envs(venv: Any) -> list[gym.Env]:
    inner = venv
    while hasattr(inner, "venv"):
        inner = inner.venv
    if not hasattr(inner, "envs"):
        raise UserError("the expert behaviour needs in-process envs; set env.vec_env: dummy for the audit")
    return list(inner.envs)


def rollout(cfg: ExperimentConfig, behaviour: str, *, episodes: int, seed: int, noise: float = 0.0,
            model: Any = None, reward_checkpoint: str | None = None) -> pd.DataFrame:
    """One row per env step: the behaviour's episode, its time index, each ``reward/<term>``, progress, success and
    the ``audit.target`` info value."""
    from robo_reward.runner import build_design, make_vec
    from robo_reward.sb3 import RewardVecEnvWrapper, VecObservationKey

    target = cfg.audit.target
    venv: Any = make_vec(cfg.env, seed)
    design = build_design(cfg.reward)
    if design is not None:
        venv = RewardVecEnvWrapper(venv, design, extrinsic_weight=cfg.reward.extrinsic_weight,
                                   checkpoint=reward_checkpoint or cfg.reward.checkpoint)
        venv.evaluator.reward.set_discount(float(cfg.agent.kwargs.get("gamma", 0.99)))
    reward_view = venv
    if cfg.env.policy_obs is not None and isinstance(venv.observation_space, gym.spaces.Dict):
        venv = VecObservationKey(venv, cfg.env.policy_obs)
    actor = _Actor(behaviour, venv, cfg, noise=noise, model=model, seed=seed)
    obs = venv.reset()
    actor.reset(np.ones(venv.num_envs, bool))
    n = venv.num_envs
    episode = np.arange(n)
    t = np.zeros(n, int)
    next_episode, finished = n, 0
    rows: list[dict[str, Any]] = []
    while finished < episodes:
        obs, rewards, dones, infos = venv.step(actor.act(obs))
        for i, info in enumerate(infos):
            if episode[i] < episodes:
                row = {k: float(cast(SupportsFloat, v)) for k, v in info.items() if k.startswith("reward/") and np.isscalar(v)}
                if design is None:
                    row["reward/extrinsic"] = float(rewards[i])
                row.update(episode=int(episode[i]), t=int(t[i]), paid=float(rewards[i]),
                           progress=float(info.get(PROGRESS, np.nan)),
                           success=float(info.get("is_success", np.nan)))
                row[target] = float(info.get(target, np.nan))
                rows.append(row)
        t += 1
        if dones.any():
            finished += int((episode[dones] < episodes).sum())
            episode[dones] = np.arange(next_episode, next_episode + int(dones.sum()))
            next_episode += int(dones.sum())
            t[dones] = 0
            actor.reset(dones)
    reward_view.close()
    frame = pd.DataFrame(rows)
    if frame[target].isna().all():
        raise UserError(f"env {cfg.env.id} reports no info[{target!r}], so there is nothing to audit against; "
                        "set audit.target to a privileged info key the env reports (the robo_reward/ tasks report "
                        "'progress')")
    return frame


def _correlate(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(Spearman, Pearson) over the finite pairs; NaN where fewer than two remain or a side is constant."""
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return np.nan, np.nan
    return float(stats.spearmanr(x[ok], y[ok]).statistic), float(stats.pearsonr(x[ok], y[ok]).statistic)


def correlations(frame: pd.DataFrame, target: str = PROGRESS) -> list[dict[str, Any]]:
    """Per ``reward/<term>`` column: Spearman, Pearson and bias against ``target`` per step, and the Spearman of
    the episode sums where the frame has an ``episode`` column (NaN where a side is constant)."""
    rows = []
    truth = frame[target].to_numpy(float)
    sums = frame.groupby("episode").sum(min_count=1) if "episode" in frame else None
    for col in [c for c in frame.columns if c.startswith("reward/")]:
        values = frame[col].to_numpy(float)
        ok = np.isfinite(values) & np.isfinite(truth)
        rho, r = _correlate(values, truth)
        episode_rho = np.nan if sums is None else _correlate(sums[col].to_numpy(float),
                                                             sums[target].to_numpy(float))[0]
        rows.append({"term": col.removeprefix("reward/"), "steps": int(ok.sum()), "spearman": rho, "pearson": r,
                     "episode_spearman": episode_rho, "bias": float(values[ok].mean() - truth[ok].mean()),
                     "mean": float(values[ok].mean())})
    return rows


def _behaviours(cfg: ExperimentConfig, run_dir: Path | None) -> list[tuple[str, str, float, Path | None]]:
    """(label, kind, noise, checkpoint folder) for each requested behaviour."""
    out: list[tuple[str, str, float, Path | None]] = []
    for name in cfg.audit.behaviours:
        if name == "random":
            out.append(("random", "random", 0.0, None))
        elif name == "expert":
            out += [(f"expert(noise={z:g})", "expert", float(z), None) for z in cfg.audit.expert_noise]
        elif name == "policy":
            if run_dir is None:
                continue
            folders = sorted((run_dir / "checkpoints").glob("step_*"), key=lambda p: int(p.name.split("_")[1]))
            out += [(f"policy@{p.name.split('_')[1]}", "policy", 0.0, p) for p in folders
                    if (p / "agent.zip").exists()]
        else:
            raise UserError(f"audit.behaviours has {name!r}; choose from random, expert, policy")
    if not out:
        raise UserError("the audit has no behaviour to roll out (policy needs a run folder with checkpoints)")
    return out


def _rows(label: str, frame: pd.DataFrame, target: str) -> list[dict[str, Any]]:
    success = float(frame.groupby("episode")["success"].max().mean())
    return [{"behaviour": label, **r, "progress_mean": float(frame[PROGRESS].mean()), "success": success}
            for r in correlations(frame, target)]


def _run_reward(run: Path) -> dict[str, Any] | None:
    """The reward section the run trained with (its config.yaml), or None if it has none."""
    path = run / "config.yaml"
    return load_config(path).reward.model_dump(mode="json") if path.exists() else None


def run_audit(cfg: ExperimentConfig, out: str | Path, *, run_dir: str | Path | None = None,
              log: Callable[[str], None] = print) -> pd.DataFrame:
    """Roll out every behaviour, write ``audit.csv``, ``audit.md``, ``audit.png`` and ``audit_expert.png``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    run = Path(run_dir) if run_dir is not None else None
    own_reward = run is not None and _run_reward(run) == cfg.reward.model_dump(mode="json")
    if run is not None and not own_reward:
        log("audit: the reward terms differ from the run's (--set reward...), so its saved reward state is not "
            "loaded; the terms start from their configs")
    rows: list[dict[str, Any]] = []
    traces: dict[str, pd.DataFrame] = {}
    frames: list[pd.DataFrame] = []
    for label, kind, noise, folder in _behaviours(cfg, run):
        model, reward_ckpt = None, None
        if folder is not None:
            from robo_reward.agents_registry import resolve_algo

            model = resolve_algo(cfg.agent.algo).load(folder / "agent.zip", device="cpu")
            reward_ckpt = str(folder / "reward.pt") if own_reward and (folder / "reward.pt").exists() else None
        frame = rollout(cfg, kind, episodes=cfg.audit.episodes, seed=cfg.audit.seed, noise=noise, model=model,
                        reward_checkpoint=reward_ckpt)
        if kind == "expert" and noise == min(cfg.audit.expert_noise):
            traces[label] = frame
        rows += _rows(label, frame, cfg.audit.target)
        frames.append(frame.assign(episode=frame["episode"] + cfg.audit.episodes * len(frames)))
        log(f"audit {label}: {len(frame)} steps")
    if len(frames) > 1:
        rows += _rows("all", pd.concat(frames, ignore_index=True), cfg.audit.target)
    table = pd.DataFrame(rows)
    table.to_csv(out / "audit.csv", index=False)
    _plots(out, table, traces, cfg.audit.target)
    (out / "audit.md").write_text(_markdown(cfg, table))
    (out / "audit.json").write_text(json.dumps({"config": cfg.name, "run_dir": str(run) if run else None,
                                                "episodes": cfg.audit.episodes, "seed": cfg.audit.seed,
                                                "target": cfg.audit.target}))
    return table


def _markdown(cfg: ExperimentConfig, table: pd.DataFrame) -> str:
    target = cfg.audit.target
    lines = [f"# Reward audit: `{cfg.name}` on `{cfg.env.id}`", "",
             f"{cfg.audit.episodes} episodes per behaviour (seed {cfg.audit.seed}); each term against the privileged "
             f"`{target}` of s' per step, and its episode sums against `{target}`'s (episode Spearman). "
             f"Bias: mean(term) - mean({target}).", "",
             "| behaviour | term | steps | Spearman | Pearson | episode Spearman | bias | mean progress | success |",
             "|---|---|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        lines.append(f"| {r['behaviour']} | {r['term']} | {r['steps']} | {r['spearman']:.3f} | {r['pearson']:.3f} | "
                     f"{r['episode_spearman']:.3f} | {r['bias']:.3f} | {r['progress_mean']:.3f} | "
                     f"{r['success']:.2f} |")
    lines += ["", "![correlations](audit.png)", ""]
    if (table["behaviour"].str.startswith("expert")).any():
        lines += ["![along the expert](audit_expert.png)", ""]
    return "\n".join(lines)


def _plots(out: Path, table: pd.DataFrame, traces: dict[str, pd.DataFrame], target: str = PROGRESS) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pivot = table.pivot(index="behaviour", columns="term", values="spearman")
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(pivot.columns), max(2.0, 0.6 + 0.45 * len(pivot))))
    im = ax.imshow(pivot.to_numpy(float), vmin=-1, vmax=1, cmap="coolwarm", aspect="auto")
    ax.set(xticks=range(len(pivot.columns)), yticks=range(len(pivot)), title=f"Spearman with true {target}")
    ax.set_xticklabels(pivot.columns, rotation=45, ha="right")
    ax.set_yticklabels(pivot.index)
    for (i, j), v in np.ndenumerate(pivot.to_numpy(float)):
        ax.text(j, i, "-" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(out / "audit.png", dpi=100)
    plt.close(fig)
    if not traces:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, frame in traces.items():
        length = frame.groupby("episode")["t"].transform("max").clip(lower=1)
        bins = np.minimum((frame["t"] / length * 10).astype(int), 9)
        for col in [PROGRESS] + [c for c in frame.columns if c.startswith("reward/")]:
            ax.plot(np.arange(10) / 9, frame.groupby(bins)[col].mean().reindex(range(10)).to_numpy(),
                    label=f"{col} ({label})", lw=2.5 if col == PROGRESS else 1.2)
    ax.set(xlabel="fraction of the expert episode", ylabel="value")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "audit_expert.png", dpi=100)
    plt.close(fig)
