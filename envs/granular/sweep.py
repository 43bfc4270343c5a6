"""Granular pile shaping with sweep primitives: the physics, the scores and the 'T' target, in plain numpy.

A reconstruction of DeformPAM's granular task (Chen et al., ICRA 2025, arXiv 2410.11584) at toy scale: the paper
sweeps real granular material into a 'T' with a robot; here ``P`` particles on the unit square are moved by a
sweep primitive, the material a sweep collects is laid down as a uniform heap in front of the pusher's end edge
(its depth grows with the amount collected, so volume is kept), and the pile is scored by the IoU (and the
Chamfer distance) between its occupancy grid and the target mask. Every function takes a batch of particle sets
``(M, P, 2)`` so planners can score many candidate sweeps in one call.
"""

from __future__ import annotations

import numpy as np

GRID = 32
WIDTH_RANGE = (0.05, 0.35)
AREA_PER_PARTICLE = 1.0 / 3000.0
"""Heap area one particle takes up: 300 particles cover about 0.1 of the unit square, the 'T' target's area."""


def t_target(grid: int = GRID) -> np.ndarray:
    """The 'T' target as a ``(grid, grid)`` boolean mask (row = y, column = x): a bar over a stem."""
    centers = (np.arange(grid) + 0.5) / grid
    x, y = np.meshgrid(centers, centers)
    bar = (x >= 0.2) & (x <= 0.8) & (y >= 0.68) & (y <= 0.78)
    stem = (x >= 0.45) & (x <= 0.55) & (y >= 0.22) & (y <= 0.68)
    return bar | stem


def decode_action(action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(..., 5)`` actions in [-1, 1] -> start points, end points (unit square) and widths."""
    a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
    start, end = (a[..., 0:2] + 1.0) / 2.0, (a[..., 2:4] + 1.0) / 2.0
    width = WIDTH_RANGE[0] + (a[..., 4] + 1.0) / 2.0 * (WIDTH_RANGE[1] - WIDTH_RANGE[0])
    return start, end, width


def sweep(particles: np.ndarray, actions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Apply one sweep per particle set.

    The particles inside the rectangle from the start to the end point, ``width`` across, move to a heap in
    front of the end edge: they keep their offset across the sweep and land at a uniform depth in
    ``[0, n_moved * AREA_PER_PARTICLE / width]`` beyond the end (the jitter). Positions are clipped to the square;
    the particle count never changes.

    :param particles: ``(M, P, 2)`` or ``(P, 2)`` positions.
    :param actions: ``(M, 5)`` or ``(5,)`` sweeps ``(x0, y0, x1, y1, width)`` in [-1, 1].
    :param rng: the source of the heap jitter.
    """
    single = np.ndim(particles) == 2
    pts = np.atleast_3d(particles) if not single else np.asarray(particles)[None]
    acts = np.asarray(actions, dtype=np.float64).reshape(-1, 5)
    if acts.shape[0] != pts.shape[0]:
        acts = np.broadcast_to(acts, (pts.shape[0], 5))
    start, end, width = decode_action(acts)
    delta = end - start
    length = np.linalg.norm(delta, axis=-1)
    direction = delta / np.maximum(length, 1e-9)[:, None]
    normal = np.stack([-direction[:, 1], direction[:, 0]], axis=-1)
    rel = pts - start[:, None, :]
    along = np.einsum("mpk,mk->mp", rel, direction)
    across = np.einsum("mpk,mk->mp", rel, normal)
    inside = (along >= 0) & (along <= length[:, None]) & (np.abs(across) <= width[:, None] / 2)
    inside &= length[:, None] > 1e-3
    depth = inside.sum(axis=1) * AREA_PER_PARTICLE / width
    new_along = length[:, None] + rng.random(along.shape) * depth[:, None]
    moved = start[:, None, :] + new_along[..., None] * direction[:, None, :] + across[..., None] * normal[:, None, :]
    out = np.clip(np.where(inside[..., None], moved, pts), 0.0, 1.0)
    return out[0] if single else out


def occupancy(particles: np.ndarray, grid: int = GRID) -> np.ndarray:
    """Particle counts per cell, ``(..., grid, grid)`` (row = y, column = x)."""
    pts = np.asarray(particles)
    flat = pts.reshape(-1, pts.shape[-2], 2)
    cells = np.clip((flat * grid).astype(np.int64), 0, grid - 1)
    index = cells[..., 1] * grid + cells[..., 0] + np.arange(flat.shape[0])[:, None] * grid * grid
    counts = np.bincount(index.ravel(), minlength=flat.shape[0] * grid * grid)
    return counts.reshape(*pts.shape[:-2], grid, grid)


def iou(particles: np.ndarray, target: np.ndarray) -> np.ndarray:
    """IoU between the occupied cells and the target mask, in [0, 1], one per particle set."""
    occ = occupancy(particles, target.shape[0]) > 0
    inter = (occ & target).sum(axis=(-2, -1))
    union = (occ | target).sum(axis=(-2, -1))
    return inter / np.maximum(union, 1)


def chamfer(particles: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Symmetric Chamfer distance (unit-square lengths) between occupied and target cell centres."""
    occ = occupancy(particles, target.shape[0]) > 0
    grid = target.shape[0]
    centers = (np.stack(np.meshgrid(np.arange(grid), np.arange(grid)), axis=-1).reshape(-1, 2) + 0.5) / grid
    goal = centers[target.ravel()]
    flat = occ.reshape(-1, grid * grid)
    out = np.empty(flat.shape[0])
    for i, row in enumerate(flat):
        pts = centers[row]
        d = np.linalg.norm(pts[:, None, :] - goal[None, :, :], axis=-1)
        out[i] = 0.5 * (d.min(axis=1).mean() + d.min(axis=0).mean())
    return out.reshape(occ.shape[:-2])


def initial_pile(n_particles: int, rng: np.random.Generator, spread: float = 0.08) -> np.ndarray:
    """A round pile (Gaussian, ``spread`` across) at a random spot away from the edges."""
    center = rng.uniform(0.25, 0.75, size=2)
    return np.clip(center + spread * rng.standard_normal((n_particles, 2)), 0.0, 1.0)
