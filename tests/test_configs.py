"""Every config in configs/ validates against its schema and names registered envs and rewards."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import pytest
import yaml

import robo_reward  # noqa: F401  (registers the package's envs)
from robo_reward.config import load_config
from robo_reward.runner import build_design

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if "robots" not in p.parts)


def _artefacts(node: object) -> list[str]:
    """Paths under runs/ a config reads (made by a pipeline such as ``robo-reward dopamine-grm``)."""
    if isinstance(node, dict):
        return [p for v in node.values() for p in _artefacts(v)]
    if isinstance(node, list):
        return [p for v in node for p in _artefacts(v)]
    return [node] if isinstance(node, str) and node.startswith("runs/") else []


@pytest.mark.parametrize("path", CONFIGS, ids=[str(p.relative_to(ROOT / "configs")) for p in CONFIGS])
def test_config_validates(path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    if "train_variants" in data:
        from robo_reward.agents.dopamine_grm import GRMPipelineConfig

        cfg = GRMPipelineConfig.model_validate(data)
        gym.spec(cfg.env_id)
        return
    if "demos" in data and "env_id" in data:  # `robo-reward gail train` configs (robo_reward.agents.gail)
        from robo_reward.agents.gail import config_from_mapping

        gym.spec(config_from_mapping(data).env_id)
        return
    cfg = load_config(path)
    gym.spec(cfg.env.id)
    missing = [p for p in _artefacts(data.get("reward", {})) if not (ROOT / p).exists()]
    if not missing:
        build_design(cfg.reward)
