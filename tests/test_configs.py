"""Every experiment config in configs/ validates, names registered envs and rewards, and builds its reward."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import pytest

import robo_reward  # noqa: F401  (registers the package's envs)
from robo_reward.config import load_config
from robo_reward.runner import build_design

CONFIGS = sorted(p for p in (Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml")
                 if "robots" not in p.parts)


@pytest.mark.parametrize("path", CONFIGS, ids=[str(p.relative_to(p.parents[1])) for p in CONFIGS])
def test_config_validates(path: Path) -> None:
    cfg = load_config(path)
    gym.spec(cfg.env.id)
    build_design(cfg.reward)
