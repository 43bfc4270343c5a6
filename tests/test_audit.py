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
    assert set(table["behaviour"]) == {"random", "expert(noise=0)", "expert(noise=0.5)", "all"}
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
    assert any((p / "reward.pt").exists() for p in (run / "checkpoints").iterdir())
    other = tmp_path / "other_terms"  # other terms on the run's policies: its saved reward state does not fit them
    assert main(["audit", str(run), "--set", "reward.terms=[{name: info_value, key: progress, label: alone}]",
                 "--out", str(other)]) == 0
    table = pd.read_csv(other / "audit.csv")
    alone = table[table["term"] == "alone"]
    assert "oracle" not in set(table["term"]) and (alone["spearman"].dropna() > 0.999).all()
    assert alone["behaviour"].str.startswith("policy@").any()


def test_correlations_handle_constant_terms() -> None:
    frame = pd.DataFrame({"progress": [0.0, 0.5, 1.0, 0.2], "reward/flat": [1.0] * 4,
                          "reward/up": [0.0, 2.0, 3.0, 1.0]})
    rows = {r["term"]: r for r in correlations(frame)}
    assert np.isnan(rows["flat"]["spearman"]) and rows["up"]["spearman"] == pytest.approx(1.0)
    assert rows["flat"]["bias"] == pytest.approx(1.0 - 0.425)


def test_episode_spearman_ranks_the_episode_sums() -> None:
    frame = pd.DataFrame({"episode": [0, 0, 1, 1, 2, 2], "progress": [0.1, 0.2, 0.5, 0.6, 0.3, 0.3],
                          "reward/end": [0.0, 3.0, 0.0, 9.0, 0.0, 5.0],  # paid at episode end only
                          "reward/rev": [0.0, -3.0, 0.0, -9.0, 0.0, -5.0]})
    rows = {r["term"]: r for r in correlations(frame)}
    assert rows["end"]["episode_spearman"] == pytest.approx(1.0)
    assert rows["rev"]["episode_spearman"] == pytest.approx(-1.0)
    assert rows["end"]["spearman"] < 1.0  # per step, the episode-end reward ranks steps only loosely


def test_audit_target_names_the_info_key_to_correlate_with(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(tmp_path, target="finger_gap", behaviours=["random"])
    out = tmp_path / "audit"
    assert main(["audit", str(path), "--out", str(out)]) == 0
    table = pd.read_csv(out / "audit.csv")
    assert _by(table, "random", "oracle")["spearman"] < 0.9  # progress is not the finger gap
    assert "`finger_gap`" in (out / "audit.md").read_text()
    assert main(["audit", str(path), "--set", "reward.terms=[{name: info_value, key: finger_gap, label: gap}]",
                 "--out", str(tmp_path / "gap")]) == 0
    gap = pd.read_csv(tmp_path / "gap" / "audit.csv")
    assert _by(gap, "random", "gap")["spearman"] == pytest.approx(1.0)
    assert _by(gap, "random", "gap")["episode_spearman"] == pytest.approx(1.0)
    assert main(["audit", str(path), "--set", "audit.target=no_such_key", "--out", str(tmp_path / "b")]) == 2
    assert "info['no_such_key']" in capsys.readouterr().err


def test_audit_errors_name_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(tmp_path, expert=None)
    assert main(["audit", str(path), "--set", "audit.behaviours=[expert]", "--out", str(tmp_path / "a")]) == 2
    assert "audit.expert" in capsys.readouterr().err
    assert main(["audit", str(path), "--set", "audit.behaviours=[dance]"]) == 2
    assert "audit.behaviours" in capsys.readouterr().err
