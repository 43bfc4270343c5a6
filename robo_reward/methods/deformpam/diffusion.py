"""Stage 1 of DeformPAM: a state-conditioned primitive diffusion model (x0-prediction, DDIM sampling).

Chen et al., ICRA 2025 (arXiv 2410.11584) condition a diffusion head on a point-cloud encoder and sample K = 16
candidate primitives with 10 DDIM steps. The small-scale build keeps the diffusion part as in the paper (DDPM with
T = 100, prediction type "sample", 10 deterministic DDIM steps, K candidates from K noise draws) and replaces the
sparse-UNet/transformer encoder (and its NOCS head) by a coarse occupancy grid of the point cloud read by a small
MLP, with an optional fixed target mask as a second input: a CPU-sized stand-in for the same input.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def cosine_alpha_bar(steps: int) -> torch.Tensor:
    """Cumulative signal fractions ``alpha_bar_t`` of the cosine schedule (Nichol & Dhariwal, 2021), t = 0..T-1."""
    s = 0.008
    x = torch.arange(steps + 1, dtype=torch.float64) / steps
    f = torch.cos((x + s) / (1 + s) * math.pi / 2) ** 2
    betas = torch.clamp(1 - f[1:] / f[:-1], max=0.999)
    return torch.cumprod(1 - betas, dim=0).float()


def occupancy_grid(points: torch.Tensor, grid: int) -> torch.Tensor:
    """``(B, P, 2)`` points in the unit square -> ``(B, grid, grid)`` counts per cell (row = y)."""
    cells = torch.clamp((points * grid).long(), 0, grid - 1)
    index = cells[..., 1] * grid + cells[..., 0]
    counts = torch.zeros(points.shape[0], grid * grid, dtype=points.dtype, device=points.device)
    counts.scatter_add_(1, index, torch.ones_like(index, dtype=points.dtype))
    return counts.view(-1, grid, grid)


class GridEncoder(nn.Module):
    """Point cloud -> feature: occupancy grid (counts / ``count_scale``, capped at 1) and target mask -> MLP.

    :param grid: cells per side of the occupancy grid.
    :param target: optional mask (any square shape, resampled to ``grid``) given as a constant second input.
    :param features: size of the output feature.
    :param count_scale: particles per cell that count as full.
    """

    target: torch.Tensor

    def __init__(self, grid: int = 16, target: np.ndarray | None = None, features: int = 128,
                 count_scale: float = 4.0) -> None:
        super().__init__()
        self.grid, self.count_scale = grid, count_scale
        if target is None:
            mask = torch.zeros(0)
        else:
            t = np.asarray(target, dtype=np.float32)
            if t.ndim != 2 or t.shape[0] != t.shape[1] or t.shape[0] % grid:
                raise ValueError(f"target mask has shape {t.shape}; expected a square whose side is a multiple "
                                 f"of grid={grid}")
            f = t.shape[0] // grid
            mask = torch.as_tensor(t.reshape(grid, f, grid, f).mean(axis=(1, 3)).ravel())
        self.register_buffer("target", mask)
        self.net = nn.Sequential(nn.Linear(grid * grid + mask.numel(), features), nn.SiLU(),
                                 nn.Linear(features, features), nn.SiLU())

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        occ = torch.clamp(occupancy_grid(points, self.grid) / self.count_scale, max=1.0).flatten(1)
        if self.target.numel():
            occ = torch.cat([occ, self.target.expand(len(occ), -1)], dim=1)
        return self.net(occ)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps, ``(B,) -> (B, dim)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


class PrimitiveDiffusion(nn.Module):
    """``x0_hat(a_t, t, s)``: an MLP denoiser over action vectors conditioned on the encoded state.

    :param action_dim: size of one primitive's parameter vector (in [-1, 1]).
    :param grid: occupancy-grid resolution of the state encoder.
    :param target: optional target mask for the encoder.
    :param steps: diffusion steps T of the training schedule.
    :param hidden: width of the denoiser MLP.
    """

    alpha_bar: torch.Tensor

    def __init__(self, action_dim: int = 5, grid: int = 16, target: np.ndarray | None = None, steps: int = 100,
                 hidden: int = 256, features: int = 128, time_dim: int = 32) -> None:
        super().__init__()
        self.action_dim, self.steps, self.time_dim = action_dim, steps, time_dim
        self.encoder = GridEncoder(grid, target, features)
        self.denoiser = nn.Sequential(
            nn.Linear(action_dim + time_dim + features, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, action_dim))
        self.register_buffer("alpha_bar", cosine_alpha_bar(steps))

    def encode(self, points: torch.Tensor) -> torch.Tensor:
        return self.encoder(points)

    def predict_x0(self, noisy: torch.Tensor, t: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """The denoiser's estimate of the clean action from ``noisy`` at integer timesteps ``t``."""
        return self.denoiser(torch.cat([noisy, timestep_embedding(t, self.time_dim), features], dim=-1))

    def noise(self, actions: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """``a_t = sqrt(alpha_bar_t) a + sqrt(1 - alpha_bar_t) eps``."""
        ab = self.alpha_bar[t][:, None]
        return ab.sqrt() * actions + (1 - ab).sqrt() * eps

    def x0_error(self, actions: torch.Tensor, t: torch.Tensor, eps: torch.Tensor,
                 features: torch.Tensor) -> torch.Tensor:
        """``l(a) = ||x0_hat(a_t, t, s) - a||^2`` averaged over action dimensions, one per row."""
        return ((self.predict_x0(self.noise(actions, t, eps), t, features) - actions) ** 2).mean(dim=-1)

    @torch.no_grad()
    def sample(self, points: torch.Tensor, k: int, generator: torch.Generator, ddim_steps: int = 10) -> torch.Tensor:
        """``k`` candidate actions per state by deterministic DDIM (eta = 0) from ``k`` noise draws.

        :param points: ``(B, P, 2)`` states.
        :returns: ``(B, k, action_dim)`` actions clipped to [-1, 1].
        """
        b = points.shape[0]
        features = self.encode(points).repeat_interleave(k, dim=0)
        x = torch.randn(b * k, self.action_dim, generator=generator)
        times = torch.linspace(self.steps - 1, 0, ddim_steps).round().long()
        for i, t in enumerate(times):
            tt = t.expand(b * k)
            x0 = self.predict_x0(x, tt, features).clamp(-1, 1)
            if i == len(times) - 1:
                x = x0
                break
            ab, ab_next = self.alpha_bar[t], self.alpha_bar[times[i + 1]]
            eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
            x = ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * eps
        return x.view(b, k, self.action_dim)


def train_sft(model: PrimitiveDiffusion, states: np.ndarray, actions: np.ndarray, *, steps: int = 3000,
              batch_size: int = 128, lr: float = 1e-3, seed: int = 0) -> list[float]:
    """Fit the denoiser to annotated ``(state, action)`` pairs by x0-regression at uniform timesteps.

    :returns: the loss every 100 steps.
    """
    if len(states) != len(actions) or len(states) == 0:
        raise ValueError(f"need as many states as actions (got {len(states)} and {len(actions)}), at least one")
    s = torch.as_tensor(np.asarray(states, np.float32))
    a = torch.as_tensor(np.asarray(actions, np.float32))
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    history = []
    model.train()
    for step in range(steps):
        idx = torch.randint(0, len(s), (min(batch_size, len(s)),), generator=gen)
        t = torch.randint(0, model.steps, (len(idx),), generator=gen)
        eps = torch.randn(len(idx), model.action_dim, generator=gen)
        loss = model.x0_error(a[idx], t, eps, model.encode(s[idx])).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0:
            history.append(loss.item())
    model.eval()
    return history
