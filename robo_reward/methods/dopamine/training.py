"""Training the learned GRM: pretraining on demos of several task variants, one-shot adaptation, VOC.

Pretraining uses hop pairs from every demo (``labels.py``) with the paper's MSE adaptation loss; one-shot
adaptation fine-tunes on pairs from ONE demonstration of a held-out variant (Robo-Dopamine, Sec. 3.2).
VOC (value-order correlation) is the Spearman correlation between the time index and the predicted progress
of every frame of a demo, predictions made on shuffled frames; voc+ on the demo, voc- on the reversed video.

The per-state progress head (``progress.LearnedProgressHead``) trains on :class:`ProgressData`: every state of
many rollouts (experts, perturbation bursts with recovery, decoy goals, random and failed runs) labelled with
the simulator's progress, with each rollout's own first frame as START and a same-goal demo's last frame as END
(:func:`train_progress_head`). Its one-shot adaptation uses the held-out demo's step-aware labels i/M only, mixed
with replayed pretraining batches so that one 10-frame demo does not overwrite what the head knows about
off-demo states (replay is a departure: the paper fine-tunes on the demo's pairs alone).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from scipy import stats

from robo_reward.checkpoint import atomic_write
from robo_reward.methods.dopamine.labels import anchor_episodes, point_progress, sample_pairs, sample_points
from robo_reward.methods.dopamine.progress import LearnedGRM, LearnedProgressHead, ProgressModel


class Demo(Protocol):
    """What training needs of a demonstration (``robo_reward.datasets.Episode`` provides it)."""

    @property
    def keyframes(self) -> np.ndarray: ...

    def frames(self, camera: str) -> np.ndarray: ...


@dataclass
class HopDataset:
    """Hop-labelled pairs over a set of demos; images are gathered from the demos' frames per batch."""

    frames: list[dict[str, np.ndarray]]
    task_of_episode: np.ndarray
    episode: np.ndarray
    before: np.ndarray
    after: np.ndarray
    anchor_episode: np.ndarray
    label: np.ndarray
    zero: np.ndarray
    goal_before: np.ndarray

    def __len__(self) -> int:
        return len(self.label)


class _Steps:
    """One optimiser step per call (gradient clipped at 1, then the LR schedule), with the loss averaged over
    ``log_every`` steps into ``losses`` and handed to ``callback(step, loss)``."""

    def __init__(self, net: torch.nn.Module, opt: torch.optim.Optimizer, sched: Any, log_every: int,
                 callback: Any) -> None:
        self.net, self.opt, self.sched, self.log_every, self.callback = net, opt, sched, log_every, callback
        self.losses: list[float] = []
        self.running = 0.0

    def step(self, loss: torch.Tensor, step: int) -> None:
        self.opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
        self.opt.step()
        self.sched.step()
        self.running += loss.item()
        if (step + 1) % self.log_every == 0:
            self.losses.append(self.running / self.log_every)
            self.running = 0.0
            if self.callback is not None:
                self.callback(step + 1, self.losses[-1])


def build_hop_dataset(demos: Sequence[Demo], task_ids: Sequence[int], cameras: Sequence[str], anchor_camera: str,
                      rng: np.random.Generator, *, max_pairs: int = 1000, swap_probability: float = 0.75,
                      sample_factor: int = 1, goal_query_ratio: float = 0.2) -> HopDataset:
    """Sample points and balanced pairs per demo; anchors swap to another demo of the same task with p=0.75.

    ``goal_query_ratio`` adds, per demo, that many extra pairs (relative to the sampled ones) in the exact form of
    the backward query: every BEFORE slot holds the END anchor image and the label is H = Phi_q - 1. The paper's
    GRM meets such inputs in its large pretraining mix; without them a small model trained on demo pairs alone
    answers backward queries out of distribution (a reconstruction).
    """
    needed = sorted({*cameras, anchor_camera})
    frames = [{c: d.frames(c) for c in needed} for d in demos]
    task_of_episode = np.asarray(task_ids, dtype=np.int64)
    keys = ("episode", "before", "after", "label", "zero", "goal_before")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for i, demo in enumerate(demos):
        points = sample_points(demo.keyframes, sample_factor=sample_factor)
        pairs = sample_pairs(points, rng, max_pairs=max_pairs)
        n_goal = round(goal_query_ratio * len(pairs))
        q = rng.integers(0, len(points), size=n_goal)
        parts["episode"].append(np.full(len(pairs) + n_goal, i))
        parts["before"].append(np.concatenate([pairs.before, np.full(n_goal, points[-1])]))
        parts["after"].append(np.concatenate([pairs.after, points[q]]))
        parts["label"].append(np.concatenate([pairs.label, point_progress(len(points))[q] - 1.0]))
        parts["zero"].append(np.concatenate([pairs.zero, np.zeros(n_goal, bool)]))
        parts["goal_before"].append(np.concatenate([np.zeros(len(pairs), bool), np.ones(n_goal, bool)]))
    data = {k: np.concatenate(v) for k, v in parts.items()}
    anchor = data["episode"].copy()
    for task in np.unique(task_of_episode):
        members = np.flatnonzero(task_of_episode == task)
        rows = np.flatnonzero(np.isin(data["episode"], members))
        local = np.searchsorted(members, data["episode"][rows])
        anchor[rows] = members[anchor_episodes(local, len(members), rng, swap_probability)]
    return HopDataset(frames, task_of_episode, data["episode"], data["before"], data["after"], anchor,
                      data["label"], data["zero"], data["goal_before"])


def _shift(images: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Random translation by up to ``pad`` pixels (replicate padding), one shift per image (DrQ-style)."""
    n, h, w, _ = images.shape
    padded = torch.nn.functional.pad(images.permute(0, 3, 1, 2).float(), (pad,) * 4, mode="replicate")
    dx, dy = (torch.randint(0, 2 * pad + 1, (n,), generator=gen).tolist() for _ in range(2))
    crops = [padded[i, :, y:y + h, x:x + w] for i, (x, y) in enumerate(zip(dx, dy, strict=True))]
    return torch.stack(crops).permute(0, 2, 3, 1).to(torch.uint8)


def _batch(data: HopDataset, idx: np.ndarray, cameras: Sequence[str], anchor_camera: str
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    start = np.stack([data.frames[e][anchor_camera][0] for e in data.anchor_episode[idx]])
    goal = np.stack([data.frames[e][anchor_camera][-1] for e in data.anchor_episode[idx]])
    before = np.stack([np.stack([data.frames[e][c][t] for c in cameras])
                       for e, t in zip(data.episode[idx], data.before[idx], strict=True)])
    goal_rows = data.goal_before[idx]
    before[goal_rows] = goal[goal_rows][:, None]
    after = np.stack([np.stack([data.frames[e][c][t] for c in cameras])
                      for e, t in zip(data.episode[idx], data.after[idx], strict=True)])
    return start, goal, before, after


def train_grm(model: LearnedGRM, data: HopDataset, *, steps: int = 2000, batch_size: int = 32, lr: float = 3e-4,
              weight_decay: float = 0.01, augment: int = 4, seed: int = 0, log_every: int = 100,
              callback: Any = None) -> list[float]:
    """MSE on hop labels with AdamW and a cosine schedule; returns the loss per ``log_every`` steps."""
    net = model.net
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    v = len(model.cameras)
    log = _Steps(net, opt, sched, log_every, callback)
    for step in range(steps):
        idx = rng.integers(0, len(data), size=batch_size)
        start, goal, before, after = _batch(data, idx, model.cameras, model.anchor_camera)
        images = torch.from_numpy(np.concatenate([start, goal, before.reshape(-1, *before.shape[2:]),
                                                  after.reshape(-1, *after.shape[2:])]))
        if augment:
            images = _shift(images, augment, gen)
        emb = net.encode(images)
        b = batch_size
        s, g = emb[:b], emb[b:2 * b]
        bf, af = emb[2 * b:2 * b + b * v].view(b, v, -1), emb[2 * b + b * v:].view(b, v, -1)
        task = torch.from_numpy(data.task_of_episode[data.episode[idx]])
        pred = net.hop(s, g, bf, af, task)
        loss = torch.nn.functional.mse_loss(pred, torch.from_numpy(data.label[idx]).float())
        log.step(loss, step)
    net.eval()
    return log.losses


@dataclass
class ProgressData:
    """States labelled with progress: ``frames[camera]`` (N, H, W, 3), ``progress`` (N,), ``episode`` (N,), and
    per episode the row of its first state (``start_row``, the START anchor) and an END anchor image
    (``end_anchor``, (E, H, W, 3) of the anchor camera)."""

    frames: dict[str, np.ndarray]
    progress: np.ndarray
    episode: np.ndarray
    start_row: np.ndarray
    end_anchor: np.ndarray

    def __len__(self) -> int:
        return len(self.progress)

    def subset(self, episodes: np.ndarray) -> ProgressData:
        """The rows of the given episodes (renumbered 0..len(episodes)-1)."""
        episodes = np.asarray(episodes)
        rows = np.flatnonzero(np.isin(self.episode, episodes))
        new_id = np.full(len(self.start_row), -1)
        new_id[episodes] = np.arange(len(episodes))
        old_rows = np.full(len(self.progress), -1)
        old_rows[rows] = np.arange(len(rows))
        return ProgressData({c: f[rows] for c, f in self.frames.items()}, self.progress[rows],
                            new_id[self.episode[rows]], old_rows[self.start_row[episodes]], self.end_anchor[episodes])

    @classmethod
    def from_demo(cls, demo: Demo, cameras: Sequence[str], anchor_camera: str) -> ProgressData:
        """One demo with the paper's step-aware labels Phi(s_i) = i / M (no privileged progress)."""
        points = sample_points(demo.keyframes)
        frames = {c: demo.frames(c)[points] for c in sorted({*cameras, anchor_camera})}
        return cls(frames, point_progress(len(points)), np.zeros(len(points), np.int64), np.zeros(1, np.int64),
                   demo.frames(anchor_camera)[points[-1:]])


def _phi_batch(data: ProgressData, idx: np.ndarray, cameras: Sequence[str], anchor_camera: str
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ep = data.episode[idx]
    start = data.frames[anchor_camera][data.start_row[ep]]
    goal = data.end_anchor[ep]
    state = np.stack([data.frames[c][idx] for c in cameras], axis=1)
    return start, goal, state


def train_progress_head(model: LearnedProgressHead, data: ProgressData, *, steps: int = 3000, batch_size: int = 64,
                        lr: float = 1e-3, weight_decay: float = 1e-4, augment: int = 0, bootstrap: float = 0.8,
                        replay: ProgressData | None = None, replay_fraction: float = 0.0, seed: int = 0,
                        log_every: int = 100, callback: Any = None) -> list[float]:
    """MSE of every ensemble member's sigmoid progress on the labels, AdamW with a cosine schedule.

    Each member sees a fixed random ``bootstrap`` fraction of the rows (its own mask), so the members disagree
    where the data are thin, which is what the pessimism reads. ``replay`` rows fill ``replay_fraction`` of each
    batch (all members train on them). Returns the mean loss per ``log_every`` steps.
    """
    net = model.net
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    k = net.ensemble
    masks = rng.random((len(data), k)) < bootstrap if k > 1 else np.ones((len(data), 1), bool)
    n_replay = round(replay_fraction * batch_size) if replay is not None else 0
    v = len(model.cameras)
    log = _Steps(net, opt, sched, log_every, callback)
    for step in range(steps):
        idx = rng.integers(0, len(data), size=batch_size - n_replay)
        start, goal, state = _phi_batch(data, idx, model.cameras, model.anchor_camera)
        labels, mask = data.progress[idx], masks[idx]
        if n_replay:
            assert replay is not None
            ridx = rng.integers(0, len(replay), size=n_replay)
            rs, rg, rx = _phi_batch(replay, ridx, model.cameras, model.anchor_camera)
            start, goal, state = np.concatenate([start, rs]), np.concatenate([goal, rg]), np.concatenate([state, rx])
            labels = np.concatenate([labels, replay.progress[ridx]])
            mask = np.concatenate([mask, np.ones((n_replay, k), bool)])
        b = len(labels)
        images = torch.from_numpy(np.concatenate([start, goal, state.reshape(-1, *state.shape[2:])]))
        if augment:
            images = _shift(images, augment, gen)
        emb = net.encode(images)
        pred = torch.sigmoid(net.phi(emb[:b], emb[b:2 * b], emb[2 * b:].view(b, v, -1)))
        err = (pred - torch.from_numpy(labels).float()[:, None]) ** 2
        m = torch.from_numpy(mask).float()
        loss = (err * m).sum() / m.sum().clamp(min=1.0)
        log.step(loss, step)
    net.eval()
    return log.losses


def head_progress(model: LearnedProgressHead, data: ProgressData, *, batch: int = 256) -> np.ndarray:
    """The head's (pessimistic) progress for every row of ``data``."""
    out = np.empty(len(data))
    for lo in range(0, len(data), batch):
        idx = np.arange(lo, min(len(data), lo + batch))
        start, goal, state = _phi_batch(data, idx, model.cameras, model.anchor_camera)
        emb = model.embed_states({c: state[:, i] for i, c in enumerate(model.cameras)})
        out[idx] = model.progress(model.embed_anchors(start), model.embed_anchors(goal), emb)
    return out


def predicted_progress(model: ProgressModel, views: Mapping[str, np.ndarray], first: Mapping[str, np.ndarray],
                       start: np.ndarray, goal: np.ndarray, *, batch: int = 64) -> np.ndarray:
    """Per-frame progress from the anchored modes: mean(H(s_0, s_t), 1 + H(goal, s_t)), clamped to [0, 1].

    ``views[camera]`` are the frames to score (any order), ``first[camera]`` the video's first frame s_0 (1 row),
    ``start``/``goal`` the reference anchor images. A per-state head reads phi(s_t | s_0, goal) directly, with the
    video's own first frame as START.
    """
    n = len(next(iter(views.values())))
    if isinstance(model, LearnedProgressHead):
        start = np.asarray(first[model.anchor_camera])[0]
    emb_start, emb_goal = model.embed_anchors(start[None]), model.embed_anchors(goal[None])
    goal_state = model.anchor_as_state(emb_goal)
    emb_first = model.embed_states(first)
    out = np.empty(n)
    for lo in range(0, n, batch):
        rows = slice(lo, min(n, lo + batch))
        emb = model.embed_states({c: v[rows] for c, v in views.items()})
        if isinstance(model, LearnedProgressHead):
            out[rows] = model.progress(emb_start, emb_goal, emb)
            continue
        k = len(emb)
        fwd = model.hop(emb_start, emb_goal, np.repeat(emb_first, k, axis=0), emb)
        bwd = model.hop(emb_start, emb_goal, np.repeat(goal_state, k, axis=0), emb)
        out[rows] = np.clip(0.5 * (fwd + 1.0 + bwd), 0.0, 1.0)
    return out


def voc(model: ProgressModel, demo: Demo, start: np.ndarray, goal: np.ndarray,
        rng: np.random.Generator) -> tuple[float, float]:
    """(voc+, voc-): Spearman(time, predicted progress) on the demo and on its reversed video, frames shuffled."""
    results = []
    for reverse in (False, True):
        views = {c: demo.frames(c)[::-1] if reverse else demo.frames(c) for c in model.cameras}
        n = len(next(iter(views.values())))
        order = rng.permutation(n)
        pred = np.empty(n)
        pred[order] = predicted_progress(model, {c: v[order] for c, v in views.items()},
                                         {c: v[:1] for c, v in views.items()}, start, goal)
        rho = stats.spearmanr(np.arange(n), pred).statistic
        results.append(0.0 if np.isnan(rho) else float(rho))
    return results[0], results[1]


def hop_mse(model: LearnedGRM, data: HopDataset, *, batch: int = 64) -> float:
    """Mean squared error of the model's hops against the labels of ``data`` (no augmentation)."""
    errors = []
    for lo in range(0, len(data), batch):
        idx = np.arange(lo, min(len(data), lo + batch))
        start, goal, before, after = _batch(data, idx, model.cameras, model.anchor_camera)
        pred = model.hop(model.embed_anchors(start), model.embed_anchors(goal),
                         model.embed_states({c: before[:, k] for k, c in enumerate(model.cameras)}),
                         model.embed_states({c: after[:, k] for k, c in enumerate(model.cameras)}))
        errors.append((pred - data.label[idx]) ** 2)
    return float(np.concatenate(errors).mean())


def save_grm(model: LearnedGRM, path: str | os.PathLike[str]) -> Path:
    """Write a GRM checkpoint that :meth:`LearnedGRM.load` (and the reward's ``model.checkpoint``) reads."""
    state = model.state_dict()
    return atomic_write(path, lambda tmp: torch.save(state, tmp))
