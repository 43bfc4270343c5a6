"""`robo-reward gail ...` and the GAIL configs: they parse, and a tiny run goes end to end from a Minari dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from robo_reward.agents.experts import rollout
from robo_reward.agents.gail import config_from_mapping
from robo_reward.cli import main
from robo_reward.config import load_config
from robo_reward.datasets import save_minari

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "gail"


@pytest.fixture
def pendulum_dataset(tmp_path, monkeypatch) -> str:
    import gymnasium as gym

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    policy = lambda o: np.clip([2.0 * np.sign(o[2] * o[0] + 1e-3)], -2, 2).astype(np.float32)  # noqa: E731
    save_minari("pendulum/expert-v0", rollout("Pendulum-v1", policy, episodes=2, seed=0), env=gym.make("Pendulum-v1"),
                ref_min_score=-1200.0, ref_max_score=-150.0)
    return "pendulum/expert-v0"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_configs_validate(path):
    if path.stem.endswith("_core"):
        cfg = load_config(path)
        assert cfg.reward.terms[0]["name"] == "gail" and cfg.agent.relabel
    else:
        cfg = config_from_mapping(yaml.safe_load(path.read_text()))
        assert cfg.reward == "gail"


@pytest.mark.slow
def test_gail_train_command_writes_a_run_folder(pendulum_dataset, tmp_path):
    out = tmp_path / "run"
    code = main(["gail", "train", str(CONFIGS / "pendulum.yaml"), "--set", f"demos={pendulum_dataset}", "--set",
                 "total_steps=300", "--set",
                 "eval_every=300", "--set", "eval_episodes=1", "--set", "agent_kwargs={learning_starts: 200}",
                 "--out", str(out)])
    assert code == 0
    assert {"curve.csv", "discriminator.csv", "result.json", "agent.zip", "reward.pt"} <= {p.name for p in out.iterdir()}
    from robo_reward.checkpoint import load_reward

    reward = load_reward(out / "reward.pt")
    assert reward.num_updates == 6  # at 200, 220, ..., 300


@pytest.mark.slow
def test_core_train_runs_gail_from_the_dataset(pendulum_dataset, tmp_path):
    code = main(["train", str(CONFIGS / "pendulum_core.yaml"), "--set", f"reward.terms.0.expert={pendulum_dataset}",
                 "--set", "budget.total_timesteps=300", "--set",
                 "agent.kwargs.learning_starts=200", "--set", "eval.every=300", "--set", "eval.episodes=1",
                 "--set", "logging.progress=false", "--set", "logging.tensorboard=false", "--run-dir",
                 str(tmp_path / "core")])
    assert code == 0
    assert (tmp_path / "core" / "eval.csv").exists()


def test_unknown_config_key_is_named(pendulum_dataset, tmp_path):
    with pytest.raises(SystemExit, match="valid keys"):
        main(["gail", "train", "--env", "Pendulum-v1", "--demos", pendulum_dataset, "--set", "d_evry=5"])


@pytest.mark.slow
def test_gail_runs_from_the_task_suite_dataset(tmp_path):
    root = tmp_path / "demos"
    assert main(["collect-demos", "robo_reward/Reach-v0", "--episodes", "2", "--root", str(root)]) == 0
    out = tmp_path / "run"
    code = main(["gail", "train", str(CONFIGS / "reach.yaml"), "--set", f"demos={root / 'robo_reward/Reach/expert-v0'}",
                 "--set", "total_steps=250", "--set", "eval_every=250", "--set", "eval_episodes=1", "--set",
                 "agent_kwargs={learning_starts: 200}", "--out", str(out)])
    assert code == 0 and (out / "reward.pt").exists()
