"""Step-aware hop labels of Robo-Dopamine's General Reward Model (arXiv 2512.23703, Sec. 3.1).

A demonstration is split by its keyframes K_0..K_N into N subtasks. Each subtask gets the same number m of
sample points (linspace within the segment), so the merged, sorted points s_0..s_M (M = N * m) carry progress
Phi(s_i) = i / M and every subtask holds 1/N of the progress mass. A pair (p = BEFORE, q = AFTER) is labelled with
the signed relative hop

    H = (Phi_q - Phi_p) / (1 - Phi_p)   if q >= p   (progress: the fraction of what was left that got done)
    H = (Phi_q - Phi_p) / Phi_p         if q <  p   (regress: the fraction of what was done that got undone)

so H = 1 exactly when q is the last point and H = -1 exactly when q is the first, and the incremental update
Phi_q = Phi_p + (1 - Phi_p) H (H >= 0) or Phi_p + Phi_p H (H < 0) inverts the label.

The balanced sampler (the reference's ``1_generate_data.py``) draws pairs from a pool oversampled 100x into
25 hop bins x 4 temporal-gap bins with equal quotas, gives leftovers to the most central hop bins first, makes
5% of the pairs zero hops (AFTER = BEFORE shifted by up to 7.5% of the local frame spacing), never uses a pair
whose label denominator is zero, and caps each episode at 1000 pairs. With probability 0.75 a pair's reference
START/END anchors come from another episode (``2_posprocess_data.py``), so the model treats them as concepts
rather than pixels to match. The quota algorithm is a reconstruction (the paper does not give one).

Departure from the reference: its demos are 30 fps videos sampled every ``sample_factor = 20`` frames; our
simulated demos have 50-100 steps, so the default uses every step (``sample_factor = 1``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def sample_points(keyframes: Sequence[int] | np.ndarray, *, sample_factor: int = 1,
                  points_per_segment: int | None = None) -> np.ndarray:
    """Frame indices s_0..s_M with the same number of points in every keyframe segment.

    ``points_per_segment`` (m) defaults to round(n / N) with n = frames / ``sample_factor``, capped by the
    shortest segment so no frame repeats. Segments of zero length (a phase the demo skipped) are dropped.
    """
    ks = np.asarray(keyframes, dtype=np.int64)
    if ks.ndim != 1 or len(ks) < 2 or np.any(np.diff(ks) < 0):
        raise ValueError(f"keyframes must be a non-decreasing sequence of >= 2 frame indices, got {ks.tolist()}")
    ks = np.concatenate([ks[:1], ks[1:][np.diff(ks) > 0]])
    if len(ks) < 2:
        raise ValueError("the demonstration has a single frame; it needs at least one non-empty segment")
    lengths = np.diff(ks)
    n_segments = len(lengths)
    if points_per_segment is None:
        n = (ks[-1] - ks[0] + 1) / max(1, sample_factor)
        points_per_segment = max(1, round(n / n_segments))
    m = int(min(points_per_segment, lengths.min()))
    points = [ks[0]]
    for start, end in itertools.pairwise(ks):
        points.extend(np.rint(np.linspace(start, end, m + 1)[1:]).astype(np.int64).tolist())
    return np.asarray(points, dtype=np.int64)


def point_progress(num_points: int) -> np.ndarray:
    """Phi(s_i) = i / M for the M + 1 sample points."""
    return np.arange(num_points, dtype=np.float64) / (num_points - 1)


def hop_label(phi_p: np.ndarray | float, phi_q: np.ndarray | float) -> np.ndarray:
    """H(p, q) from progress values (see the module docstring); undefined denominators raise."""
    p, q = np.asarray(phi_p, dtype=np.float64), np.asarray(phi_q, dtype=np.float64)
    forward = q >= p
    denom = np.where(forward, 1.0 - p, p)
    moved = q != p
    if np.any(moved & (denom <= 0)):
        raise ValueError("hop label with a zero denominator: progress from Phi_p = 1 or regress from Phi_p = 0")
    return np.where(moved, (q - p) / np.where(denom > 0, denom, 1.0), 0.0)


def incremental_update(phi_prev: np.ndarray | float, hop: np.ndarray | float) -> np.ndarray:
    """Phi_t = Phi_{t-1} + (1 - Phi_{t-1}) h for h >= 0, Phi_{t-1} + Phi_{t-1} h for h < 0 (stays in [0, 1])."""
    p, h = np.asarray(phi_prev, dtype=np.float64), np.clip(np.asarray(hop, dtype=np.float64), -1.0, 1.0)
    return p + np.where(h >= 0, (1.0 - p) * h, p * h)


@dataclass
class HopPairs:
    """Sampled label pairs of one episode: frame indices of BEFORE and AFTER and the hop label."""

    before: np.ndarray
    after: np.ndarray
    label: np.ndarray
    zero: np.ndarray

    def __len__(self) -> int:
        return len(self.label)


def sample_pairs(points: np.ndarray, rng: np.random.Generator, *, max_pairs: int = 1000, hop_bins: int = 25,
                 gap_bins: int = 4, oversample: int = 100, zero_ratio: float = 0.05,
                 zero_offset: float = 0.075) -> HopPairs:
    """Balanced (BEFORE, AFTER) pairs over one episode's sample points (see the module docstring)."""
    n = len(points)
    if n < 3:
        raise ValueError(f"need at least 3 sample points to build hop pairs, got {n}")
    phi = point_progress(n)
    idx_p, idx_q = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    valid = idx_p != idx_q
    idx_p, idx_q = idx_p[valid], idx_q[valid]
    total = min(max_pairs, len(idx_p))
    n_zero = round(zero_ratio * total)
    n_hop = total - n_zero

    pool = rng.integers(0, len(idx_p), size=min(oversample * total, 50 * len(idx_p)))
    p, q = idx_p[pool], idx_q[pool]
    labels = hop_label(phi[p], phi[q])
    hop_bin = np.minimum(((labels + 1.0) / 2.0 * hop_bins).astype(np.int64), hop_bins - 1)
    gap_bin = np.minimum((np.abs(q - p) / (n - 1) * gap_bins).astype(np.int64), gap_bins - 1)
    cell = hop_bin * gap_bins + gap_bin
    chosen = _quota_pick(cell, hop_bin, hop_bins, gap_bins, n_hop, rng)

    zp = rng.integers(1, n - 1, size=n_zero)
    spacing = np.maximum(np.diff(points).astype(np.float64)[np.minimum(zp, n - 2)], 1.0)
    shift = rng.uniform(-zero_offset, zero_offset, size=n_zero) * spacing
    z_after = np.clip(np.rint(points[zp] + shift).astype(np.int64), points[0], points[-1])
    return HopPairs(
        before=np.concatenate([points[p[chosen]], points[zp]]),
        after=np.concatenate([points[q[chosen]], z_after]),
        label=np.concatenate([labels[chosen], np.zeros(n_zero)]),
        zero=np.concatenate([np.zeros(len(chosen), bool), np.ones(n_zero, bool)]),
    )


def _quota_pick(cell: np.ndarray, hop_bin: np.ndarray, hop_bins: int, gap_bins: int, target: int,
                rng: np.random.Generator) -> np.ndarray:
    """Equal quotas per (hop, gap) cell, then leftovers from the most central hop bins outward."""
    order = rng.permutation(len(cell))
    by_cell: dict[int, list[int]] = {}
    for i in order:
        by_cell.setdefault(int(cell[i]), []).append(int(i))
    quota = max(1, target // (hop_bins * gap_bins))
    picked: list[int] = []
    rest: dict[int, list[int]] = {}
    for c, members in by_cell.items():
        picked.extend(members[:quota])
        rest[c] = members[quota:]
    picked = picked[:target]
    centre = (hop_bins - 1) / 2.0
    for c in sorted(rest, key=lambda c: (abs(c // gap_bins - centre), c)):
        if len(picked) >= target:
            break
        picked.extend(rest[c][: target - len(picked)])
    return np.asarray(picked[:target], dtype=np.int64)


def anchor_episodes(episode_of_pair: np.ndarray, num_episodes: int, rng: np.random.Generator,
                    swap_probability: float = 0.75) -> np.ndarray:
    """The episode whose START/END frames anchor each pair: another episode with ``swap_probability``."""
    episode_of_pair = np.asarray(episode_of_pair)
    if num_episodes < 2:
        return episode_of_pair.copy()
    swap = rng.random(len(episode_of_pair)) < swap_probability
    other = (episode_of_pair + rng.integers(1, num_episodes, size=len(episode_of_pair))) % num_episodes
    return np.where(swap, other, episode_of_pair)
