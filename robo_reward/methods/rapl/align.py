"""Preference alignment of the frame encoder from ranked video triplets (RAPL, Tian et al., ICLR 2024).

A triplet (pos > neu > neg) says the most preferred video must be closer to the middle one than to the worst:

    P = exp(-D(pos, neu)) / [exp(-D(pos, neu)) + exp(-D(pos, neg))] = sigmoid(D(pos, neg) - D(pos, neu)),

with D the OT video distance of :mod:`.sinkhorn` on the encoder's embeddings. The paper's loss is the
Bradley-Terry NLL ``-log P`` (default); the released script's variant ``||target - P||_2`` over the batch, with
target 1 for ranked triplets and 0.5 for equal-ranking ones, is ``loss: l2``. Under NLL an equal-ranking triplet
is trained towards P = 0.5 with the cross-entropy ``-0.5 log P - 0.5 log(1 - P)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robo_reward.methods.rapl.sinkhorn import cosine_cost, ot_distance


def triplet_probability(d_pos_neu: torch.Tensor, d_pos_neg: torch.Tensor) -> torch.Tensor:
    """P(pos is closer to neu than to neg) under Bradley-Terry on negative distances."""
    return torch.sigmoid(d_pos_neg - d_pos_neu)


def triplet_loss(d_pos_neu: torch.Tensor, d_pos_neg: torch.Tensor, equal: torch.Tensor | None = None,
                 kind: str = "nll") -> torch.Tensor:
    """The alignment loss over a batch of triplet distances.

    :param d_pos_neu: D(pos, neu) per triplet.
    :param d_pos_neg: D(pos, neg) per triplet.
    :param equal: True for equal-ranking triplets (target P = 0.5).
    :param kind: ``nll`` (the paper's -log P) or ``l2`` (the reference script's ||target - P||_2).
    """
    equal = torch.zeros_like(d_pos_neu, dtype=torch.bool) if equal is None else equal
    target = torch.where(equal, 0.5, 1.0).to(d_pos_neu.dtype)
    margin = d_pos_neg - d_pos_neu
    if kind == "nll":
        return (-(target * F.logsigmoid(margin) + (1 - target) * F.logsigmoid(-margin))).mean()
    if kind == "l2":
        return torch.linalg.vector_norm(target - triplet_probability(d_pos_neu, d_pos_neg))
    raise ValueError(f"loss={kind!r}; use 'nll' or 'l2'")


def triplet_distances(encoder: nn.Module, videos: torch.Tensor, triplets: np.ndarray, eps: float,
                      iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(D(pos, neu), D(pos, neg)) for each row of ``triplets`` (indices into ``videos``, (N, T, H, W, 3))."""
    ids, inverse = np.unique(np.asarray(triplets), return_inverse=True)
    n, t = len(ids), videos.shape[1]
    emb = encoder(videos[torch.as_tensor(ids)].reshape(n * t, *videos.shape[2:])).reshape(n, t, -1)
    idx = torch.as_tensor(inverse.reshape(-1, 3))
    pos, neu, neg = emb[idx[:, 0]], emb[idx[:, 1]], emb[idx[:, 2]]
    d = ot_distance(torch.stack([pos, pos]), torch.stack([neu, neg]), eps, iters)
    return d[0], d[1]


@dataclass
class AlignConfig:
    """Alignment hyperparameters (the reference script: Adam, batch of 2 triplets, 50 epochs, lr 1e-2/1e-4).

    The small build trains a fixed number of Adam steps on batches of ``batch`` triplets, so every budget gets
    the same compute. ``train`` is ``all`` (every encoder parameter that needs gradients, but a frozen backbone's)
    or ``projector`` (the reference scripts' default: the backbone frozen, only the encoder's projector head trained).
    """

    steps: int = 150
    batch: int = 8
    lr: float = 1e-3
    loss: str = "nll"
    eps: float = 0.1
    iters: int = 50
    train: str = "all"


def trainable_parameters(encoder: nn.Module, train: str) -> list[nn.Parameter]:
    """The encoder parameters that train: ``all`` (those that need gradients, but a ``backbone``'s), or only the
    ``projector`` head's.

    :param train: ``all`` or ``projector``.
    """
    if train == "all":
        backbone = getattr(encoder, "backbone", None)
        frozen = set() if backbone is None else {id(p) for p in backbone.parameters()}
        return [p for p in encoder.parameters() if p.requires_grad and id(p) not in frozen]
    if train == "projector":
        projector = getattr(encoder, "projector_parameters", None)
        if not callable(projector):
            raise ValueError(f"train=projector (align.train or rlhf.train) needs an encoder with a projector head; "
                             f"{type(encoder).__name__} has none; use train=all")
        return list(projector())
    raise ValueError(f"align.train={train!r}; use 'all' or 'projector'")


@contextmanager
def trained_only(module: nn.Module, params: Iterable[nn.Parameter]) -> Iterator[None]:
    """Within the block only ``params`` of ``module`` need gradients, so no backward pass runs through the frozen
    layers; the caller's ``requires_grad`` flags come back afterwards, also on an error."""
    keep = {id(p) for p in params}
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(id(p) in keep)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def align_encoder(encoder: nn.Module, videos: np.ndarray | torch.Tensor, triplets: np.ndarray,
                  equal: np.ndarray | None = None, cfg: AlignConfig | None = None, seed: int = 0) -> list[float]:
    """Train ``encoder`` in place on ranked triplets; returns the loss of every step.

    :param videos: (N, T, H, W, 3) uint8 frames of the rollouts the triplets index.
    :param triplets: (M, 3) int rows (pos, neu, neg).
    :param equal: (M,) bool, equal-ranking triplets.
    """
    cfg = cfg or AlignConfig()
    triplets = np.asarray(triplets, dtype=np.int64)
    if triplets.ndim != 2 or triplets.shape[1] != 3 or len(triplets) == 0:
        raise ValueError(f"triplets must be a non-empty (M, 3) array of video indices, got shape {triplets.shape}")
    equal = np.zeros(len(triplets), bool) if equal is None else np.asarray(equal, bool)
    vids = torch.as_tensor(np.asarray(videos))
    params = trainable_parameters(encoder, cfg.train)
    opt = torch.optim.Adam(params, lr=cfg.lr)
    rng = np.random.default_rng(seed)
    losses = []
    encoder.train()
    with trained_only(encoder, params):
        for _ in range(cfg.steps):
            rows = rng.choice(len(triplets), size=min(cfg.batch, len(triplets)), replace=False)
            d1, d2 = triplet_distances(encoder, vids, triplets[rows], cfg.eps, cfg.iters)
            loss = triplet_loss(d1, d2, torch.as_tensor(equal[rows]), cfg.loss)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    encoder.eval()
    return losses


def triplet_accuracy(encoder: nn.Module, videos: np.ndarray | torch.Tensor, triplets: np.ndarray, eps: float = 0.1,
                     iters: int = 50) -> np.ndarray:
    """Per triplet: 1.0 if D(pos, neu) < D(pos, neg) (the ranking the encoder agrees with), else 0.0."""
    with torch.no_grad():
        d1, d2 = triplet_distances(encoder.eval(), torch.as_tensor(np.asarray(videos)), triplets, eps, iters)
    return (d1 < d2).double().numpy()


def embedding_spread(encoder: nn.Module, frames: np.ndarray | torch.Tensor) -> float:
    """Mean cosine cost between the embeddings of ``frames`` (N, H, W, 3): ~0 flags a collapsed encoder.

    All frames embedded in one direction is a stationary point of the triplet loss (every D is 0, the loss is
    log 2 and the cosine's gradient vanishes); the RAPL benchmark logs this to tell collapse from over-fitting.
    """
    with torch.no_grad():
        emb = encoder.eval()(torch.as_tensor(np.asarray(frames)))
        return float(cosine_cost(emb, emb).mean())
