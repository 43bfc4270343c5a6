"""The shared base of the tabletop tasks: actions, observation modes, cameras, rendering, episode ends.

A task subclass (``tasks.py``) says what the scene holds, samples an episode, writes its state vector and
evaluates success together with a privileged phase index and progress in [0, 1]. Everything else lives here.

Action (continuous, in [-1, 1]^4): ``(dx, dy, dz)`` moves the grip point by up to ``max_delta`` metres per step
(the hand's position servos get the new set point; contacts can stop them), ``g`` sets the finger opening
(-1 closed, +1 open; the force-limited finger servos squeeze whatever is between the pads).

Observation modes:

- ``"state"``: a flat float32 vector (task-specific layout, see each task's ``STATE_FIELDS``);
- ``"pixels"``: ``{camera: uint8 (H, W, 3)}`` for the chosen cameras (plus ``{camera}_depth`` float32
  ``(H, W, 1)`` in metres when ``depth=True``);
- ``"state+pixels"``: both, the vector under ``"state"``.

Every ``info`` (reset and step) carries ``is_success``, the privileged ``phase`` index and ``progress`` in [0, 1]
(see each task's ``PHASES``), and the grip, goal and (where there is one) object positions, so rewards that use
privileged state (KAGI's relabelling, Dopamine's oracle) can read them. Camera intrinsics and extrinsics at the
current state come from :meth:`TabletopEnv.camera_model`.

Episode ends: ``terminated`` on success (``terminate_on_success=True``, the default) or when the object falls off
the table; ``truncated`` only from the ``TimeLimit`` that registration adds (``max_episode_steps``).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from robo_reward.envs.cameras import CameraModel, SceneRenderer, camera_model
from robo_reward.envs.scene import CAMERAS, FINGER_OPEN, SceneConfig, build_model, distractor_colours

OBS_MODES = ("state", "pixels", "state+pixels")
WORKSPACE_LOW = np.array([-0.25, -0.25, 0.0])
WORKSPACE_HIGH = np.array([0.25, 0.25, 0.3])
"""Box the grip point's set point is kept in (m); the table top is z = 0."""
STATE_BOUND = 10.0
"""State vectors are clipped to [-STATE_BOUND, STATE_BOUND] (positions are within 1 m, speeds far below 10 m/s)."""

Vec3 = Sequence[float]


@dataclasses.dataclass(frozen=True)
class TaskStatus:
    """What a task reports about the current state."""

    success: bool
    failed: bool
    phase: int
    progress: float


class TabletopEnv(gym.Env[Any, np.ndarray], abc.ABC):
    """Base class of the tabletop tasks (see the module docstring).

    :param obs_mode: ``"state"``, ``"pixels"`` or ``"state+pixels"``.
    :param cameras: cameras in pixel observations, from ``("front", "side", "top", "wrist")``.
    :param image_size: side of the square camera images in observations (pixels).
    :param depth: add a depth image per camera to pixel observations.
    :param render_mode: ``None`` or ``"rgb_array"`` (``render()`` returns ``render_camera`` at ``render_size``).
    :param render_size: side of the square image ``render()`` returns.
    :param render_camera: camera ``render()`` uses.
    :param frame_skip: physics steps (2 ms each) per env step.
    :param max_delta: largest grip-point move per step and axis (m).
    :param grip_init_low: lower corner of the box the grip point starts in.
    :param grip_init_high: upper corner of that box.
    :param terminate_on_success: end the episode (``terminated``) on the first success.
    :param num_distractors: visual-only boxes placed on the table (they do not collide).
    :param distractor_colors: their colours (names or RGBA), cycled; default avoids the object's colour.
    :param distractor_half_size: half edge of the distractor boxes (m).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}  # noqa: RUF012
    PHASES: tuple[str, ...] = ()
    STATE_FIELDS: tuple[tuple[str, int], ...] = ()

    def __init__(
        self,
        *,
        obs_mode: str = "state",
        cameras: Sequence[str] = ("front", "wrist"),
        image_size: int = 64,
        depth: bool = False,
        render_mode: str | None = None,
        render_size: int = 256,
        render_camera: str = "front",
        frame_skip: int = 10,
        max_delta: float = 0.02,
        grip_init_low: Vec3 = (-0.08, -0.08, 0.12),
        grip_init_high: Vec3 = (0.08, 0.08, 0.18),
        terminate_on_success: bool = True,
        num_distractors: int = 0,
        distractor_colors: Sequence[Any] | None = None,
        distractor_half_size: float = 0.02,
        scene: SceneConfig,
    ) -> None:
        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode={obs_mode!r} must be one of {OBS_MODES}")
        cameras = tuple(cameras)
        unknown = [c for c in (*cameras, render_camera) if c not in CAMERAS]
        if unknown or (obs_mode != "state" and not cameras):
            raise ValueError(f"cameras={cameras} / render_camera={render_camera!r}: pick from {CAMERAS}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r} must be None or 'rgb_array'")
        if image_size < 8 or render_size < 8 or frame_skip < 1 or max_delta <= 0:
            raise ValueError("image_size and render_size must be >= 8, frame_skip >= 1, max_delta > 0")
        self.obs_mode = obs_mode
        self.cameras = cameras
        self.image_size = int(image_size)
        self.depth = bool(depth)
        self.render_mode = render_mode
        self.render_size = int(render_size)
        self.render_camera = render_camera
        self.frame_skip = int(frame_skip)
        self.max_delta = float(max_delta)
        self.grip_init_low = np.asarray(grip_init_low, dtype=np.float64)
        self.grip_init_high = np.asarray(grip_init_high, dtype=np.float64)
        if self.grip_init_low.shape != (3,) or np.any(self.grip_init_low > self.grip_init_high):
            raise ValueError("grip_init_low/high must be 3-vectors with low <= high")
        self.terminate_on_success = bool(terminate_on_success)
        if not 0 <= num_distractors <= 6:
            raise ValueError(f"num_distractors={num_distractors} must lie in [0, 6]")
        self.num_distractors = int(num_distractors)
        self.distractor_half_size = float(distractor_half_size)

        size = max(self.image_size, self.render_size if render_mode else 0)
        scene = dataclasses.replace(scene, buffer_size=(size, size))
        if num_distractors:
            scene = dataclasses.replace(
                scene,
                distractor_rgbas=distractor_colours(num_distractors, distractor_colors, scene.object_rgba),
                distractor_half_size=self.distractor_half_size,
            )
        self.scene = scene
        self.model = build_model(scene)
        self.data = mujoco.MjData(self.model)
        self.dt = self.model.opt.timestep * self.frame_skip
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.dt)}
        self._ids()

        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        self.observation_space = self._make_observation_space()
        self._obs_renderer: SceneRenderer | None = None
        self._view_renderer: SceneRenderer | None = None
        self.goal = np.zeros(3)

    @classmethod
    def state_index(cls, field: str) -> list[int]:
        """Indices of one ``STATE_FIELDS`` entry in the state vector (e.g. for a goal-distance potential).

        >>> from robo_reward.envs.tasks import ReachEnv, PushEnv
        >>> ReachEnv.state_index("goal_rel"), PushEnv.state_index("goal_rel")
        ([10, 11, 12], [26, 27, 28])
        """
        start = 0
        for name, size in cls.STATE_FIELDS:
            if name == field:
                return list(range(start, start + size))
            start += size
        raise KeyError(f"{cls.__name__} has no state field {field!r}; fields: {[n for n, _ in cls.STATE_FIELDS]}")

    # ------------------------------------------------------------------ task hooks
    @abc.abstractmethod
    def _sample_task(self, rng: np.random.Generator, options: dict[str, Any]) -> None:
        """Place the object, goal and whatever else the task randomises (``self.goal`` included)."""

    @abc.abstractmethod
    def _episode_start(self) -> None:
        """Record per-episode references (initial distances) once the start state has settled."""

    @abc.abstractmethod
    def _state_vector(self) -> np.ndarray:
        """The flat state observation (layout in ``STATE_FIELDS``)."""

    @abc.abstractmethod
    def status(self) -> TaskStatus:
        """Success, failure and the privileged phase/progress of the current state."""

    def _task_info(self) -> dict[str, Any]:
        return {}

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        options = dict(options or {})
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        grip = options.pop("grip_pos", None)
        if grip is None:
            grip = self.np_random.uniform(self.grip_init_low, self.grip_init_high)
        elif np.shape(grip) != (3,):
            raise ValueError(f"reset option grip_pos={grip!r} must be an (x, y, z) position")
        d.qpos[self._hand_qpos] = grip - self._grip_home
        d.qpos[self._finger_qpos] = FINGER_OPEN
        d.ctrl[:3] = d.qpos[self._hand_qpos]
        d.ctrl[3:5] = FINGER_OPEN
        self._sample_task(self.np_random, options)
        if options:
            raise ValueError(
                f"unknown reset options {sorted(options)}; this task takes {self._reset_option_names()}"
            )
        d.mocap_pos[self._goal_mocap] = self.goal
        self._place_distractors(self.np_random)
        mujoco.mj_forward(m, d)
        for _ in range(self.frame_skip):
            mujoco.mj_step(m, d)
        mujoco.mj_forward(m, d)
        self._episode_start()
        return self._observation(), self._info(self.status())

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict]:
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (4,) or not np.all(np.isfinite(a)):
            raise ValueError(
                f"action must be 4 finite numbers (dx, dy, dz, gripper) in [-1, 1]; got {action!r}"
            )
        a = np.clip(a, -1.0, 1.0)
        m, d = self.model, self.data
        grip = d.site_xpos[self._grip_site]
        target = np.clip(grip + a[:3] * self.max_delta, WORKSPACE_LOW, WORKSPACE_HIGH)
        d.ctrl[:3] = d.qpos[self._hand_qpos] + (target - grip)
        d.ctrl[3:5] = 0.5 * (a[3] + 1.0) * FINGER_OPEN
        for _ in range(self.frame_skip):
            mujoco.mj_step(m, d)
        mujoco.mj_forward(m, d)
        st = self.status()
        reward = 1.0 if st.success else 0.0
        terminated = (st.success and self.terminate_on_success) or st.failed
        return self._observation(), reward, bool(terminated), False, self._info(st)

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array' to gym.make")
            return None
        if self._view_renderer is None:
            self._view_renderer = SceneRenderer(
                self.model, self.render_size, self.render_size, [self.render_camera]
            )
        return self._view_renderer.rgb(self.data)[self.render_camera]

    def render_depth(self, camera: str, size: int | None = None) -> np.ndarray:
        """Depth (m, along the optical axis) of ``camera`` at the current state, ``(size, size)`` float32."""
        return self._renderer_for(size).depth(self.data, [camera])[camera]

    def render_rgb(self, camera: str, size: int | None = None) -> np.ndarray:
        """RGB image of ``camera`` at the current state, ``(size, size, 3)`` uint8."""
        return self._renderer_for(size).rgb(self.data, [camera])[camera]

    def camera_model(self, camera: str, size: int | None = None) -> CameraModel:
        """Intrinsics and extrinsics of ``camera`` at the current state, for ``size`` x ``size`` images."""
        size = self.image_size if size is None else int(size)
        return camera_model(self.model, self.data, camera, size, size)

    def close(self) -> None:
        for r in (self._obs_renderer, self._view_renderer):
            if r is not None:
                r.close()
        self._obs_renderer = self._view_renderer = None

    # ------------------------------------------------------------------ state access
    @property
    def grip_pos(self) -> np.ndarray:
        """Grip point (between the finger pads), world frame."""
        return self.data.site_xpos[self._grip_site].copy()

    @property
    def grip_vel(self) -> np.ndarray:
        return self.data.qvel[self._hand_dof].copy()

    @property
    def finger_gap(self) -> float:
        """Distance between the finger pads (m): 0 closed, 0.08 open."""
        return float(self.data.qpos[self._finger_qpos].sum())

    # ------------------------------------------------------------------ internals
    def _ids(self) -> None:
        m = self.model
        self._hand_qpos = np.array([m.joint(n).qposadr[0] for n in ("hand_x", "hand_y", "hand_z")])
        self._hand_dof = np.array([m.joint(n).dofadr[0] for n in ("hand_x", "hand_y", "hand_z")])
        self._finger_qpos = np.array([m.joint(n).qposadr[0] for n in ("finger_l", "finger_r")])
        self._grip_site = m.site("grip").id
        self._finger_geoms = np.array([m.geom("finger_l").id, m.geom("finger_r").id])
        self._goal_mocap = m.body_mocapid[m.body("goal").id]
        self._distractor_mocap = [
            m.body_mocapid[m.body(f"distractor{i}").id] for i in range(self.num_distractors)
        ]
        d = mujoco.MjData(m)
        mujoco.mj_kinematics(m, d)
        self._grip_home = d.site_xpos[self._grip_site].copy()

    def _reset_option_names(self) -> list[str]:
        return ["grip_pos"]

    def _place_distractors(self, rng: np.random.Generator) -> None:
        if not self.num_distractors:
            return
        taken = [self.goal[:2], *self._occupied_xy()]
        h = self.distractor_half_size
        for mocap in self._distractor_mocap:
            for _ in range(1000):
                xy = rng.uniform(-0.22, 0.22, size=2)
                if all(np.linalg.norm(xy - t) > 0.09 for t in taken):
                    break
            else:
                raise RuntimeError("could not place the distractors; use fewer or smaller ones")
            taken.append(xy)
            self.data.mocap_pos[mocap] = (xy[0], xy[1], h)

    def _occupied_xy(self) -> list[np.ndarray]:
        return []

    def _make_observation_space(self) -> gym.Space:
        n = sum(size for _, size in self.STATE_FIELDS)
        state = gym.spaces.Box(-STATE_BOUND, STATE_BOUND, shape=(n,), dtype=np.float32)
        if self.obs_mode == "state":
            return state
        s = self.image_size
        spaces: dict[str, gym.Space] = {"state": state} if self.obs_mode == "state+pixels" else {}
        for cam in self.cameras:
            spaces[cam] = gym.spaces.Box(0, 255, shape=(s, s, 3), dtype=np.uint8)
            if self.depth:
                far = float(self.model.vis.map.zfar * self.model.stat.extent)
                spaces[f"{cam}_depth"] = gym.spaces.Box(0.0, far, shape=(s, s, 1), dtype=np.float32)
        return gym.spaces.Dict(spaces)

    def _renderer_for(self, size: int | None) -> SceneRenderer:
        size = self.image_size if size is None else int(size)
        if size == self.image_size:
            if self._obs_renderer is None:
                self._obs_renderer = SceneRenderer(self.model, size, size, self.cameras or ("front",))
            return self._obs_renderer
        if self.render_mode is not None and size == self.render_size:
            if self._view_renderer is None:
                self._view_renderer = SceneRenderer(self.model, size, size, [self.render_camera])
            return self._view_renderer
        raise ValueError(
            f"size={size}: images come at image_size={self.image_size} (or render_size={self.render_size} with "
            "render_mode='rgb_array'); make the env with the size you need"
        )

    def _observation(self) -> Any:
        if self.obs_mode == "state":
            return self._state()
        renderer = self._renderer_for(None)
        obs: dict[str, np.ndarray] = {}
        if self.obs_mode == "state+pixels":
            obs["state"] = self._state()
        obs.update(renderer.rgb(self.data, self.cameras))
        if self.depth:
            for cam, depth in renderer.depth(self.data, self.cameras).items():
                obs[f"{cam}_depth"] = depth[..., None]
        return obs

    def _state(self) -> np.ndarray:
        return np.clip(self._state_vector(), -STATE_BOUND, STATE_BOUND).astype(np.float32)

    def _info(self, st: TaskStatus) -> dict[str, Any]:
        return {
            "is_success": st.success,
            "phase": st.phase,
            "progress": st.progress,
            "grip_pos": self.grip_pos,
            "finger_gap": self.finger_gap,
            "goal_pos": self.goal.copy(),
            **self._task_info(),
        }
