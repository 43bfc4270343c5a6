"""Frame encoders phi(o) for RAPL: a small CNN, and a frozen open_clip backbone with a trained projector.

The paper aligns an ImageNet ResNet-18 (X-Magical, no normalisation) or an MVP ViT-S with a linear projector
(manipulation, ImageNet normalisation). The small-scale build replaces the pretrained network by a small CNN that
starts from a seeded random initialisation: its features are dominated by the largest moving object (the agent),
the "attends to the end effector" failure RAPL corrects. :class:`ClipEncoder` keeps the real path for a local
open_clip checkpoint (never downloaded): the backbone stays frozen and only the projector trains, as the
reference scripts do. Normalisation is a per-encoder setting (``none`` or ``imagenet``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _Normalise(nn.Module):
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, kind: str) -> None:
        super().__init__()
        if kind not in ("none", "imagenet"):
            raise ValueError(f"normalize={kind!r}; use 'none' or 'imagenet'")
        self.kind = kind
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 or float (N, H, W, 3) frames -> float (N, 3, H, W) in [0, 1] (ImageNet-standardised if asked)."""
        x = frames.permute(0, 3, 1, 2).to(self.mean.dtype)
        if frames.dtype == torch.uint8:
            x = x / 255.0
        return (x - self.mean) / self.std if self.kind == "imagenet" else x


class FrameEncoder(nn.Module):
    """A small CNN: 64x64 RGB -> ``embed_dim`` features (a 4x4 patch convolution, two stride-2 ones, a linear head).

    :param embed_dim: feature size.
    :param channels: channels of the three convolutions.
    :param normalize: ``none`` (the X-Magical ResNet path) or ``imagenet``.
    :param image_size: input height and width.
    """

    def __init__(self, embed_dim: int = 32, channels: tuple[int, int, int] = (16, 32, 32), normalize: str = "none",
                 image_size: int = 64) -> None:
        super().__init__()
        self.config = {"kind": "cnn", "embed_dim": embed_dim, "channels": list(channels), "normalize": normalize,
                       "image_size": image_size}
        c1, c2, c3 = channels
        self.prep = _Normalise(normalize)
        self.conv = nn.Sequential(nn.Conv2d(3, c1, 4, 4), nn.ReLU(), nn.Conv2d(c1, c2, 3, 2, 1), nn.ReLU(),
                                  nn.Conv2d(c2, c3, 3, 2, 1), nn.ReLU(), nn.Flatten())
        self.head = nn.Linear(c3 * (image_size // 16) ** 2, embed_dim)
        self.image_size = image_size

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if tuple(frames.shape[-3:]) != (self.image_size, self.image_size, 3):
            raise ValueError(f"FrameEncoder expects (N, {self.image_size}, {self.image_size}, 3) frames, got "
                             f"{tuple(frames.shape)}")
        return self.head(self.conv(self.prep(frames)))

    def projector_parameters(self) -> list[nn.Parameter]:
        """The linear head's parameters: what trains when alignment keeps the backbone frozen."""
        return list(self.head.parameters())


class ClipEncoder(nn.Module):
    """A frozen image backbone (open_clip's ``visual`` tower) with a trained linear projector.

    :param backbone: a module mapping (N, 3, S, S) float images to (N, k) features; its parameters are frozen.
    :param feature_dim: k.
    :param embed_dim: projector output size.
    :param input_size: S; frames are resized to it.
    :param normalize: ``imagenet`` (open_clip's towers expect standardised inputs) or ``none``.
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, embed_dim: int = 128, input_size: int = 224,
                 normalize: str = "imagenet") -> None:
        super().__init__()
        self.config: dict[str, Any] = {"kind": "clip", "embed_dim": embed_dim, "feature_dim": feature_dim,
                                       "input_size": input_size, "normalize": normalize}
        self.backbone = backbone.eval()
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.prep = _Normalise(normalize)
        self.projector = nn.Linear(feature_dim, embed_dim)
        self.input_size = input_size

    def train(self, mode: bool = True) -> ClipEncoder:
        super().train(mode)
        self.backbone.eval()
        return self

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.prep(frames)
        if x.shape[-1] != self.input_size:
            x = nn.functional.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                                          align_corners=False)
        with torch.no_grad():
            features = self.backbone(x).float()
        return self.projector(features)

    def projector_parameters(self) -> list[nn.Parameter]:
        """The projector's parameters (the backbone is always frozen)."""
        return list(self.projector.parameters())

    @classmethod
    def from_open_clip(cls, arch: str, checkpoint: str, embed_dim: int = 128) -> ClipEncoder:
        """Load open_clip's ``arch`` image tower from a local ``checkpoint`` file (never a hub download)."""
        import os

        import open_clip

        if not os.path.isfile(checkpoint):
            raise FileNotFoundError(checkpoint)
        model = open_clip.create_model(arch, pretrained=checkpoint)
        visual = model.visual
        size = visual.image_size[0] if isinstance(visual.image_size, tuple) else int(visual.image_size)
        return cls(visual, int(visual.output_dim), embed_dim=embed_dim, input_size=size)


def build_encoder(config: Mapping[str, Any], seed: int = 0) -> nn.Module:
    """An encoder from its config (``kind: cnn`` or ``kind: clip`` with ``arch`` and ``checkpoint``), seeded."""
    cfg = dict(config)
    kind = cfg.pop("kind", "cnn")
    torch.manual_seed(seed)
    if kind == "cnn":
        cfg["channels"] = tuple(cfg.get("channels", (16, 32, 32)))
        return FrameEncoder(**cfg)
    if kind == "clip":
        return ClipEncoder.from_open_clip(cfg["arch"], cfg["checkpoint"], embed_dim=int(cfg.get("embed_dim", 128)))
    raise ValueError(f"encoder kind={kind!r}; use 'cnn' or 'clip'")


def embed(encoder: nn.Module, frames: np.ndarray | torch.Tensor, batch: int = 512) -> torch.Tensor:
    """Embeddings (..., d) of ``frames`` (..., H, W, 3), e.g. one video (T, ...) or several (N, T, ...), without
    gradients, in chunks of ``batch`` frames."""
    x = torch.as_tensor(np.asarray(frames)) if not isinstance(frames, torch.Tensor) else frames
    lead = x.shape[:-3]
    flat = x.reshape(-1, *x.shape[-3:])
    if not len(flat):
        return torch.zeros(0)
    with torch.no_grad():
        out = torch.cat([encoder(flat[i:i + batch]) for i in range(0, len(flat), batch)])
    return out.reshape(*lead, out.shape[-1])
