"""Camera models: known 3D points project to where they are rendered, and pixels lift back to 3D."""

from __future__ import annotations

import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import robo_reward  # noqa: F401  (registers the tasks)

SIZE = 128
GOAL = np.array([0.06, -0.05, 0.12])
GOAL_RADIUS = 0.02


@pytest.fixture
def reach():
    env = gym.make(
        "robo_reward/Reach-v0", obs_mode="pixels", cameras=("front", "side", "top"), image_size=SIZE
    )
    env.reset(seed=0, options={"grip_pos": (-0.15, 0.15, 0.25), "goal_pos": GOAL})
    yield env.unwrapped
    env.close()


def _green_mask(image: np.ndarray) -> np.ndarray:
    rgb = image.astype(int)
    return (rgb[..., 1] > rgb[..., 0] + 40) & (rgb[..., 1] > rgb[..., 2] + 40)


@pytest.mark.parametrize("camera", ["front", "side", "top"])
def test_goal_marker_renders_where_its_centre_projects(reach, camera: str) -> None:
    image = reach.render_rgb(camera)
    mask = _green_mask(image)
    assert mask.sum() > 10, "goal marker not visible"
    rows, cols = np.nonzero(mask)
    cam = reach.camera_model(camera)
    uv, depth = cam.project(GOAL)
    assert depth[0] > 0
    # Sub-pixel: a half-pixel slip in the principal point (pixel centres at integers) would fail this.
    np.testing.assert_allclose(uv[0], (cols.mean(), rows.mean()), atol=0.3)


@pytest.mark.parametrize("camera", ["front", "side", "top"])
def test_depth_pixel_lifts_back_onto_the_marker(reach, camera: str) -> None:
    cam = reach.camera_model(camera)
    uv, _ = cam.project(GOAL)
    u, v = uv[0]
    depth = reach.render_depth(camera)
    point = cam.unproject(np.array([[u, v]]), depth[round(v), round(u)])[0]
    to_centre = np.linalg.norm(point - GOAL)
    assert GOAL_RADIUS - 0.006 < to_centre < GOAL_RADIUS + 0.004, (
        "lifted point should lie on the sphere's surface"
    )
    assert np.linalg.norm(point - cam.position) < np.linalg.norm(GOAL - cam.position)


def test_table_pixels_lift_to_the_table_plane(reach) -> None:
    cam = reach.camera_model("front")
    depth = reach.render_depth("front")
    image = reach.render_rgb("front").astype(int)
    table = (np.abs(image - image[SIZE - 4, SIZE // 2]).sum(-1) < 40) & (depth < 3.0)
    v, u = np.nonzero(table)
    assert len(u) > SIZE * SIZE // 4
    points = cam.unproject(np.stack([u, v], 1).astype(float), depth[v, u])
    assert np.abs(points[:, 2]).max() < 3e-3
    on_plane = cam.unproject_to_plane(np.stack([u, v], 1).astype(float), 0.0)
    np.testing.assert_allclose(on_plane, points, atol=5e-3)


def test_project_unproject_round_trip_is_exact(reach) -> None:
    pts = np.random.default_rng(0).uniform((-0.2, -0.2, 0.0), (0.2, 0.2, 0.3), size=(50, 3))
    for name in ("front", "side", "top", "wrist"):
        cam = reach.camera_model(name)
        uv, depth = cam.project(pts)
        visible = depth > 0
        np.testing.assert_allclose(cam.unproject(uv[visible], depth[visible]), pts[visible], atol=1e-9)


def test_intrinsics_follow_the_image_size(reach) -> None:
    small, large = reach.camera_model("front", size=SIZE), reach.camera_model("front", size=SIZE * 2)
    assert large.intrinsics[0, 0] == pytest.approx(2 * small.intrinsics[0, 0])
    assert small.intrinsics[0, 2] == pytest.approx((SIZE - 1) / 2)
    fovy = np.deg2rad(reach.model.cam_fovy[reach.model.camera("front").id])
    assert small.intrinsics[1, 1] == pytest.approx(SIZE / 2 / np.tan(fovy / 2))


def test_wrist_camera_moves_with_the_hand() -> None:
    env = gym.make("robo_reward/Push-v0")
    try:
        env.reset(seed=0, options={"grip_pos": (0.0, 0.0, 0.15)})
        base = env.unwrapped
        first = base.camera_model("wrist")
        uv_first, _ = first.project(base.grip_pos)
        for _ in range(10):
            env.step(np.array([1.0, -1.0, 0.0, 1.0], dtype=np.float32))
        second = base.camera_model("wrist")
        assert np.linalg.norm(second.position - first.position) > 0.1
        uv_second, _ = second.project(base.grip_pos)
        np.testing.assert_allclose(uv_second, uv_first, atol=1e-6)
        assert np.abs(base.camera_model("front").position - (0.6, 0.0, 0.42)).max() < 1e-9
    finally:
        env.close()


def test_renders_headless_even_if_mujoco_was_imported_first(tmp_path) -> None:
    script = (
        "import mujoco, gymnasium as gym, robo_reward\n"
        "env = gym.make('robo_reward/Reach-v0', obs_mode='pixels')\n"
        "obs, _ = env.reset(seed=0)\n"
        "assert obs['front'].std() > 10\n"
        "env.close()\n"
        "print('ok')\n"
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "DISPLAY", "PYOPENGL_PLATFORM")}
    out = subprocess.run(
        [sys.executable, "-c", script], env=clean, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    assert "EGLError" not in out.stderr and "Traceback" not in out.stderr


def test_torch_optimizers_still_load_after_rendering() -> None:
    """Mesa's LLVM must not break triton (imported by torch.optim): this used to be a segfault."""
    script = (
        "import gymnasium as gym, robo_reward\n"
        "env = gym.make('robo_reward/Reach-v0', obs_mode='pixels')\n"
        "env.reset(seed=0)\n"
        "env.close()\n"
        "import torch\n"
        "torch.optim.Adam([torch.zeros(2, requires_grad=True)])\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", (out.returncode, out.stderr[-2000:])
