"""ONI's learned reward models over message bytes: a char-level CNN classifier and a Bradley-Terry scorer.

ONI-Classification (Zheng et al., arXiv 2410.23022) distils the LLM's labels into a char-level CNN: byte
embedding of size 32, a conv stack with 64 channels, an MLP and two classes, trained with cross-entropy (batch
256, lr 1e-4, 32 gradient steps per update). ONI-Ranking trains the same encoder with one output as a
Bradley-Terry reward model on the LLM's pair preferences (Motif-style; a tie is a 0.5/0.5 target).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class CharCNN(nn.Module):
    """Bytes (``(n, L)`` uint8, zero-padded) -> ``outputs`` logits.

    :param outputs: 2 for the classifier, 1 for the Bradley-Terry scorer.
    :param embed: byte embedding size; :param channels: conv channels; :param hidden: MLP width.
    """

    def __init__(self, outputs: int = 2, *, embed: int = 32, channels: int = 64, hidden: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(256, embed, padding_idx=0)
        self.convs = nn.ModuleList([nn.Conv1d(embed, channels, 3, padding=1),
                                    nn.Conv1d(channels, channels, 3, padding=1),
                                    nn.Conv1d(channels, channels, 3, padding=1)])
        self.head = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, outputs))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = (tokens > 0).unsqueeze(1)
        x = self.embed(tokens.long()).transpose(1, 2)
        for i, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            if i < len(self.convs) - 1:
                x = F.max_pool1d(x, 2, ceil_mode=True)
                mask = F.max_pool1d(mask.float(), 2, ceil_mode=True).bool()
        x = x.masked_fill(~mask, float("-inf")).amax(dim=2)
        return self.head(torch.nan_to_num(x, neginf=0.0))


def encode(messages: list[str], length: int = 128) -> np.ndarray:
    """Messages as ``(n, length)`` uint8 byte arrays (latin-1, truncated, zero-padded)."""
    out = np.zeros((len(messages), length), dtype=np.uint8)
    for i, m in enumerate(messages):
        raw = m.encode("latin-1", errors="replace")[:length]
        out[i, :len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    return out


def train_classifier(model: CharCNN, optimiser: torch.optim.Optimizer, tokens: np.ndarray, labels: np.ndarray,
                     *, steps: int, batch_size: int, generator: torch.Generator) -> float:
    """``steps`` cross-entropy steps on minibatches drawn with replacement; returns the mean loss."""
    x, y = torch.as_tensor(tokens), torch.as_tensor(labels, dtype=torch.long)
    losses = []
    for _ in range(steps):
        idx = torch.randint(len(x), (min(batch_size, len(x)),), generator=generator)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    return float(np.mean(losses))


def train_bradley_terry(model: CharCNN, optimiser: torch.optim.Optimizer, first: np.ndarray, second: np.ndarray,
                        prefs: np.ndarray, *, steps: int, batch_size: int, generator: torch.Generator) -> float:
    """Bradley-Terry steps: P(first > second) = sigmoid(r(first) - r(second)) against ``prefs`` in {0, .5, 1}."""
    a, b, p = torch.as_tensor(first), torch.as_tensor(second), torch.as_tensor(prefs, dtype=torch.float32)
    losses = []
    for _ in range(steps):
        idx = torch.randint(len(a), (min(batch_size, len(a)),), generator=generator)
        margin = (model(a[idx]) - model(b[idx])).squeeze(1)
        loss = F.binary_cross_entropy_with_logits(margin, p[idx])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    return float(np.mean(losses))
