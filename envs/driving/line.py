"""A deterministic 1-D kinematic route: the stand-in the CaRL spec asks for to unit-test the reward exactly.

The car moves along a straight route of ``route_length`` m; the action is its speed for the step (m/s, clipped
to ``[0, max_speed]``), so progress is exact: route completion increases by ``100 * v * dt / route_length``
percent. Infractions are scripted, not simulated: ``script`` maps a step number (1 for the first step) to the
info flags to raise on that step (``{"ttc_violation": True}``, ``{"collision": True}``, ``{"lane_offset": 0.8}``,
``{"outside_route_lanes": True}``...), so a test can place each factor of the reward where it wants it.
A scripted ``collision`` (or ``off_road``) terminates; reaching the route's end truncates.

>>> env = LineRouteEnv(route_length=10.0, dt=1.0)
>>> _ = env.reset(seed=0)
>>> [(env.step(np.array([5.0]))[2:4], env.route_completion) for _ in range(2)]
[((False, False), 50.0), ((False, True), 100.0)]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robo_reward.envs.driving.route import additive_reward

FLAGS = ("ttc_violation", "collision", "off_road", "wrong_way", "blocked", "timeout", "outside_route_lanes",
         "in_junction")


class LineRouteEnv(gym.Env):
    """Drive a straight route at the commanded speed; infractions come from ``script`` (see the module docstring).

    :param route_length: route length in m.
    :param speed_limit: speed limit in m/s.
    :param dt: step length in s.
    :param max_speed: largest commanded speed.
    :param script: step number -> info entries to set on that step.
    """

    metadata = {"render_modes": []}  # noqa: RUF012  (Gymnasium declares it an instance attribute)

    def __init__(self, *, route_length: float = 100.0, speed_limit: float = 10.0, dt: float = 0.1,
                 max_speed: float = 30.0, script: Mapping[int, Mapping[str, Any]] | None = None) -> None:
        if route_length <= 0 or dt <= 0:
            raise ValueError(f"route_length and dt must be positive, got {route_length} and {dt}")
        self.route_length, self.speed_limit, self.dt = float(route_length), float(speed_limit), float(dt)
        self.script = {int(k): dict(v) for k, v in (script or {}).items()}
        unknown = {k for v in self.script.values() for k in v} - set(FLAGS) - {"lane_offset", "yaw", "speed"}
        if unknown:
            raise ValueError(f"script sets unknown info keys {sorted(unknown)}; known: {sorted(FLAGS)}, "
                             "lane_offset, yaw, speed")
        self.max_speed = float(max_speed)
        self.action_space = spaces.Box(0.0, self.max_speed, (1,), np.float32)
        self.observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.x, self.v, self.t = 0.0, 0.0, 0
        return self._obs(), self._info({})

    @property
    def route_completion(self) -> float:
        return float(min(100.0, 100.0 * self.x / self.route_length))

    def _obs(self) -> np.ndarray:
        return np.array([self.x / self.route_length, self.v / self.speed_limit], dtype=np.float32)

    def _info(self, extra: Mapping[str, Any]) -> dict[str, Any]:
        info: dict[str, Any] = {k: False for k in FLAGS}
        info.update(route_completion=self.route_completion, speed=self.v, speed_limit=self.speed_limit, yaw=0.0,
                    dt=self.dt, lane_offset=0.0, off_road_fraction=0.0)
        info.update(extra)
        return info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        self.v = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], 0.0, self.max_speed))
        self.x += self.v * self.dt
        info = self._info(self.script.get(self.t, {}))
        terminated = bool(info["collision"] or info["off_road"])
        truncated = not terminated and self.route_completion >= 100.0
        reward = additive_reward(info["speed"], self.speed_limit, self.speed_limit, info["lane_offset"], 0.0, 0.0,
                                 terminated, terminated)
        return self._obs(), reward, terminated, truncated, info
