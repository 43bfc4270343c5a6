"""Scripted experts for the tabletop tasks, with the phase index at every step (and, in ``EXPERTS``, Push2D's).

An expert reads privileged simulator state from ``env.unwrapped`` (so it works in every observation mode) and
returns an :class:`ExpertAction`: the action and the index of the phase it is executing, from the task's
``PHASES``. Phases only advance, except when the expert has to start over (a cube slipped out of the grasp);
the first step of each phase gives the demonstration's keyframes K_0..K_{N-1}, and its last step K_N
(:func:`keyframes`). The phase switches use the predicates of the env's privileged ``status()``, so the expert's
label and ``info["phase"]`` agree along an undisturbed demonstration.

``noise`` adds Gaussian noise (standard deviation in action units) to every action component, for suboptimal
demonstrations; the expert's own random generator is seeded, so a seeded env plus a seeded expert repeat exactly.

>>> import gymnasium as gym, robo_reward
>>> env = gym.make("robo_reward/Reach-v0")
>>> expert = make_expert(env, seed=0)
>>> obs, info = env.reset(seed=0); expert.reset()
>>> done = False
>>> while not done:
...     action, phase = expert.act()
...     obs, reward, terminated, truncated, info = env.step(action)
...     done = terminated or truncated
>>> info["is_success"], phase
(True, 0)
>>> env.close()
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import gymnasium as gym
import numpy as np

from robo_reward.datasets import keyframes
from robo_reward.envs.push2d.env import Push2DEnv
from robo_reward.envs.push2d.expert import Push2DExpert
from robo_reward.envs.tabletop import TabletopEnv
from robo_reward.envs.tasks import PickPlaceEnv, PushEnv, ReachEnv

__all__ = ["Expert", "ExpertAction", "ScriptedExpert", "keyframes", "make_expert"]

OPEN, CLOSE = 1.0, -1.0


class ExpertAction(NamedTuple):
    """One expert decision: the action to take and the phase it belongs to."""

    action: np.ndarray
    phase: int


class Expert(Protocol):
    """What ``make_expert`` returns: ``reset()`` after ``env.reset``, then ``act() -> (action, phase)``."""

    @property
    def num_phases(self) -> int: ...

    def reset(self) -> None: ...

    def act(self) -> tuple[np.ndarray, int]: ...


class ScriptedExpert(abc.ABC):
    """Base of the scripted experts: a phase machine over privileged state, plus optional action noise.

    :param env: the task (wrapped or not).
    :param noise: standard deviation of Gaussian noise added to each action component (0 for clean demos).
    :param seed: seed of the noise generator.
    """

    task: type[TabletopEnv] = TabletopEnv

    def __init__(self, env: gym.Env, *, noise: float = 0.0, seed: int | None = None) -> None:
        base = env.unwrapped
        if not isinstance(base, self.task):
            raise TypeError(f"{type(self).__name__} drives {self.task.__name__}, got {type(base).__name__}")
        if noise < 0:
            raise ValueError(f"noise={noise} must be >= 0")
        self.env: Any = base
        self.noise = float(noise)
        self.rng = np.random.default_rng(seed)
        self.phase = 0

    @property
    def num_phases(self) -> int:
        return len(self.env.PHASES)

    def reset(self) -> None:
        """Start a new episode (call after ``env.reset``)."""
        self.phase = 0

    def act(self) -> ExpertAction:
        """The next action (noise included, clipped to [-1, 1]) and the phase it belongs to."""
        action = self._policy()
        if self.noise:
            action = action + self.rng.normal(0.0, self.noise, size=4)
        return ExpertAction(np.clip(action, -1.0, 1.0).astype(np.float32), self.phase)

    @abc.abstractmethod
    def _policy(self) -> np.ndarray:
        """Update ``self.phase`` from the state and return the clean action."""

    def _move(self, target: np.ndarray, gripper: float) -> np.ndarray:
        """Action that moves the grip point straight at ``target`` (saturating at ``max_delta`` per step)."""
        delta = (np.asarray(target) - self.env.grip_pos) / self.env.max_delta
        return np.append(np.clip(delta, -1.0, 1.0), gripper)

    def _over(self, target: np.ndarray, safe_z: float) -> np.ndarray:
        """Waypoint towards ``target`` that stays at ``safe_z`` until over it: rise first if low, then cross."""
        grip = self.env.grip_pos
        if np.linalg.norm(grip[:2] - target[:2]) <= 0.01:
            return target
        if grip[2] < safe_z - 0.02:
            return np.array([grip[0], grip[1], safe_z])
        return np.array([target[0], target[1], max(safe_z, target[2])])


class ReachExpert(ScriptedExpert):
    """Straight to the goal."""

    task = ReachEnv

    def _policy(self) -> np.ndarray:
        return self._move(self.env.goal, OPEN)


class PushExpert(ScriptedExpert):
    """Go round to the push point (above the cube, then down behind it), then push along the cube-goal line.

    While pushing it keeps re-aiming through the cube's centre and backs off while it corrects a sideways
    offset; if it ends up beside or ahead of the cube it goes over it to the push point again (the phase stays
    ``push``).
    """

    task = PushEnv
    SAFE_ABOVE = 0.04
    PUSH_STEP = 0.012
    """How far ahead of the push point the pusher aims when aligned (sets the pushing speed)."""

    def __init__(self, env: gym.Env, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        self._realign = False

    def reset(self) -> None:
        super().reset()
        self._realign = False

    def _policy(self) -> np.ndarray:
        e = self.env
        grip, obj, pp = e.grip_pos, e.object_pos, e.push_point()
        if self.phase == 0 and e.at_push_point():
            self.phase = 1
        if self.phase == 0 or self._realign:
            if np.linalg.norm(grip - pp) < 0.008:
                self._realign = False
            else:
                return self._move(self._approach(grip, obj, pp), CLOSE)
        u = e.goal[:2] - obj[:2]
        u = u / max(np.linalg.norm(u), 1e-9)
        n = np.array([-u[1], u[0]])
        rel = grip[:2] - obj[:2]
        lateral = rel @ n
        if rel @ u > -(e.half + 0.006):
            self._realign = True
            return self._move(self._approach(grip, obj, pp), CLOSE)
        advance = self.PUSH_STEP - 2.0 * max(abs(lateral) - 0.004, 0.0)
        target = np.append(grip[:2] + u * max(advance, -0.02) - n * lateral, e.push_height())
        return self._move(target, CLOSE)

    def _approach(self, grip: np.ndarray, obj: np.ndarray, pp: np.ndarray) -> np.ndarray:
        return self._over(pp, obj[2] + self.env.half + self.SAFE_ABOVE)


class PickPlaceExpert(ScriptedExpert):
    """Reach over the cube and down, close, lift, carry over the pad, lower until it rests, open."""

    task = PickPlaceEnv

    def __init__(self, env: gym.Env, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        self._closing = 0
        self._squeezed = 0

    def reset(self) -> None:
        super().reset()
        self._closing = self._squeezed = 0

    def _policy(self) -> np.ndarray:
        e = self.env
        grip, obj = e.grip_pos, e.object_pos
        grasped = e.grasped()
        if self.phase >= 2 and not self._held() and not e.on_pad():
            self.phase = 0
        if self.phase == 0 and e.near_grasp_point():
            self.phase, self._closing = 1, 0
        if self.phase == 1 and grasped:
            self.phase, self._squeezed = 2, 0
        if self.phase == 2 and obj[2] >= e.lifted_z:
            self.phase = 3
        if self.phase == 3 and np.linalg.norm(obj[:2] - e.goal[:2]) <= e.goal_tolerance:
            self.phase = 4

        gp = e.grasp_point()
        if self.phase == 0:
            return self._move(self._over(gp, gp[2] + e.half + 0.03), OPEN)
        if self.phase == 1:
            err = grip - gp
            if self._closing or (np.linalg.norm(err[:2]) < 0.005 and abs(err[2]) < 0.006):
                self._closing += 1
                if self._closing > 15:
                    self.phase, self._closing = 0, 0
                    return self._move(grip + np.array([0.0, 0.0, 0.02]), OPEN)
                return self._move(grip, CLOSE)
            return self._move(gp, OPEN)
        offset = grip - obj
        carry_z = e.carry_z + offset[2]
        if self.phase == 2:
            self._squeezed += 1
            return self._move(grip if self._squeezed < 3 else np.array([grip[0], grip[1], carry_z]), CLOSE)
        if self.phase == 3:
            return self._move(np.append(e.goal[:2] + offset[:2], carry_z), CLOSE)
        if obj[2] - e.rest_on_pad_z > 0.003:
            over = e.goal[:2] + offset[:2]
            z = (
                e.rest_on_pad_z + offset[2] - 0.004
                if np.linalg.norm(obj[:2] - e.goal[:2]) < 0.006
                else grip[2]
            )
            return self._move(np.append(over, z), CLOSE)
        return self._move(grip, OPEN)

    def _held(self) -> bool:
        """The cube is still in the hand: both pads touch it, or one does and it sits within 1 cm of the grip
        point (a pad can lose contact for a step when the cube shifts between the fingers; on MuJoCo 3.3 this
        happens at the start of a fast carry, and restarting there would drop a cube that was never lost)."""
        contacts = self.env.finger_contacts()
        near = np.linalg.norm(self.env.grip_pos - self.env.object_pos) < 0.01
        return bool(contacts.all() or (contacts.any() and near))


EXPERTS: dict[type[gym.Env], Callable[..., Expert]] = {
    ReachEnv: ReachExpert,
    PushEnv: PushExpert,
    PickPlaceEnv: PickPlaceExpert,
    Push2DEnv: Push2DExpert,  # the zone-avoiding pusher (detour 1); phases: waypoint, goal
}


def make_expert(env: gym.Env, *, noise: float = 0.0, seed: int | None = None) -> Expert:
    """The scripted expert of ``env``'s task."""
    for task, expert in EXPERTS.items():
        if isinstance(env.unwrapped, task):
            return expert(env, noise=noise, seed=seed)
    raise TypeError(
        f"no scripted expert for {type(env.unwrapped).__name__}; experts exist for "
        f"{[t.__name__ for t in EXPERTS]}"
    )
