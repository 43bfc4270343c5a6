"""Regression: training a torch agent after a MuJoCo EGL context exists must not crash the process."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import robo_reward, gymnasium as gym
env = gym.make("robo_reward/Reach-v0", obs_mode="pixels", image_size=32)
env.reset(seed=0)
env.step(env.action_space.sample())
import torch
torch.optim.Adam([torch.zeros(1, requires_grad=True)])
env.close()
print("ok")
"""


def test_torch_optimizer_after_egl_rendering() -> None:
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300,
                         env={"MUJOCO_GL": "egl", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), (out.returncode, out.stderr[-2000:])
