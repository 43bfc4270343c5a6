"""``robo_reward/GranularSweep-v0``: shape a granular pile into a 'T' with 8-12 sweep primitives."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from robo_reward.envs.granular.sweep import GRID, chamfer, initial_pile, iou, sweep, t_target


class GranularSweepEnv(gym.Env[np.ndarray, np.ndarray]):
    """A pile of particles swept, one primitive per step, towards a 'T' target (DeformPAM's granular task).

    Observation: the particle positions ``(n_particles, 2)`` in the unit square (the point cloud). Action: one
    sweep ``(x0, y0, x1, y1, width)`` in [-1, 1] (see :func:`~robo_reward.envs.granular.sweep.sweep`). Reward: the
    step's gain in IoU with the target, so an episode's return is its final IoU minus its first. Episodes are
    cut by the time limit (``horizon`` primitives, truncation), never terminated.

    Every step's info has ``iou``, ``chamfer``, ``progress`` (= IoU) and ``is_success`` (IoU >= ``threshold``);
    the last step's info also has ``final_iou``, ``initial_iou`` and ``steps_to_threshold``: the number of
    primitives until IoU first reached ``threshold``, or ``horizon + 1`` when it never did.

    :param n_particles: particles in the pile.
    :param horizon: primitives per episode (8-12 in the paper's long-horizon setting).
    :param threshold: IoU counted as success and for steps-to-threshold.
    :param spread: standard deviation of the initial round pile.
    """

    metadata = {"render_modes": ["rgb_array"]}  # noqa: RUF012  (gymnasium declares it an instance attribute)
    has_success = True

    def __init__(self, n_particles: int = 300, horizon: int = 10, threshold: float = 0.6, spread: float = 0.08,
                 render_mode: str | None = None) -> None:
        if n_particles < 1 or horizon < 1:
            raise ValueError(f"n_particles ({n_particles}) and horizon ({horizon}) must be >= 1")
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold={threshold} must be an IoU in (0, 1]")
        self.n_particles, self.horizon, self.threshold, self.spread = n_particles, horizon, threshold, spread
        self.render_mode = render_mode
        self.target = t_target(GRID)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (n_particles, 2), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (5,), np.float32)
        self.particles = np.zeros((n_particles, 2))
        self._t = 0
        self._iou = 0.0
        self._initial_iou = 0.0
        self._reached: int | None = None

    def _obs(self) -> np.ndarray:
        return self.particles.astype(np.float32)

    def _info(self) -> dict[str, Any]:
        return {"iou": self._iou, "chamfer": float(chamfer(self.particles, self.target)), "progress": self._iou,
                "is_success": self._iou >= self.threshold}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.particles = initial_pile(self.n_particles, self.np_random, self.spread)
        self._t = 0
        self._iou = self._initial_iou = float(iou(self.particles, self.target))
        self._reached = 0 if self._iou >= self.threshold else None
        return self._obs(), self._info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.asarray(action, dtype=np.float64).reshape(5)
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action {action} has non-finite entries; give a sweep in [-1, 1]^5")
        self.particles = sweep(self.particles, action, self.np_random)
        self._t += 1
        before, self._iou = self._iou, float(iou(self.particles, self.target))
        if self._reached is None and self._iou >= self.threshold:
            self._reached = self._t
        info = self._info()
        truncated = self._t >= self.horizon
        if truncated:
            info.update(final_iou=self._iou, initial_iou=self._initial_iou,
                        steps_to_threshold=float(self._reached if self._reached is not None else self.horizon + 1))
        return self._obs(), self._iou - before, False, truncated, info

    def render(self) -> np.ndarray:  # type: ignore[override]
        """The target in blue, the occupied cells in orange (their overlap in green), ``(GRID, GRID, 3)`` uint8."""
        from robo_reward.envs.granular.sweep import occupancy

        occ = occupancy(self.particles) > 0
        img = np.full((GRID, GRID, 3), 255, np.uint8)
        img[self.target] = (80, 120, 230)
        img[occ] = (240, 150, 40)
        img[occ & self.target] = (60, 180, 75)
        return img[::-1]
