"""Reach, Push and PickPlace: sparse success rewards, privileged phases and progress, variants by kwargs.

Each task's ``status()`` gives a phase index into ``PHASES`` and a progress
``(phase + f) / len(PHASES)``, with ``f`` in [0, 0.99] the fraction of the current phase done (a distance ratio
to the phase's target, measured from the episode's start where the phase begins there); progress is 0 at reset
and 1 exactly on success. It is a function of the simulator state only, so it regresses when the state does
(a dropped cube sends PickPlace back to ``reach``). This is the privileged progress oracle the Dopamine and KAGI
reward tests use; the scripted experts (``experts.py``) switch phases on the same predicates.

Variants (for training on some and adapting to a held-out one) are constructor kwargs: object size, colour and
mass, the boxes objects, goals and the gripper start in, the goal tolerance, the raised pad's height, distractors.
:data:`VARIANTS` names a few.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from robo_reward.envs.scene import COLOURS, FINGER_OPEN, FINGERTIP_BELOW_GRIP, SceneConfig, resolve_colour
from robo_reward.envs.tabletop import TabletopEnv, TaskStatus

F_MAX = 0.99
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "small_blue": {"object_half_size": 0.016, "object_color": "blue"},
    "large_yellow": {"object_half_size": 0.025, "object_color": "yellow"},
    "purple_heavy": {"object_color": "purple", "object_mass": 0.1},
    "goals_left": {"goal_low": (-0.15, 0.0), "goal_high": (0.15, 0.15)},
    "goals_right": {"goal_low": (-0.15, -0.15), "goal_high": (0.15, 0.0)},
    "distractors": {"num_distractors": 3},
}
"""Named kwargs for Push and PickPlace variants (Reach takes the distractor one)."""


def _fraction(remaining: float, start: float) -> float:
    return float(np.clip(1.0 - remaining / max(start, 1e-6), 0.0, F_MAX))


class ReachEnv(TabletopEnv):
    """Move the grip point to within ``goal_tolerance`` of a goal point in the air (a green sphere).

    :param goal_low: lower corner of the goal box (x, y, z).
    :param goal_high: upper corner of the goal box.
    :param goal_tolerance: success radius (m).
    Other kwargs: :class:`~robo_reward.envs.tabletop.TabletopEnv`.
    """

    PHASES = ("reach",)
    STATE_FIELDS = (("grip_pos", 3), ("grip_vel", 3), ("finger_gap", 1), ("goal_pos", 3), ("goal_rel", 3))

    def __init__(
        self,
        *,
        goal_low: Sequence[float] = (-0.2, -0.2, 0.03),
        goal_high: Sequence[float] = (0.2, 0.2, 0.25),
        goal_tolerance: float = 0.05,
        **kwargs: Any,
    ) -> None:
        self.goal_low, self.goal_high = _box(goal_low, goal_high, 3, "goal")
        self.goal_tolerance = float(goal_tolerance)
        super().__init__(
            scene=SceneConfig(with_object=False, goal_marker="sphere", goal_radius=0.02), **kwargs
        )

    def _sample_task(self, rng: np.random.Generator, options: dict[str, Any]) -> None:
        grip = self.data.qpos[self._hand_qpos] + self._grip_home
        goal = options.pop("goal_pos", None)
        if goal is not None:
            self.goal = np.asarray(goal, dtype=np.float64)
            return
        for _ in range(1000):
            self.goal = rng.uniform(self.goal_low, self.goal_high)
            if np.linalg.norm(self.goal - grip) > self.goal_tolerance + 0.05:
                return
        raise RuntimeError("could not sample a goal away from the gripper; widen goal_low/goal_high")

    def _reset_option_names(self) -> list[str]:
        return ["grip_pos", "goal_pos"]

    def _episode_start(self) -> None:
        self._d0 = float(np.linalg.norm(self.goal - self.grip_pos)) - self.goal_tolerance

    def _state_vector(self) -> np.ndarray:
        g = self.grip_pos
        return np.concatenate([g, self.grip_vel, [self.finger_gap], self.goal, self.goal - g])

    def status(self) -> TaskStatus:
        d = float(np.linalg.norm(self.goal - self.grip_pos))
        if d <= self.goal_tolerance:
            return TaskStatus(True, False, 0, 1.0)
        return TaskStatus(False, False, 0, _fraction(d - self.goal_tolerance, self._d0))


class _ObjectTask(TabletopEnv):
    """Shared part of Push and PickPlace: one cube on the table, a goal region, contact queries."""

    STATE_FIELDS = (
        ("grip_pos", 3),
        ("grip_vel", 3),
        ("finger_gap", 1),
        ("object_pos", 3),
        ("object_rel", 3),
        ("object_quat", 4),
        ("object_linvel", 3),
        ("object_angvel", 3),
        ("goal_pos", 3),
        ("goal_rel", 3),
    )

    def __init__(
        self,
        *,
        object_half_size: float = 0.02,
        object_color: str | Sequence[float] = "red",
        object_mass: float = 0.05,
        object_low: Sequence[float] = (-0.15, -0.15),
        object_high: Sequence[float] = (0.15, 0.15),
        object_yaw_range: float = 0.0,
        goal_low: Sequence[float] = (-0.15, -0.15),
        goal_high: Sequence[float] = (0.15, 0.15),
        goal_tolerance: float = 0.04,
        min_goal_distance: float = 0.12,
        goal_marker: str = "disc",
        goal_marker_radius: float | None = None,
        pad_height: float = 0.0,
        **kwargs: Any,
    ) -> None:
        self.half = float(object_half_size)
        self.object_low, self.object_high = _box(object_low, object_high, 2, "object")
        self.goal_low, self.goal_high = _box(goal_low, goal_high, 2, "goal")
        self.object_yaw_range = float(object_yaw_range)
        self.goal_tolerance = float(goal_tolerance)
        self.min_goal_distance = float(min_goal_distance)
        self.pad_height = float(pad_height) if goal_marker == "pad" else 0.0
        radius = goal_tolerance if goal_marker_radius is None else goal_marker_radius
        scene = SceneConfig(
            object_half_size=self.half,
            object_rgba=resolve_colour(object_color),
            object_mass=float(object_mass),
            goal_marker=goal_marker,
            goal_radius=float(radius),
            pad_height=float(pad_height),
        )
        super().__init__(scene=scene, **kwargs)
        m = self.model
        self._obj_body = m.body("object").id
        self._obj_geom = m.geom("object").id
        jnt = m.joint("object")
        self._obj_qpos = jnt.qposadr[0]
        self._obj_dof = jnt.dofadr[0]

    # ----------------------------------------------------------------- sampling
    def _sample_task(self, rng: np.random.Generator, options: dict[str, Any]) -> None:
        obj = options.pop("object_pos", None)
        goal = options.pop("goal_pos", None)
        for _ in range(1000):
            obj_xy = rng.uniform(self.object_low, self.object_high) if obj is None else np.asarray(obj)[:2]
            goal_xy = rng.uniform(self.goal_low, self.goal_high) if goal is None else np.asarray(goal)[:2]
            if np.linalg.norm(obj_xy - goal_xy) >= self.min_goal_distance or (
                obj is not None and goal is not None
            ):
                break
        else:
            raise RuntimeError("could not sample object and goal min_goal_distance apart; widen their boxes")
        yaw = rng.uniform(-self.object_yaw_range, self.object_yaw_range)
        q = self._obj_qpos
        self.data.qpos[q : q + 3] = (obj_xy[0], obj_xy[1], self.half)
        self.data.qpos[q + 3 : q + 7] = (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))
        self.goal = np.array([goal_xy[0], goal_xy[1], 0.0])

    def _reset_option_names(self) -> list[str]:
        return ["grip_pos", "object_pos", "goal_pos"]

    def _occupied_xy(self) -> list[np.ndarray]:
        return [self.object_pos[:2]]

    # ----------------------------------------------------------------- state
    @property
    def object_pos(self) -> np.ndarray:
        return self.data.xpos[self._obj_body].copy()

    @property
    def object_quat(self) -> np.ndarray:
        return self.data.xquat[self._obj_body].copy()

    def finger_contacts(self) -> np.ndarray:
        """Whether the left and the right finger pad touch the object."""
        pairs = self.data.contact.geom[: self.data.ncon]
        other = np.where(
            pairs[:, 0] == self._obj_geom,
            pairs[:, 1],
            np.where(pairs[:, 1] == self._obj_geom, pairs[:, 0], -1),
        )
        return np.isin(self._finger_geoms, other)

    def grasped(self) -> bool:
        """Both finger pads touch the object (a friction grasp can hold it)."""
        return bool(self.finger_contacts().all())

    def _state_vector(self) -> np.ndarray:
        g, o = self.grip_pos, self.object_pos
        v = self.data.qvel[self._obj_dof : self._obj_dof + 6]
        return np.concatenate(
            [g, self.grip_vel, [self.finger_gap], o, o - g, self.object_quat, v, self.goal, self.goal - o]
        )

    def _task_info(self) -> dict[str, Any]:
        return {"object_pos": self.object_pos, "grasped": self.grasped()}

    def _xy_to_goal(self) -> float:
        return float(np.linalg.norm(self.object_pos[:2] - self.goal[:2]))

    def _fell(self) -> bool:
        return bool(self.object_pos[2] < -0.05)


class PushEnv(_ObjectTask):
    """Push the cube until its centre lies within ``goal_tolerance`` of the goal (a green disc on the table).

    Phases: ``approach`` (grip point to the push point behind the cube, on the far side from the goal) and
    ``push`` (entered once the gripper is at the push point, or once the cube has covered 10% of its way).
    Kwargs: see :class:`_ObjectTask` fields and :class:`~robo_reward.envs.tabletop.TabletopEnv`.
    """

    PHASES = ("approach", "push")
    PUSH_STANDOFF = 0.022
    """Distance (m) from the cube's face to the grip point at the push point (closed fingers are 0.024 wide)."""

    def push_point(self) -> np.ndarray:
        """Where the grip point starts a straight push: behind the cube on the line from the goal, at cube height."""
        o = self.object_pos
        u = self.goal[:2] - o[:2]
        u = u / max(np.linalg.norm(u), 1e-9)
        xy = o[:2] - u * (self.half + self.PUSH_STANDOFF)
        return np.array([xy[0], xy[1], self.push_height()])

    def at_push_point(self) -> bool:
        """The grip point is within 2 cm of the push point (the ``push`` phase begins)."""
        return bool(np.linalg.norm(self.grip_pos - self.push_point()) < 0.02)

    def push_height(self) -> float:
        return max(self.half, FINGERTIP_BELOW_GRIP + 0.004)

    def _episode_start(self) -> None:
        self._d_push0 = float(np.linalg.norm(self.grip_pos - self.push_point()))
        self._d_goal0 = self._xy_to_goal() - self.goal_tolerance

    def status(self) -> TaskStatus:
        d_goal = self._xy_to_goal()
        if self._fell():
            return TaskStatus(False, True, 0, 0.0)
        if d_goal <= self.goal_tolerance and self.object_pos[2] < self.half + 0.01:
            return TaskStatus(True, False, 1, 1.0)
        f_push = _fraction(d_goal - self.goal_tolerance, self._d_goal0)
        if self.at_push_point() or f_push > 0.1:
            return TaskStatus(False, False, 1, (1 + f_push) / 2)
        d_pp = float(np.linalg.norm(self.grip_pos - self.push_point()))
        return TaskStatus(False, False, 0, _fraction(d_pp, self._d_push0) / 2)


class PickPlaceEnv(_ObjectTask):
    """Pick the cube up and place it on a raised green pad: success when the cube rests on the pad with its
    centre within ``goal_tolerance`` of the pad's centre and neither finger touches it.

    The pad (``pad_height`` m tall, half side ``goal_tolerance + object_half_size``) cannot be reached by pushing,
    so success needs the whole sequence. Phases: ``reach`` (grip point to the cube), ``grasp`` (close on it),
    ``lift`` (cube's bottom ``LIFT_CLEARANCE`` above the pad top), ``carry`` (cube over the pad), ``place`` (lower,
    release). Kwargs as :class:`PushEnv`, plus ``pad_height``.
    """

    PHASES = ("reach", "grasp", "lift", "carry", "place")
    LIFT_CLEARANCE = 0.03
    CARRY_ABOVE = 0.02

    def __init__(self, *, pad_height: float = 0.02, goal_tolerance: float = 0.025, **kwargs: Any) -> None:
        half = float(kwargs.get("object_half_size", 0.02))
        kwargs.setdefault("min_goal_distance", 0.14)
        super().__init__(
            goal_marker="pad",
            goal_marker_radius=goal_tolerance + half,
            pad_height=pad_height,
            goal_tolerance=goal_tolerance,
            **kwargs,
        )

    @property
    def rest_on_pad_z(self) -> float:
        return self.pad_height + self.half

    @property
    def lifted_z(self) -> float:
        """Cube-centre height from which it counts as lifted (clears the pad by ``LIFT_CLEARANCE``)."""
        return self.pad_height + self.half + self.LIFT_CLEARANCE

    @property
    def carry_z(self) -> float:
        """Cube-centre height for carrying (the expert's); ``place`` progress is measured down from it."""
        return self.lifted_z + self.CARRY_ABOVE

    def grasp_point(self) -> np.ndarray:
        """Where the grip point closes on the cube: its centre, kept high enough for the fingertips."""
        o = self.object_pos
        return np.array([o[0], o[1], max(o[2], FINGERTIP_BELOW_GRIP + 0.002)])

    def near_grasp_point(self) -> bool:
        """The grip point is within 1.5 cm of the grasp point in xy and in height (the ``grasp`` phase)."""
        err = self.grip_pos - self.grasp_point()
        return bool(np.linalg.norm(err[:2]) < 0.015 and abs(err[2]) < 0.015)

    def _episode_start(self) -> None:
        self._d_reach0 = float(np.linalg.norm(self.grip_pos - self.grasp_point()))
        self._d_carry0 = self._xy_to_goal() - self.goal_tolerance

    def on_pad(self) -> bool:
        return (
            self._xy_to_goal() <= self.goal_tolerance and abs(self.object_pos[2] - self.rest_on_pad_z) < 0.005
        )

    def status(self) -> TaskStatus:
        if self._fell():
            return TaskStatus(False, True, 0, 0.0)
        contacts = self.finger_contacts()
        if self.on_pad() and not contacts.any():
            return TaskStatus(True, False, 4, 1.0)
        grasped = bool(contacts.all())
        z = self.object_pos[2]
        d_goal = self._xy_to_goal()
        if grasped and d_goal <= self.goal_tolerance:
            phase, f = 4, _fraction(z - self.rest_on_pad_z, self.carry_z - self.rest_on_pad_z)
        elif self.on_pad():
            phase, f = 4, F_MAX
        elif grasped and z >= self.lifted_z:
            phase, f = 3, _fraction(d_goal - self.goal_tolerance, self._d_carry0)
        elif grasped:
            phase, f = 2, float(np.clip((z - self.half) / (self.lifted_z - self.half), 0.0, F_MAX))
        elif self.near_grasp_point():
            closed = (2 * FINGER_OPEN - self.finger_gap) / (2 * FINGER_OPEN - 2 * self.half)
            phase, f = 1, float(np.clip(closed, 0.0, F_MAX))
        else:
            phase, f = 0, _fraction(float(np.linalg.norm(self.grip_pos - self.grasp_point())), self._d_reach0)
        return TaskStatus(False, False, phase, (phase + f) / len(self.PHASES))


def _box(low: Sequence[float], high: Sequence[float], dim: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    if lo.shape != (dim,) or hi.shape != (dim,) or np.any(lo > hi):
        raise ValueError(f"{what}_low/{what}_high must be {dim}-vectors with low <= high; got {low}, {high}")
    if np.any(np.abs(lo[:2]) > 0.22) or np.any(np.abs(hi[:2]) > 0.22):
        raise ValueError(f"{what} box {low}..{high} leaves the reachable table area |x|, |y| <= 0.22")
    return lo, hi


__all__ = ["COLOURS", "VARIANTS", "PickPlaceEnv", "PushEnv", "ReachEnv"]
