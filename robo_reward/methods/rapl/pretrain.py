"""Self-supervised pretraining of RAPL's frame encoder on unlabelled frames (a convolutional autoencoder).

RAPL aligns a *pretrained* encoder (ImageNet ResNet-18, MVP ViT-S; Tian et al., ICLR 2024); the spec's small build
stands in for it with a small CNN pretrained self-supervised on rollouts, or randomly initialised. This is the
pretrained stand-in: the encoder is trained with a mirrored transposed-convolution decoder to reconstruct the
frames of the rollout pool (the same unlabelled videos the oracle ranks; no preference, score or label is read).
Pixel reconstruction spends its capacity on what covers the most pixels (the floor colour, the agent), so the
features stay dominated by what the preference ignores, as a generic pretrained encoder's are; what it changes
is the starting geometry: a random CNN embeds every frame in nearly one direction (mean cosine cost ~0.01), the
stationary point of the triplet loss into which alignment can collapse. The decoder reads the unit-normalised
embedding, the geometry the cosine cost sees, so what the code holds lies in its direction (an unnormalised code
can carry it as a small variation on a large shared offset: mean cosine cost 4e-5 on a small test encoder, worse
than random). The decoder is thrown away afterwards; RAPL, RLHF and the unaligned baseline all start from the
pretrained encoder. A reconstruction choice of the package (the spec names autoencoder or time-contrastive).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robo_reward.methods.rapl.encoder import FrameEncoder


class FrameDecoder(nn.Module):
    """The mirror of :class:`FrameEncoder`: ``embed_dim`` features -> (N, 3, S, S) images in [0, 1].

    :param encoder: the encoder it mirrors (its embedding size, channels and image size).
    """

    def __init__(self, encoder: FrameEncoder) -> None:
        super().__init__()
        if encoder.image_size % 16:
            raise ValueError(f"the autoencoder's decoder mirrors the encoder's /16 downsampling, so image_size must "
                             f"be a multiple of 16, got {encoder.image_size}; use 64 (or 48, 80, ...)")
        c1, c2, c3 = (int(encoder.conv[i].out_channels) for i in (0, 2, 4))  # type: ignore[arg-type, union-attr]
        self.side = encoder.image_size // 16
        self.c3 = c3
        self.fc = nn.Linear(encoder.head.out_features, c3 * self.side ** 2)
        self.net = nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(c3, c2, 4, 2, 1), nn.ReLU(),
                                 nn.ConvTranspose2d(c2, c1, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(c1, 3, 4, 4))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(self.fc(z).view(-1, self.c3, self.side, self.side)))


def pretrain_autoencoder(encoder: nn.Module, frames: np.ndarray | torch.Tensor, *, steps: int = 1500,
                         batch: int = 64, lr: float = 1e-3, seed: int = 0) -> list[float]:
    """Train ``encoder`` in place as the encoder half of an autoencoder on ``frames``; returns each step's MSE.

    :param encoder: a :class:`FrameEncoder` (a frozen open_clip backbone is pretrained already).
    :param frames: (..., H, W, 3) uint8 frames; leading dims (videos, time) are flattened.
    :param steps: Adam steps.
    :param batch: frames per step.
    :param lr: Adam learning rate (encoder and decoder).
    :param seed: seeds the decoder's initialisation and the batches.
    """
    if not isinstance(encoder, FrameEncoder):
        raise ValueError(f"autoencoder pretraining needs the small CNN encoder (encoder.kind: cnn), got "
                         f"{type(encoder).__name__}; a clip encoder's backbone is pretrained already: set "
                         f"pretrain.kind: none")
    x = torch.as_tensor(np.asarray(frames))
    x = x.reshape(-1, *x.shape[-3:])
    if len(x) == 0:
        raise ValueError("autoencoder pretraining got no frames")
    torch.manual_seed(seed)
    decoder = FrameDecoder(encoder)
    opt = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=lr)
    rng = np.random.default_rng(seed)
    losses = []
    encoder.train()
    for _ in range(steps):
        b = x[torch.as_tensor(rng.choice(len(x), size=min(batch, len(x)), replace=False))]
        target = b.permute(0, 3, 1, 2).float() / 255.0
        loss = F.mse_loss(decoder(F.normalize(encoder(b), dim=-1)), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    encoder.eval()
    return losses
