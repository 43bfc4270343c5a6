"""``robo-reward rapl CONFIG``: align encoders from preference triplets and measure how well each reward tracks the
hidden preference (RAPL, Tian et al., ICLR 2024, Table "Spearman(GT, reward)").

For every seed it collects a training pool and held-out rollouts of Push2D (and held-out rollouts of the second
embodiment), draws ``budget`` oracle triplets from the pool (or reads human triplets from ``preferences``), and
builds three rewards from the same encoder initialisation (seeded random, or with ``pretrain.kind: autoencoder``
the encoder of an autoencoder trained on the pool's unlabelled frames, :mod:`.pretrain`):

* ``rapl``: the encoder aligned with the OT triplet loss; reward = -D(rollout, expert demo) (with ``experts: K``,
  the closest of K demos, as the reference evaluation scores against 5);
* ``rlhf``: an MLP per-frame reward on the encoder, trained with Bradley-Terry on the triplets' pairs;
* ``unaligned``: the initial encoder's OT reward (no preference data).

``align.train`` / ``rlhf.train`` choose which encoder parameters learn: ``all`` (this build's default) or
``projector``, the reference scripts' default, where the (pretrained) backbone stays frozen and only the linear
head trains (``configs/rapl/pipeline_projector.yaml``).

It reports, on held-out rollouts, Spearman(privileged preference return, reward) over rollouts (``spearman``);
``step_spearman``, the reference evaluation's measure: Spearman(per-step preference reward, r_t) over the steps of
one rollout, averaged over the held-out rollouts (all 50 steps; the reference script keeps every 4th); held-out
triplet accuracy (for
the OT distances), the embedding spread (mean cosine cost among held-out frames; ~0 flags a collapsed encoder)
and Spearman on the transfer embodiment; ``task_reward`` (the env's own return) is a reference row. It writes ``results.csv`` (one row per seed, budget, method), ``summary.md`` / ``summary.csv`` (IQM [95%
bootstrap CI] over seeds), the preference stores ``prefs/seed<S>_b<B>.jsonl``, the training pool
``rollouts_seed<S>.npz`` (for ``robo-reward label``) and the reward models ``models/seed<S>/<method>_<B>.pt``
that RL configs load (``rapl_ot`` / ``rapl_rlhf`` terms). Finished (seed, budget) cells are kept on a rerun.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import stats

from robo_reward.errors import UserError
from robo_reward.methods.rapl.align import AlignConfig, align_encoder, embedding_spread, triplet_accuracy
from robo_reward.methods.rapl.data import collect_rollouts, expert_demos, load_rollouts, save_rollouts
from robo_reward.methods.rapl.encoder import build_encoder, embed
from robo_reward.methods.rapl.pretrain import pretrain_autoencoder
from robo_reward.methods.rapl.reward import save_reward_model
from robo_reward.methods.rapl.rlhf import RLHFReward, train_rlhf
from robo_reward.methods.rapl.sinkhorn import closest_demo_rewards
from robo_reward.preferences import (
    PreferenceOracle,
    PreferenceStore,
    append_triplets,
    load_triplets,
    triplet_arrays,
)
from robo_reward.stats import bootstrap_ci, iqm


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RolloutsConfig(_Strict):
    train: int = Field(200, ge=3)  # rollouts in the pool the oracle ranks
    heldout: int = Field(100, ge=3)
    transfer: int = Field(100, ge=0)  # held-out rollouts of the transfer embodiment (0: skip)
    frame_stride: int = Field(5, ge=1)  # frames kept for alignment (every k-th step of the 50)
    eval_triplets: int = Field(200, ge=1)  # held-out oracle triplets for triplet accuracy


class RLHFConfig(_Strict):
    steps: int = Field(150, ge=1)
    batch: int = Field(8, ge=1)
    lr: float = Field(1e-3, gt=0)
    hidden: int = Field(64, ge=1)
    train: Literal["all", "projector", "none"] = "all"  # encoder parameters trained with the head


class AlignSettings(_Strict):
    steps: int = Field(150, ge=1)
    batch: int = Field(8, ge=1)
    lr: float = Field(1e-3, gt=0)
    loss: Literal["nll", "l2"] = "nll"
    eps: float = Field(0.1, gt=0)
    iters: int = Field(50, ge=1)
    train: Literal["all", "projector"] = "all"  # projector: backbone frozen, as the reference scripts


class PretrainConfig(_Strict):
    """Self-supervised pretraining of the encoder on the pool's frames before anything is aligned."""

    kind: Literal["none", "autoencoder"] = "none"
    steps: int = Field(1500, ge=1)
    batch: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0)


class RAPLPipelineConfig(_Strict):
    """``kind: rapl_pipeline``: what ``robo-reward rapl`` collects, trains and measures."""

    kind: Literal["rapl_pipeline"] = "rapl_pipeline"
    name: str = "rapl"
    env_id: str = "robo_reward/Push2D-v0"
    transfer_env_id: str | None = "robo_reward/Push2DSquare-v0"
    budgets: list[int] = Field(default_factory=lambda: [25, 50, 150])
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4])
    tie_eps: float = Field(0.0, ge=0)
    rollouts: RolloutsConfig = Field(default_factory=RolloutsConfig)  # type: ignore[arg-type]
    encoder: dict[str, Any] = Field(default_factory=lambda: {"kind": "cnn", "embed_dim": 32, "normalize": "none"})
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)  # type: ignore[arg-type]
    align: AlignSettings = Field(default_factory=AlignSettings)  # type: ignore[arg-type]
    rlhf: RLHFConfig = Field(default_factory=RLHFConfig)  # type: ignore[arg-type]
    eval_iters: int = Field(100, ge=1)  # Sinkhorn iterations of the reward on held-out rollouts
    experts: int = Field(1, ge=1)  # expert demos the OT rewards score against (the closest one; 1 = the paper's)
    preferences: str | None = None  # a store of human triplets over `dataset` (replaces the oracle; one budget)
    dataset: str | None = None  # the rollout dataset `preferences` indexes
    torch_threads: int = Field(1, ge=1)
    output_dir: str = "runs/rapl"

    @model_validator(mode="after")
    def _pretrain_needs_the_cnn(self) -> RAPLPipelineConfig:
        if self.pretrain.kind == "autoencoder" and self.encoder.get("kind", "cnn") != "cnn":
            raise ValueError(f"pretrain.kind=autoencoder trains the small CNN encoder, but encoder.kind is "
                             f"{self.encoder.get('kind')!r}; set pretrain.kind=none (a clip backbone is pretrained "
                             f"already)")
        return self


# Fields that change what a finished cell measured: a resumed folder must have been run with the same ones.
RESULT_FIELDS = ("env_id", "transfer_env_id", "tie_eps", "rollouts", "encoder", "pretrain", "align", "rlhf",
                 "eval_iters", "preferences", "dataset", "experts")


def _check_resume(cfg: RAPLPipelineConfig, out: Path) -> None:
    """Refuse to add cells to a folder whose finished cells were measured with other settings."""
    stored_path = out / "config.json"
    if not (out / "results.csv").exists() or not stored_path.exists():
        return
    fix = "give a new --out, or delete the folder to start over"
    try:
        raw = json.loads(stored_path.read_text())
        rlhf = raw.get("rlhf")
        if isinstance(rlhf, dict) and "finetune_encoder" in rlhf:  # written before rlhf.train replaced the flag
            rlhf["train"] = "all" if rlhf.pop("finetune_encoder") else "none"
        stored = RAPLPipelineConfig.model_validate(raw).model_dump(mode="json")
    except (ValueError, AttributeError) as err:  # JSON and pydantic errors are ValueErrors
        raise UserError(f"{stored_path} (the settings of the results in {out}) is not a valid RAPL pipeline "
                        f"config: {err}; {fix}") from err
    now = cfg.model_dump(mode="json")
    changed = [k for k in RESULT_FIELDS if stored.get(k, now[k]) != now[k]]
    if changed:
        raise UserError(f"{out} holds results measured with other settings ({', '.join(changed)} differ from its "
                        f"config.json); {fix}")


METHODS = ("rapl", "rlhf", "unaligned", "task_reward")


def ot_rewards(encoder: torch.nn.Module, videos: np.ndarray, experts: np.ndarray, eps: float,
               iters: int) -> np.ndarray:
    """Per-frame OT rewards (N, T) of each video (N, T, H, W, 3) against the closest expert (K, T', H, W, 3)."""
    with torch.no_grad():
        return closest_demo_rewards(embed(encoder, videos), embed(encoder, experts), eps, iters).double().numpy()


def ot_returns(encoder: torch.nn.Module, videos: np.ndarray, expert: np.ndarray, eps: float,
               iters: int) -> np.ndarray:
    """sum_t r_t = -D(video, expert) for each video (N, T, H, W, 3); ``expert`` is one demo (T', H, W, 3) or
    several (K, T', H, W, 3), of which each video is scored against the closest."""
    experts = expert[None] if expert.ndim == 4 else expert
    return ot_rewards(encoder, videos, experts, eps, iters).sum(-1)


def rlhf_rewards(model: RLHFReward, videos: np.ndarray) -> np.ndarray:
    """The RLHF model's per-frame rewards (N, T) of videos (N, T, H, W, 3)."""
    n, t = videos.shape[:2]
    with torch.no_grad():
        return np.concatenate([model(torch.as_tensor(videos[i:i + 20].reshape(-1, *videos.shape[2:])))
                               .double().numpy().reshape(-1, t) for i in range(0, n, 20)])


def rlhf_returns(model: RLHFReward, videos: np.ndarray) -> np.ndarray:
    return rlhf_rewards(model, videos).sum(-1)


def step_spearman(target: np.ndarray, rewards: np.ndarray) -> float:
    """Mean over rollouts of Spearman(target_t, r_t) across one rollout's steps (both (N, T)); rollouts where
    either is constant (undefined correlation) are left out of the mean."""
    rhos = [stats.spearmanr(a, b).statistic for a, b in zip(target, rewards, strict=True)
            if np.ptp(a) > 0 and np.ptp(b) > 0]
    return float(np.mean(rhos)) if rhos else float("nan")


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(stats.spearmanr(a, b).statistic)


def _heldout_triplets(scores: np.ndarray, n: int, seed: int, tie_eps: float) -> np.ndarray:
    triplets = [t for t in PreferenceOracle(scores, tie_eps=tie_eps, seed=seed).triplets(n) if not t.equal]
    return triplet_arrays(triplets)[0]


class _Seed:
    """Rollouts of one seed, collected once and shared by its budgets."""

    def __init__(self, cfg: RAPLPipelineConfig, seed: int, out: Path) -> None:
        r = cfg.rollouts
        if cfg.dataset:
            self.pool = load_rollouts(cfg.dataset)
        else:
            self.pool = collect_rollouts(cfg.env_id, r.train, seed, frame_stride=r.frame_stride)
            save_rollouts(out / f"rollouts_seed{seed}.npz", self.pool)
        self.heldout = collect_rollouts(cfg.env_id, r.heldout, 10_000 + seed)
        self.transfer = (collect_rollouts(cfg.transfer_env_id, r.transfer, 20_000 + seed)
                         if cfg.transfer_env_id and r.transfer else None)
        self.experts = expert_demos(cfg.env_id, cfg.experts)
        stride = r.frame_stride
        self.heldout_sub = self.heldout["frames"][:, stride - 1::stride]
        self.spread_frames = self.heldout_sub[:20].reshape(-1, *self.heldout_sub.shape[2:])
        self.eval_triplets = _heldout_triplets(self.heldout["preference_return"], r.eval_triplets, 30_000 + seed,
                                               cfg.tie_eps)
        self.cfg, self.seed = cfg, seed
        self.pretrained: dict[str, torch.Tensor] | None = None
        self.pretrain_loss = float("nan")
        p = cfg.pretrain
        if p.kind == "autoencoder":
            encoder = build_encoder(cfg.encoder, seed=seed)
            losses = pretrain_autoencoder(encoder, self.pool["frames"], steps=p.steps, batch=p.batch, lr=p.lr,
                                          seed=seed)
            self.pretrained = {k: v.clone() for k, v in encoder.state_dict().items()}
            self.pretrain_loss = float(np.mean(losses[-10:]))

    def initial_encoder(self) -> torch.nn.Module:
        """A fresh copy of the encoder every method starts from (seeded; pretrained if the config asks)."""
        encoder = build_encoder(self.cfg.encoder, seed=self.seed)
        if self.pretrained is not None:
            encoder.load_state_dict(self.pretrained)
        return encoder.eval()


def _triplets(cfg: RAPLPipelineConfig, data: _Seed, seed: int, budget: int, out: Path) -> tuple[np.ndarray, np.ndarray]:
    if cfg.preferences:
        triplets = load_triplets(PreferenceStore(cfg.preferences))
        if not triplets:
            raise ValueError(f"{cfg.preferences} holds no triplets; label some with `robo-reward label`")
        triplets = triplets[:budget]
    else:
        store = PreferenceStore(out / "prefs" / f"seed{seed}_b{budget}.jsonl")
        if store.path.exists():
            store.path.unlink()
        oracle = PreferenceOracle(data.pool["preference_return"], tie_eps=cfg.tie_eps, seed=seed * 1000 + budget)
        append_triplets(store, oracle.triplets(budget))
        triplets = load_triplets(store)
    return triplet_arrays(triplets)


def _measure(cfg: RAPLPipelineConfig, data: _Seed, method: str, rewards: Any, accuracy: float) -> dict[str, Any]:
    """The row of one method; ``rewards(rollouts)`` gives its per-step rewards (N, T)."""
    held = rewards(data.heldout)
    row = {"method": method, "spearman": _spearman(data.heldout["preference_return"], held.sum(-1)),
           "step_spearman": step_spearman(data.heldout["step_preference"], held), "triplet_accuracy": accuracy}
    if data.transfer is not None:
        row["transfer_spearman"] = _spearman(data.transfer["preference_return"], rewards(data.transfer).sum(-1))
    return row


def run_cell(cfg: RAPLPipelineConfig, data: _Seed, seed: int, budget: int, out: Path) -> list[dict[str, Any]]:
    """Train and measure every method for one (seed, budget); saves the reward models."""
    triplets, equal = _triplets(cfg, data, seed, budget, out)
    a = cfg.align
    models = out / "models" / f"seed{seed}"
    models.mkdir(parents=True, exist_ok=True)
    eps, iters = a.eps, cfg.eval_iters

    def ot(encoder: torch.nn.Module) -> Any:
        return lambda d: ot_rewards(encoder, d["frames"], data.experts, eps, iters)

    rows = []
    unaligned = data.initial_encoder()
    acc = float(triplet_accuracy(unaligned, data.heldout_sub, data.eval_triplets, eps, a.iters).mean())
    rows.append({**_measure(cfg, data, "unaligned", ot(unaligned), acc),
                 "embedding_spread": embedding_spread(unaligned, data.spread_frames),
                 "pretrain_loss": data.pretrain_loss})
    save_reward_model(models / f"unaligned_{budget}.pt", kind="ot", encoder=unaligned, expert_frames=data.experts,
                      eps=eps, iters=iters, meta={"seed": seed})

    encoder = data.initial_encoder()
    losses = align_encoder(encoder, data.pool["frames"], triplets, equal,
                           AlignConfig(a.steps, a.batch, a.lr, a.loss, a.eps, a.iters, a.train), seed=seed)
    acc = float(triplet_accuracy(encoder, data.heldout_sub, data.eval_triplets, eps, a.iters).mean())
    rows.append({**_measure(cfg, data, "rapl", ot(encoder), acc), "loss_first": losses[0],
                 "loss_last": float(np.mean(losses[-10:])),
                 "embedding_spread": embedding_spread(encoder, data.spread_frames)})
    save_reward_model(models / f"rapl_{budget}.pt", kind="ot", encoder=encoder, expert_frames=data.experts,
                      eps=eps, iters=iters, meta={"seed": seed, "budget": budget})

    embed_dim = int(cfg.encoder.get("embed_dim", 32))
    rlhf = RLHFReward(data.initial_encoder(), embed_dim, cfg.rlhf.hidden)
    h = cfg.rlhf
    train_rlhf(rlhf, data.pool["frames"], triplets, equal, steps=h.steps, batch=h.batch, lr=h.lr,
               train=h.train, seed=seed)
    sub = rlhf_returns(rlhf, data.heldout_sub)
    t = data.eval_triplets
    acc = float(np.mean((sub[t[:, 0]] > sub[t[:, 1]]) & (sub[t[:, 1]] > sub[t[:, 2]])))
    rows.append(_measure(cfg, data, "rlhf", lambda d: rlhf_rewards(rlhf, d["frames"]), acc))
    save_reward_model(models / f"rlhf_{budget}.pt", kind="rlhf", encoder=rlhf.encoder, head=rlhf.head,
                      meta={"seed": seed, "budget": budget})

    task = {"method": "task_reward", "triplet_accuracy": float("nan"),
            "spearman": _spearman(data.heldout["preference_return"], data.heldout["task_return"]),
            "step_spearman": step_spearman(data.heldout["step_preference"], data.heldout["step_task"])}
    if data.transfer is not None:
        task["transfer_spearman"] = _spearman(data.transfer["preference_return"], data.transfer["task_return"])
    rows.append(task)
    return [{"seed": seed, "budget": budget, "triplets": len(triplets), **r} for r in rows]


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """IQM [95% CI] over seeds of each metric, per method and budget."""
    rows = []
    for (method, budget), group in results.groupby(["method", "budget"], sort=False):
        row: dict[str, Any] = {"method": method, "budget": budget, "seeds": group["seed"].nunique()}
        for key in ("spearman", "step_spearman", "triplet_accuracy", "transfer_spearman"):
            if key in group and group[key].notna().any():
                values = group[key].dropna().to_numpy()
                lo, hi = bootstrap_ci(values)
                row[key] = iqm(values)
                row[f"{key}_ci"] = f"{iqm(values):.3f} [{lo:.3f}, {hi:.3f}]"
        rows.append(row)
    return pd.DataFrame(rows)


def _markdown(summary: pd.DataFrame) -> str:
    cols = [c for c in ("spearman_ci", "step_spearman_ci", "triplet_accuracy_ci", "transfer_spearman_ci")
            if c in summary]
    head = "| method | budget | seeds | " + " | ".join(c.removesuffix("_ci") + " IQM [95% CI]" for c in cols) + " |"
    lines = [head, "|" + "---|" * (3 + len(cols))]
    for _, r in summary.sort_values(["budget", "method"]).iterrows():
        lines.append(f"| {r['method']} | {r['budget']} | {r['seeds']} | "
                     + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def run_pipeline(cfg: RAPLPipelineConfig, out: str | Path, *, seeds: list[int] | None = None) -> pd.DataFrame:
    """Run every (seed, budget) not yet in ``out/results.csv``; rewrite the tables after each one.

    A folder whose results were measured with other settings (:data:`RESULT_FIELDS`) is refused, not extended.
    """
    torch.set_num_threads(cfg.torch_threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_resume(cfg, out)
    (out / "config.json").write_text(json.dumps(cfg.model_dump(mode="json"), indent=2))
    path = out / "results.csv"
    results = pd.read_csv(path) if path.exists() else pd.DataFrame()
    budgets = cfg.budgets[:1] if cfg.preferences else cfg.budgets
    for seed in seeds if seeds is not None else cfg.seeds:
        todo = [b for b in budgets if results.empty or not ((results["seed"] == seed) & (results["budget"] == b)).any()]
        if not todo:
            continue
        data = _Seed(cfg, seed, out)
        for budget in todo:
            rows = run_cell(cfg, data, seed, budget, out)
            results = pd.concat([results, pd.DataFrame(rows)], ignore_index=True)
            results.to_csv(path, index=False)
            _write_tables(results, out)
    if not results.empty:
        _write_tables(results, out)
    return summarize(results)


def _write_tables(results: pd.DataFrame, out: Path) -> None:
    summary = summarize(results)
    summary.to_csv(out / "summary.csv", index=False)
    (out / "summary.md").write_text(_markdown(summary))
