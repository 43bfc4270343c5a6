"""Shared fixtures: single-threaded torch, a seeded generator, headless MuJoCo rendering."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _single_thread_torch() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
