"""The RLHF baseline: a per-frame MLP reward on the same encoder, trained with Bradley-Terry from the same triplets.

As in RAPL's comparison (Tian et al., ICLR 2024), the reward net learns directly from the preferences: a video's
return is the sum of r(phi(o_t)) over its frames, and each triplet pos > neu > neg gives three ordered pairs
(pos > neu, pos > neg, neu > neg), each trained with -log sigmoid(R_win - R_lose); equal-ranking triplets give
pairs with target 0.5. The encoder starts from the same initialisation as RAPL's and trains the same parameters
(``train``: all of them, only its projector head, or none), so the two differ only in the objective.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robo_reward.methods.rapl.align import trainable_parameters, trained_only


class RLHFReward(nn.Module):
    """r(o_t) = MLP(phi(o_t)); :meth:`returns` sums it over each video's frames.

    :param encoder: the frame encoder (shared initialisation with RAPL's).
    :param embed_dim: the encoder's output size.
    :param hidden: MLP hidden width.
    """

    def __init__(self, encoder: nn.Module, embed_dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Sequential(nn.Linear(embed_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Per-frame rewards for (N, H, W, 3) frames."""
        return self.head(self.encoder(frames)).squeeze(-1)

    def returns(self, videos: torch.Tensor) -> torch.Tensor:
        n, t = videos.shape[:2]
        return self(videos.reshape(n * t, *videos.shape[2:])).reshape(n, t).sum(1)


def triplet_pairs(triplets: np.ndarray, equal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ordered (winner, loser) pairs of the triplets, and whether each pair is a tie."""
    t = np.asarray(triplets, dtype=np.int64)
    pairs = np.concatenate([t[:, [0, 1]], t[:, [0, 2]], t[:, [1, 2]]])
    return pairs, np.tile(np.asarray(equal, bool), 3)


def train_rlhf(model: RLHFReward, videos: np.ndarray | torch.Tensor, triplets: np.ndarray,
               equal: np.ndarray | None = None, *, steps: int = 150, batch: int = 8, lr: float = 1e-3,
               train: str = "all", seed: int = 0) -> list[float]:
    """Bradley-Terry training of ``model`` on the triplets' pairs; returns the loss of every step.

    :param train: the encoder parameters trained with the MLP head: ``all``, ``projector`` (backbone frozen, as
        RAPL's ``align.train: projector``) or ``none`` (a frozen encoder).
    """
    equal = np.zeros(len(triplets), bool) if equal is None else np.asarray(equal, bool)
    pairs, ties = triplet_pairs(triplets, equal)
    vids = torch.as_tensor(np.asarray(videos))
    if train not in ("all", "projector", "none"):
        raise ValueError(f"rlhf.train={train!r}; use 'all', 'projector' or 'none'")
    trained = [] if train == "none" else trainable_parameters(model.encoder, train)
    opt = torch.optim.Adam([*trained, *model.head.parameters()], lr=lr)
    rng = np.random.default_rng(seed)
    losses = []
    model.train()
    with trained_only(model.encoder, trained):
        for _ in range(steps):
            rows = rng.choice(len(pairs), size=min(3 * batch, len(pairs)), replace=False)
            ids, inverse = np.unique(pairs[rows], return_inverse=True)
            r = model.returns(vids[torch.as_tensor(ids)])[torch.as_tensor(inverse.reshape(-1, 2))]
            margin = r[:, 0] - r[:, 1]
            target = torch.where(torch.as_tensor(ties[rows]), 0.5, 1.0)
            loss = (-(target * F.logsigmoid(margin) + (1 - target) * F.logsigmoid(-margin))).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    model.eval()
    return losses
