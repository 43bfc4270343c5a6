"""A scripted pusher for :class:`~robo_reward.envs.push2d.env.Push2DEnv` whose path around the zone is a knob.

The expert pushes each block through one waypoint beside the red zone and then into the goal. ``detour`` sets how
far the waypoint lies off the straight block-to-goal line (0: straight through the zone; +-1: around it on the
left or right), so a family of experts with random detours, noise and stopping times gives rollouts that differ
in task success and in how long they spend in the zone: what the preference oracle ranks.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from robo_reward.envs.push2d.env import BLOCK_HALF, GOAL, ZONE


class Push2DExpert:
    """Pushes blocks via a waypoint beside the zone.

    :param env: the (possibly wrapped) Push2D env it acts in.
    :param detour: waypoint offset off the straight path, in units of the zone's size (0 = through the zone).
    :param noise: std of Gaussian action noise.
    :param stop_after: steps after which it stands still (None: never), for rollouts that fail the task.
    :param seed: noise seed.
    """

    num_phases = 2  # 0: pushing towards the waypoint beside the zone, 1: into the goal

    def __init__(self, env: gym.Env, *, detour: float = 1.0, noise: float = 0.0, stop_after: int | None = None,
                 seed: int | None = 0) -> None:
        self.env: Any = env.unwrapped
        self.detour, self.noise, self.stop_after = float(detour), float(noise), stop_after
        self.rng = np.random.default_rng(seed)
        self.t = 0
        self.stage = 0

    def reset(self) -> None:
        self.t, self.stage = 0, 0

    def _target(self, block: np.ndarray) -> np.ndarray:
        centre, half = ZONE
        perp = np.array([-1.0, 1.0]) / np.sqrt(2.0)
        waypoint = centre + self.detour * (3.0 * half) * perp
        if self.stage == 0 and np.linalg.norm(block - waypoint) < 0.06:
            self.stage = 1
        return waypoint if self.stage == 0 and abs(self.detour) > 1e-6 else GOAL[0]

    def act(self) -> tuple[np.ndarray, int]:
        env = self.env
        self.t += 1
        if self.stop_after is not None and self.t > self.stop_after:
            return np.zeros(2, np.float32), self.stage
        remaining = [b for b in env.blocks if not np.all(np.abs(b - GOAL[0]) <= GOAL[1] - 0.02)]
        if not remaining:
            return np.zeros(2, np.float32), self.stage
        block = remaining[0]
        direction = self._target(block) - block
        direction /= max(np.linalg.norm(direction), 1e-9)
        behind = block - direction * (env.radius + BLOCK_HALF + 0.01)
        to_behind = behind - env.agent
        if np.linalg.norm(to_behind) > 0.03:
            side = np.array([-direction[1], direction[0]])
            ahead = float(np.dot(env.agent - block, direction)) > -(env.radius + BLOCK_HALF) * 0.5
            move = to_behind + (side * np.sign(np.dot(env.agent - block, side) or 1.0) * 0.1 if ahead else 0.0)
        else:
            move = direction
        action = move / max(np.abs(move).max(), 1e-9)
        action = action + self.noise * self.rng.standard_normal(2)
        return np.clip(action, -1.0, 1.0).astype(np.float32), self.stage

