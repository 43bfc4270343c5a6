"""GAIL runs are experiment configs: every configs/gail/ YAML loads, `robo-reward gail train` is `robo-reward train`
(same --set, same run folder), and a tiny run goes end to end from a Minari dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from robo_reward.agents.experts import rollout
from robo_reward.cli import main
from robo_reward.config import load_config
from robo_reward.datasets import save_minari

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "gail"
TINY = ["--set", "budget.total_timesteps=300", "--set", "agent.kwargs.learning_starts=200", "--set", "eval.every=300",
        "--set", "eval.episodes=1", "--set", "eval.n_envs=1", "--set", "logging.tensorboard=false", "--no-progress"]


@pytest.fixture
def pendulum_dataset(tmp_path, monkeypatch) -> str:
    import gymnasium as gym

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    policy = lambda o: np.clip([2.0 * np.sign(o[2] * o[0] + 1e-3)], -2, 2).astype(np.float32)  # noqa: E731
    save_minari("pendulum/expert-v0", rollout("Pendulum-v1", policy, episodes=2, seed=0), env=gym.make("Pendulum-v1"),
                ref_min_score=-1200.0, ref_max_score=-150.0)
    return "pendulum/expert-v0"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_configs_are_experiment_configs(path):
    cfg = load_config(path)
    assert cfg.agent.algo == "SAC"
    if cfg.reward.terms:
        assert cfg.reward.terms[0]["name"] == "gail" and cfg.agent.relabel and cfg.reward.extrinsic_weight == 0
        absorbing = any(w.entry_point.endswith("AbsorbingStateWrapper") for w in cfg.env.wrappers)
        assert absorbing == bool(cfg.reward.terms[0].get("absorbing", False))
    if "normalized_return" in cfg.eval.info_metrics:
        assert any(w.entry_point == "robo_reward.metrics:NormalizedReturn" for w in cfg.env.wrappers)


@pytest.mark.slow
def test_gail_train_is_core_train_with_its_run_folder(pendulum_dataset, tmp_path):
    runs = {}
    for command in (["gail", "train"], ["train"]):
        run_dir = tmp_path / command[0]
        code = main([*command, str(CONFIGS / "pendulum.yaml"), "--set", f"reward.terms.0.expert={pendulum_dataset}",
                     *TINY, "--run-dir", str(run_dir)])
        assert code == 0
        assert {"config.yaml", "checkpoints", "eval.csv", "report.md", "curves.png", "summary.json"} <= {
            p.name for p in run_dir.iterdir()}
        runs[command[0]] = pd.read_csv(run_dir / "eval.csv")
    pd.testing.assert_frame_equal(runs["gail"].drop(columns="wall_time"), runs["train"].drop(columns="wall_time"))
    ev = runs["gail"]
    assert list(ev["timestep"]) == [0, 300]
    # the metric wrapper scores the env's own return: (R - low) / (high - low) with the config's bounds
    np.testing.assert_allclose(ev["info/normalized_return"], (ev["return_mean"] + 1229.6) / (-146.3 + 1229.6))
    from robo_reward.checkpoint import load_reward

    reward = load_reward(tmp_path / "gail" / "checkpoints" / "step_300" / "reward.pt")
    assert reward.num_updates == 300 // 20


def test_gail_train_config_mistake_is_named(tmp_path, capsys):
    code = main(["gail", "train", str(CONFIGS / "pendulum.yaml"), "--set", "budget.total_timestep=5",
                 "--run-dir", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert "total_timestep" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_gail_runs_from_the_task_suite_dataset(tmp_path):
    root = tmp_path / "demos"
    assert main(["collect-demos", "robo_reward/Reach-v0", "--episodes", "2", "--root", str(root)]) == 0
    run_dir = tmp_path / "run"
    code = main(["gail", "train", str(CONFIGS / "reach.yaml"), "--set",
                 f"reward.terms.0.expert={root / 'robo_reward/Reach/expert-v0'}", *TINY, "--run-dir", str(run_dir)])
    assert code == 0 and (run_dir / "checkpoints" / "step_300" / "reward.pt").exists()
    assert "success_rate" in pd.read_csv(run_dir / "eval.csv")
