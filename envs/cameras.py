"""Pinhole camera models of MuJoCo cameras, and the offscreen renderer the tabletop envs share.

Conventions (those of OpenCV, so keypoint and VLM code can use them unchanged):

- camera frame: x right, y down, z forward (MuJoCo's own camera frame is x right, y up, looking along -z);
- pixel ``(u, v)``: column ``u`` and row ``v`` of the image array, with integer values at pixel centres, so
  ``image[round(v), round(u)]`` is the pixel a point projects into;
- depth: distance along the optical axis (z in the camera frame), in metres, as MuJoCo's depth buffer gives it.

Headless rendering uses EGL (``MUJOCO_GL=egl``, set by ``robo_reward.envs`` when unset before MuJoCo loads;
if MuJoCo was imported first with the variable unset and there is no display, the first renderer switches
MuJoCo's offscreen backend to EGL); ``MUJOCO_GL=osmesa`` needs Debian's ``libosmesa6``. A :class:`SceneRenderer` holds one GL context and renders
every camera of an observation through it (cheaper than one context per camera: no context switches); close it
explicitly (the envs do in ``close()``), since an EGL context freed at interpreter exit prints EGL errors.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import mujoco
import numpy as np

_MJ_TO_CV = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class CameraModel:
    """Intrinsics and extrinsics of one camera at one simulator state, with projection both ways.

    >>> K = np.array([[50.0, 0, 31.5], [0, 50.0, 31.5], [0, 0, 1]])
    >>> cam = CameraModel("test", 64, 64, K, np.eye(4))
    >>> uv, depth = cam.project(np.array([[0.1, -0.2, 2.0]]))
    >>> uv.round(3).tolist(), depth.tolist()
    ([[34.0, 26.5]], [2.0])
    >>> cam.unproject(uv, depth).round(6).tolist()
    [[0.1, -0.2, 2.0]]
    """

    name: str
    width: int
    height: int
    intrinsics: np.ndarray
    """3x3 matrix K: ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``."""
    world_to_camera: np.ndarray
    """4x4 homogeneous transform from world to the (OpenCV) camera frame."""

    @property
    def camera_to_world(self) -> np.ndarray:
        """4x4 transform from the camera frame to the world."""
        return np.linalg.inv(self.world_to_camera)

    @property
    def position(self) -> np.ndarray:
        """Camera centre in world coordinates."""
        return self.camera_to_world[:3, 3]

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points ``(N, 3)`` to pixels ``(N, 2)`` and depths ``(N,)``; points behind the camera get NaN pixels."""
        pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
        cam = pts @ self.world_to_camera[:3, :3].T + self.world_to_camera[:3, 3]
        depth = cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uvw = cam @ self.intrinsics.T
            uv = uvw[:, :2] / uvw[:, 2:3]
        uv[depth <= 0] = np.nan
        return uv, depth

    def unproject(self, uv: np.ndarray, depth: np.ndarray | float) -> np.ndarray:
        """Pixels ``(N, 2)`` with depths (along the optical axis) back to world points ``(N, 3)``."""
        uv = np.atleast_2d(np.asarray(uv, dtype=np.float64))
        depth = np.broadcast_to(np.asarray(depth, dtype=np.float64), (len(uv),))
        rays = self._rays_camera(uv)
        cam = rays * depth[:, None]
        c2w = self.camera_to_world
        return cam @ c2w[:3, :3].T + c2w[:3, 3]

    def unproject_to_plane(self, uv: np.ndarray, z: float) -> np.ndarray:
        """Lift pixels onto the horizontal plane at height ``z`` (e.g. the table top, 0), as world points."""
        uv = np.atleast_2d(np.asarray(uv, dtype=np.float64))
        c2w = self.camera_to_world
        dirs = self._rays_camera(uv) @ c2w[:3, :3].T
        origin = c2w[:3, 3]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (z - origin[2]) / dirs[:, 2]
        t[t <= 0] = np.nan
        return origin + dirs * t[:, None]

    def _rays_camera(self, uv: np.ndarray) -> np.ndarray:
        fx, fy = self.intrinsics[0, 0], self.intrinsics[1, 1]
        cx, cy = self.intrinsics[0, 2], self.intrinsics[1, 2]
        return np.stack([(uv[:, 0] - cx) / fx, (uv[:, 1] - cy) / fy, np.ones(len(uv))], axis=1)


def intrinsics(model: mujoco.MjModel, camera: str, width: int, height: int) -> np.ndarray:
    """The 3x3 intrinsic matrix of a MuJoCo perspective camera rendered at ``width`` x ``height``."""
    cam_id = _camera_id(model, camera)
    fovy = np.deg2rad(model.cam_fovy[cam_id])
    f = 0.5 * height / np.tan(0.5 * fovy)
    return np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])


def camera_model(
    model: mujoco.MjModel, data: mujoco.MjData, camera: str, width: int, height: int
) -> CameraModel:
    """The camera as it is in ``data`` (kinematics must be current, e.g. after ``mj_forward``)."""
    cam_id = _camera_id(model, camera)
    rot = data.cam_xmat[cam_id].reshape(3, 3) @ _MJ_TO_CV
    w2c = np.eye(4)
    w2c[:3, :3] = rot.T
    w2c[:3, 3] = -rot.T @ data.cam_xpos[cam_id]
    return CameraModel(camera, width, height, intrinsics(model, camera, width, height), w2c)


def _camera_id(model: mujoco.MjModel, camera: str) -> int:
    cam_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
    if cam_id < 0:
        names = [model.camera(i).name for i in range(model.ncam)]
        raise ValueError(f"unknown camera {camera!r}; this model has {names}")
    return cam_id


def _ensure_headless_backend() -> None:
    """Switch MuJoCo to EGL if it was imported with ``MUJOCO_GL`` unset on a machine without a display.

    MuJoCo picks its GL backend once, when ``mujoco`` is imported; unset, that is GLFW, which needs a display.
    Re-importing its ``gl_context`` module with ``MUJOCO_GL=egl`` makes new renderers use EGL. The module is
    ``mujoco.rendering.classic.gl_context`` in MuJoCo 4 and ``mujoco.gl_context`` before.
    """
    try:
        from mujoco.rendering.classic import gl_context
    except ImportError:
        from mujoco import gl_context  # type: ignore[no-redef]

    if getattr(gl_context, "_MUJOCO_GL", None) == "" and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "egl"
        importlib.reload(gl_context)


def _load_triton_before_mesa() -> None:
    """Import triton (if installed) before the first GL context, so it can still load afterwards.

    Mesa's software renderer (llvmpipe) puts its libLLVM into the process's global symbol namespace; triton,
    which torch imports as soon as an optimizer is built (through ``torch._dynamo``), carries its own LLVM and
    dies with a segmentation fault when it loads after Mesa's. Loaded first, both work.
    """
    if "triton" in sys.modules or importlib.util.find_spec("triton") is None:
        return
    try:
        importlib.import_module("triton")
    except Exception:  # a broken triton must not stop rendering; torch then fails on its own terms
        return


class SceneRenderer:
    """RGB and depth images of several cameras at one size, through one reused GL context.

    Shadows, reflections and the skybox are switched off (flat-colour scene, software rendering).
    """

    def __init__(self, model: mujoco.MjModel, width: int, height: int, cameras: Sequence[str]) -> None:
        if width > model.vis.global_.offwidth or height > model.vis.global_.offheight:
            raise ValueError(
                f"image {width}x{height} exceeds the offscreen buffer "
                f"{model.vis.global_.offwidth}x{model.vis.global_.offheight}; build the scene with a larger "
                "SceneConfig.buffer_size"
            )
        for cam in cameras:
            _camera_id(model, cam)
        _ensure_headless_backend()
        _load_triton_before_mesa()
        self.model = model
        self.width, self.height = width, height
        self.cameras = tuple(cameras)
        self._renderer: mujoco.Renderer | None = mujoco.Renderer(model, height, width, max_geom=64)
        self._depth_mode = False
        flags = self._renderer.scene.flags
        for flag in (
            mujoco.mjtRndFlag.mjRND_SHADOW,
            mujoco.mjtRndFlag.mjRND_REFLECTION,
            mujoco.mjtRndFlag.mjRND_SKYBOX,
            mujoco.mjtRndFlag.mjRND_HAZE,
        ):
            flags[flag] = 0
        self._finalizer = weakref.finalize(self, self._renderer.close)

    def rgb(self, data: mujoco.MjData, cameras: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """``{camera: uint8 (H, W, 3)}`` for the given cameras (default: all of this renderer's)."""
        return {cam: self._render(data, cam, depth=False) for cam in (cameras or self.cameras)}

    def depth(self, data: mujoco.MjData, cameras: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """``{camera: float32 (H, W)}`` depth along the optical axis, in metres."""
        return {cam: self._render(data, cam, depth=True) for cam in (cameras or self.cameras)}

    def _render(self, data: mujoco.MjData, camera: str, depth: bool) -> np.ndarray:
        if self._renderer is None:
            raise RuntimeError("SceneRenderer was closed; create a new one (or a new env)")
        if depth != self._depth_mode:
            if depth:
                self._renderer.enable_depth_rendering()
            else:
                self._renderer.disable_depth_rendering()
            self._depth_mode = depth
        self._renderer.update_scene(data, camera)
        return self._renderer.render()

    def close(self) -> None:
        """Free the GL context (idempotent)."""
        if self._renderer is not None:
            self._finalizer()
            self._renderer = None
