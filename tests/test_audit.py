"""``robo-reward audit`` on rewards whose correlation with true progress is known: oracle 1, negated -1, noise ~0."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from robo_reward.audit import correlations
from robo_reward.cli import main

TERMS = [{"name": "info_value", "key": "progress", "label": "oracle"},
         {"name": "info_value", "key": "progress", "scale": -1.0, "label": "negated"},
         {"name": "info_value", "key": "progress", "scale": 0.0, "noise": 1.0, "label": "noise"}]


def _config(tmp_path: Path, **audit) -> Path:
    import yaml

    cfg = {"name": "audit_toy", "env": {"id": "robo_reward/Reach-v0", "n_envs": 2},
           "reward": {"extrinsic_weight": 0.0, "terms": TERMS},
           "agent": {"algo": "PPO", "kwargs": {"n_steps": 64, "batch_size": 64, "n_epochs": 1}},
           "budget": {"total_timesteps": 256, "checkpoint_every": 128},
           "eval": {"every": 10_000, "episodes": 1}, "logging": {"tensorboard": False, "progress": False},
           "audit": {"expert": "robo_reward.envs.experts:make_expert", "episodes": 4, "expert_noise": [0.0, 0.5],
                     **audit}, "output_dir": str(tmp_path / "runs")}
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _by(table: pd.DataFrame, behaviour: str, term: str) -> pd.Series:
    return table[(table["behaviour"] == behaviour) & (table["term"] == term)].iloc[0]


def test_audit_recovers_known_correlations(tmp_path: Path) -> None:
    path = _config(tmp_path)
    out = tmp_path / "audit"
    assert main(["audit", str(path), "--set", "audit.behaviours=[random, expert]", "--out", str(out)]) == 0
    table = pd.read_csv(out / "audit.csv")
    assert set(table["behaviour"]) == {"random", "expert(noise=0)", "expert(noise=0.5)"}
    for behaviour in table["behaviour"].unique():
        assert _by(table, behaviour, "oracle")["spearman"] == pytest.approx(1.0)
        assert _by(table, behaviour, "negated")["spearman"] == pytest.approx(-1.0)
        assert abs(_by(table, behaviour, "noise")["spearman"]) < 0.35
        assert _by(table, behaviour, "oracle")["bias"] == pytest.approx(0.0, abs=1e-9)
    expert, random = _by(table, "expert(noise=0)", "oracle"), _by(table, "random", "oracle")
    assert expert["success"] == 1.0 and expert["progress_mean"] > random["progress_mean"]
    for f in ("audit.md", "audit.png", "audit_expert.png"):
        assert (out / f).exists(), f


def test_audit_of_a_run_folder_adds_the_policy_at_each_checkpoint(tmp_path: Path) -> None:
    path = _config(tmp_path, behaviours=["random", "policy"], episodes=2)
    run = tmp_path / "run"
    assert main(["train", str(path), "--run-dir", str(run), "--no-progress"]) == 0
    assert main(["audit", str(run)]) == 0
    table = pd.read_csv(run / "audit" / "audit.csv")
    policies = sorted(b for b in table["behaviour"].unique() if b.startswith("policy@"))
    assert policies, table["behaviour"].unique()
    oracle = table[table["term"] == "oracle"]
    assert (oracle["bias"].abs() < 1e-9).all()
    assert oracle["spearman"].dropna().tolist() == pytest.approx([1.0] * oracle["spearman"].notna().sum())
    assert (table[table["behaviour"] == "random"]["term"] == "oracle").any()


def test_correlations_handle_constant_terms() -> None:
    frame = pd.DataFrame({"progress": [0.0, 0.5, 1.0, 0.2], "reward/flat": [1.0] * 4,
                          "reward/up": [0.0, 2.0, 3.0, 1.0]})
    rows = {r["term"]: r for r in correlations(frame)}
    assert np.isnan(rows["flat"]["spearman"]) and rows["up"]["spearman"] == pytest.approx(1.0)
    assert rows["flat"]["bias"] == pytest.approx(1.0 - 0.425)


def test_audit_errors_name_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(tmp_path, expert=None)
    assert main(["audit", str(path), "--set", "audit.behaviours=[expert]", "--out", str(tmp_path / "a")]) == 2
    assert "audit.expert" in capsys.readouterr().err
    assert main(["audit", str(path), "--set", "audit.behaviours=[dance]"]) == 2
    assert "audit.behaviours" in capsys.readouterr().err
