"""BARFI's tasks: the continuous gridworld, CartPole and MountainCar with auxiliary rewards in ``info``.

Gupta et al., "Behavior Alignment via Reward Function Optimization", NeurIPS 2023. Every step's ``info`` holds
``aux_reward`` (the designer's heuristic, never paid by the env); the env's own reward is the primary reward.
The final step's ``info`` also holds per-episode metrics (``goal_reached``, ``centre_steps``, ``pd_agreement``) for
``eval.info_metrics``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.envs.classic_control.mountain_car import MountainCarEnv

MOVES = ((0.0, 1.0), (0.0, -1.0), (-1.0, 0.0), (1.0, 0.0))  # up, down, left, right


class ContinuousGridWorld(gym.Env[np.ndarray, np.int64]):
    """The paper's continuous GridWorld (``Maze_*``): reach the goal square in the unit square.

    Four actions move 0.2 in sub-steps of 0.045 (so a move cannot jump over the goal's corner); with probability
    ``noise`` the action is replaced by a uniformly random one. Each step pays ``step_reward``; entering the goal
    square (0.75-0.99)^2 pays +100 once and terminates. Start at (0.125, 0.125).

    Auxiliary rewards (``info["aux_reward"]``), of the position after the step:

    * ``good``: -||p - g||^2 with g the goal square's centre. ``x_only=True`` reproduces the reference code's
      typo, whose y-term compares the goal with itself, leaving -(x - g_x)^2.
    * ``bad``: +50 for every step that ends inside the centre square (0.4-0.6)^2, a trap for r_p + r_aux.
    * ``none``: 0.

    Departure: the reference's 10% action noise is read here as "a random action 10% of the time".

    :param aux: which auxiliary reward to report.
    :param noise: probability of a random action.
    :param x_only: the reference's x-only good aux (parity flag).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}
    has_success = True
    start = (0.125, 0.125)
    goal_low, goal_high = 0.75, 0.99
    centre_low, centre_high = 0.4, 0.6
    move, sub_step = 0.2, 0.045
    goal_reward, step_reward, centre_bonus = 100.0, -0.1, 50.0

    def __init__(self, aux: Literal["good", "bad", "none"] = "good", noise: float = 0.1, x_only: bool = False) -> None:
        if aux not in ("good", "bad", "none"):
            raise ValueError(f"aux={aux!r}; use 'good', 'bad' or 'none'")
        if not 0.0 <= noise <= 1.0:
            raise ValueError(f"noise={noise} must be a probability in [0, 1]")
        self.aux, self.noise, self.x_only = aux, float(noise), bool(x_only)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(4)
        self.goal = (self.goal_low + self.goal_high) / 2
        self._pos = self.start
        self._centre_steps = 0

    def _obs(self) -> np.ndarray:
        return np.array(self._pos, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._pos, self._centre_steps = self.start, 0
        return self._obs(), {}

    def in_goal(self, x: float, y: float) -> bool:
        return self.goal_low <= x <= self.goal_high and self.goal_low <= y <= self.goal_high

    def in_centre(self, x: float, y: float) -> bool:
        return self.centre_low <= x <= self.centre_high and self.centre_low <= y <= self.centre_high

    def aux_reward(self, x: float, y: float) -> float:
        if self.aux == "good":
            return -((x - self.goal) ** 2) - (0.0 if self.x_only else (y - self.goal) ** 2)
        if self.aux == "bad":
            return self.centre_bonus if self.in_centre(x, y) else 0.0
        return 0.0

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        a = int(action)
        if self.noise and self.np_random.random() < self.noise:
            a = int(self.np_random.integers(4))
        dx, dy = MOVES[a]
        x, y = self._pos
        travelled, reached = 0.0, False
        while travelled < self.move - 1e-12 and not reached:
            d = min(self.sub_step, self.move - travelled)
            x, y = min(max(x + dx * d, 0.0), 1.0), min(max(y + dy * d, 0.0), 1.0)
            travelled += d
            reached = self.in_goal(x, y)
        self._pos = (x, y)
        centre = self.in_centre(x, y)
        self._centre_steps += centre
        reward = self.step_reward + (self.goal_reward if reached else 0.0)
        info = {"aux_reward": self.aux_reward(x, y), "is_success": reached, "goal_reached": float(reached),
                "centre_steps": float(self._centre_steps)}
        return self._obs(), reward, reached, False, info


class CartPoleAux(CartPoleEnv):
    """CartPole with the paper's PD-agreement auxiliary reward (``good``) or its inverted, noisy twin (``bad``).

    The PD controller pushes right when ``kp * theta + kd * theta_dot > 0`` (the state before the step).
    ``good``: +1 when the action agrees with it, else 0. ``bad`` (the reference's ``BadAuxDebugNoise``):
    -5 + U(0, 5) on agreement, else 1 + U(0, 1), which pays a learner on r_p + r_aux to drop the pole.
    The final step's info holds ``pd_agreement``, the fraction of the episode's actions that agreed.

    Departure: registered with a 200-step limit (CartPole-v0's) rather than 500, to fit the CPU budget.

    :param aux: ``good`` or ``bad``.
    :param kp: PD gain on the pole angle.
    :param kd: PD gain on the pole's angular velocity.
    """

    def __init__(self, aux: Literal["good", "bad"] = "good", kp: float = 1.0, kd: float = 0.3,
                 render_mode: str | None = None) -> None:
        if aux not in ("good", "bad"):
            raise ValueError(f"aux={aux!r}; use 'good' or 'bad'")
        super().__init__(render_mode=render_mode)
        self.aux, self.kp, self.kd = aux, float(kp), float(kd)
        self._agree = self._steps = 0

    def pd_action(self, state: np.ndarray) -> int:
        return int(self.kp * state[2] + self.kd * state[3] > 0)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        self._agree = self._steps = 0
        return super().reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        agrees = int(action) == self.pd_action(np.asarray(self.state))
        obs, reward, terminated, truncated, info = super().step(action)
        if self.aux == "good":
            aux = 1.0 if agrees else 0.0
        else:
            aux = -5.0 + 5.0 * self.np_random.random() if agrees else 1.0 + self.np_random.random()
        self._agree += agrees
        self._steps += 1
        info = {**info, "aux_reward": aux, "pd_agreement": self._agree / self._steps}
        return obs, float(reward), terminated, truncated, info


class MountainCarBangAux(MountainCarEnv):
    """MountainCar with the paper's sparse primary reward and the bang-bang energy-pumping auxiliary reward.

    Primary: +1 on reaching the flag (position >= 0.5, which terminates), else 0 (``MCSenseSparseBangAux``).
    Aux: +5 if the action accelerates along the current velocity (push right while moving right or at rest,
    push left while moving left), else -5 (coasting included).
    """

    has_success = True

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        velocity = float(self.state[1])
        pump = (int(action) == 2 and velocity >= 0.0) or (int(action) == 0 and velocity < 0.0)
        obs, _, terminated, truncated, info = super().step(action)
        info = {**info, "aux_reward": 5.0 if pump else -5.0, "is_success": bool(terminated),
                "goal_reached": float(terminated)}
        return obs, float(terminated), terminated, truncated, info
