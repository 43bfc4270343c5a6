"""Stand-ins for the paper's human in the loop: a greedy one-step annotator and a score-gain preference oracle.

Both are reconstructions (DeformPAM, arXiv 2410.11584, uses human annotated actions and human win/lose/equal
labels). They plan and judge on the particle positions, which the learned policy never sees directly.
"""

from __future__ import annotations

import numpy as np

from robo_reward.envs.granular.sweep import GRID, iou, sweep, t_target
from robo_reward.preferences import Label, label_by_gain


def score_gains(particles: np.ndarray, actions: np.ndarray, seed: int = 0,
                target: np.ndarray | None = None) -> np.ndarray:
    """IoU gain of each of ``actions`` ``(M, 5)`` from one state ``(P, 2)``, under common random jitter."""
    target = t_target(GRID) if target is None else target
    acts = np.asarray(actions, dtype=np.float64).reshape(-1, 5)
    batch = np.broadcast_to(particles, (len(acts), *np.shape(particles)))
    after = sweep(batch, acts, np.random.default_rng(seed))
    return iou(after, target) - iou(np.asarray(particles)[None], target)


class GreedyAnnotator:
    """Greedy one-step planner: the sweep with the largest IoU gain among ``n_proposals`` sampled ones.

    Proposals start just behind a random particle and end on a random target cell (three in four) or are
    uniform in the action box; a zero-length sweep (no-op) is always among them, so the planned gain is never
    negative.

    :param n_proposals: sweeps sampled per call.
    :param seed: seed of the proposals and of the simulated jitter.
    """

    def __init__(self, n_proposals: int = 512, seed: int = 0) -> None:
        if n_proposals < 2:
            raise ValueError(f"n_proposals={n_proposals} must be >= 2")
        self.n_proposals = n_proposals
        self.rng = np.random.default_rng(seed)
        self.target = t_target(GRID)
        centers = (np.stack(np.meshgrid(np.arange(GRID), np.arange(GRID)), axis=-1).reshape(-1, 2) + 0.5) / GRID
        self._goal_cells = centers[self.target.ravel()]

    def proposals(self, particles: np.ndarray) -> np.ndarray:
        """``(n_proposals, 5)`` candidate sweeps for one state, the last one a no-op."""
        n = self.n_proposals - 1
        source = particles[self.rng.integers(0, len(particles), n)]
        goal = self._goal_cells[self.rng.integers(0, len(self._goal_cells), n)] + self.rng.normal(0, 0.02, (n, 2))
        direction = goal - source
        direction /= np.maximum(np.linalg.norm(direction, axis=-1, keepdims=True), 1e-9)
        start = source - direction * self.rng.uniform(0.0, 0.15, (n, 1))
        width = self.rng.uniform(-1, 1, (n, 1))
        guided = np.concatenate([start * 2 - 1, goal * 2 - 1, width], axis=1)
        uniform = self.rng.uniform(-1, 1, (n, 5))
        acts = np.where(self.rng.random((n, 1)) < 0.75, guided, uniform)
        noop = np.concatenate([np.repeat(acts[:1, :2], 2, axis=0).reshape(1, 4), [[-1.0]]], axis=1)
        return np.clip(np.concatenate([acts, noop]), -1, 1)

    def top(self, particles: np.ndarray, m: int) -> np.ndarray:
        """The ``m`` sweeps ``(m, 5)`` with the largest planned gains, best first."""
        acts = self.proposals(np.asarray(particles, dtype=np.float64))
        gains = score_gains(particles, acts, seed=int(self.rng.integers(2**31)), target=self.target)
        return acts[np.argsort(-gains, kind="stable")[:m]].astype(np.float32)

    def __call__(self, particles: np.ndarray) -> np.ndarray:
        """The chosen sweep ``(5,)`` for one state ``(P, 2)``."""
        return self.top(particles, 1)[0]


class PreferenceOracle:
    """Labels a pair of sweeps from one state by their IoU gain: ``win`` / ``lose`` (for the first) or ``equal``.

    :param eps: gains closer than this are ``equal``.
    :param seed: seed of the common jitter both sweeps are simulated with.
    """

    def __init__(self, eps: float = 0.01, seed: int = 0) -> None:
        self.eps, self.seed = eps, seed

    def __call__(self, particles: np.ndarray, first: np.ndarray, second: np.ndarray) -> tuple[Label, float, float]:
        gains = score_gains(particles, np.stack([first, second]), seed=self.seed)
        return label_by_gain(float(gains[0]), float(gains[1]), self.eps), float(gains[0]), float(gains[1])
