"""The CLI: config validation, seeded determinism, resume after a kill, bench tables."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from robo_reward.cli import main
from robo_reward.config import ConfigError, load_config

CONFIG = {
    "name": "pend",
    "env": {"id": "Pendulum-v1", "n_envs": 2},
    "reward": {"terms": [{"name": "goal_distance", "delta": [2], "weight": 0.1}]},
    "agent": {"algo": "PPO", "kwargs": {"n_steps": 64, "batch_size": 64, "n_epochs": 2}},
    "budget": {"total_timesteps": 768, "checkpoint_every": 256},
    "eval": {"every": 256, "episodes": 2, "metric": "return", "threshold": -1200},
    "logging": {"progress": False},
}


def write_config(tmp_path: Path, **changes) -> Path:
    cfg = {**CONFIG, **changes}
    path = tmp_path / f"{cfg['name']}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_unknown_key_and_bad_value_are_named(tmp_path, capsys) -> None:
    bad = write_config(tmp_path, agent={"algo": "PPO", "kwarg": {}})
    assert main(["train", str(bad), "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'agent.kwarg'" in err and "did you mean 'kwargs'" in err and "valid keys here" in err
    with pytest.raises(ConfigError, match=r"budget.total_timesteps: Input should be greater than or equal to 1"):
        load_config(write_config(tmp_path), ["budget.total_timesteps=0"])
    assert load_config(write_config(tmp_path), ["agent.kwargs.gamma=0.95"]).agent.kwargs["gamma"] == 0.95


def test_two_seeded_runs_give_identical_metrics(tmp_path) -> None:
    cfg = write_config(tmp_path)
    for name in ("a", "b"):
        assert main(["train", str(cfg), "--run-dir", str(tmp_path / name), "--no-progress"]) == 0
    for csv in ("eval.csv", "episodes.csv"):
        a = pd.read_csv(tmp_path / "a" / csv).drop(columns=["wall_time"], errors="ignore")
        b = pd.read_csv(tmp_path / "b" / csv).drop(columns=["wall_time"], errors="ignore")
        pd.testing.assert_frame_equal(a, b)
    run = tmp_path / "a"
    for f in ("config.yaml", "report.md", "curves.png", "summary.json", "checkpoints/latest"):
        assert (run / f).exists(), f
    latest = (run / "checkpoints" / (run / "checkpoints" / "latest").read_text())
    assert {p.name for p in latest.iterdir()} >= {"agent.zip", "reward.pt", "state.json"}
    assert list((run / "tb").glob("events.out.tfevents.*"))


def test_resume_after_kill_continues_from_last_checkpoint(tmp_path) -> None:
    cfg = write_config(tmp_path, budget={"total_timesteps": 20_000, "checkpoint_every": 256})
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "robo_reward.cli", "train", str(cfg), "--run-dir", str(run_dir),
                             "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    latest = run_dir / "checkpoints" / "latest"
    deadline = time.time() + 120
    while time.time() < deadline and not (latest.exists() and latest.read_text().strip() != "step_256"):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert latest.exists(), proc.stderr.read().decode() if proc.stderr else "no checkpoint written"
    checkpoint_step = int(latest.read_text().strip().split("_")[1])
    assert 0 < checkpoint_step < 20_000
    # shorten the remaining budget so the test stays quick, then resume
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    saved["budget"]["total_timesteps"] = checkpoint_step + 512
    (run_dir / "config.yaml").write_text(yaml.safe_dump(saved))
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 0
    ev = pd.read_csv(run_dir / "eval.csv")
    assert ev["timestep"].is_monotonic_increasing and ev["timestep"].is_unique
    assert ev["timestep"].iloc[-1] == checkpoint_step + 512
    assert ev["timestep"].iloc[0] == 0
    ep = pd.read_csv(run_dir / "episodes.csv")
    assert ep["timestep"].is_monotonic_increasing


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_a_killed_bench_takes_its_workers_with_it(tmp_path) -> None:
    cfg = write_config(tmp_path, budget={"total_timesteps": 200_000, "checkpoint_every": 100_000})
    out = tmp_path / "bench"
    proc = subprocess.Popen([sys.executable, "-m", "robo_reward.cli", "bench", str(cfg), "--seeds", "2", "--jobs", "1",
                             "--out", str(out), "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def children() -> list[int]:
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == proc.pid:
                found.append(int(stat.parent.name))
        return found

    deadline = time.time() + 120
    while time.time() < deadline and not (out / "runs" / "env_reward" / "seed0" / "config.yaml").exists():
        time.sleep(0.1)
    workers = [pid for pid in children() if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text(errors="ignore")]
    assert workers, "the bench started no worker process"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 30
    while time.time() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
        time.sleep(0.1)
    alive = [pid for pid in workers if Path(f"/proc/{pid}").exists()
             and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"workers {alive} outlived the killed bench"


def test_bench_adds_env_reward_baseline_and_writes_table(tmp_path) -> None:
    cfg = write_config(tmp_path, budget={"total_timesteps": 256, "checkpoint_every": 256},
                       eval={"every": 128, "episodes": 1, "metric": "return", "threshold": -1500})
    out = tmp_path / "bench"
    assert main(["bench", str(cfg), "--seeds", "2", "--jobs", "2", "--out", str(out), "--no-progress"]) == 0
    table = pd.read_csv(out / "summary.csv")
    assert set(table["design"]) == {"env_reward", "pend"}
    assert (table["seeds"] == 2).all()
    assert {"final_return_iqm", "final_return_ci_low", "steps_to_threshold_iqm", "wall_time_s"} <= set(table.columns)
    assert (out / "curves.png").exists() and "| design |" in (out / "summary.md").read_text()
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 4
    # a second call finds every run finished and only rewrites the tables (no run folder is touched)
    finished = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*") if p.is_file()}
    assert len([p for p in finished if p.name == "summary.json"]) == 4
    assert main(["bench", str(cfg), "--seeds", "2", "--out", str(out), "--no-progress"]) == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*") if p.is_file()} == finished


def test_listing_commands(capsys) -> None:
    assert main(["rewards"]) == 0
    assert "potential_shaping" in capsys.readouterr().out
    assert main(["envs"]) == 0


@pytest.mark.slow
def test_wandb_offline_files_when_enabled(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = write_config(tmp_path, budget={"total_timesteps": 256, "checkpoint_every": 256},
                       logging={"progress": False, "wandb": True, "tensorboard": False})
    assert main(["train", str(cfg), "--run-dir", str(tmp_path / "w"), "--no-progress"]) == 0
    runs = list((tmp_path / "w" / "wandb").glob("offline-run-*"))
    assert runs and any(runs[0].glob("*.wandb"))


def test_bench_runs_seed_major_and_skips_undefined_baseline_level(tmp_path) -> None:
    from robo_reward.bench import _defined_level, bench_plan
    from robo_reward.config import load_config

    cfg = load_config(write_config(tmp_path))
    a, b = cfg.model_copy(update={"name": "a", "seeds": [0, 1, 2]}), cfg.model_copy(update={"name": "b", "seeds": [5]})
    plan = bench_plan([a, b], tmp_path)
    assert [(d.name, s) for d, s, _ in plan] == [("a", 0), ("b", 5), ("a", 1), ("a", 2)]
    assert plan[1][2] == tmp_path / "runs" / "b" / "seed5"
    assert not _defined_level(0.0, "final_success") and _defined_level(0.1, "final_success")
    assert _defined_level(-300.0, "final_return") and not _defined_level(float("nan"), "final_return")


def test_bench_again_skips_a_ppo_run_that_ended_past_its_budget_on_a_rollout_boundary(tmp_path) -> None:
    """PPO stops after the rollout that crosses the budget (here 200 -> 256 with 2 x 64-step rollouts); the same
    bench started again finds the run finished and neither retrains nor refuses it."""
    cfg = write_config(tmp_path, budget={"total_timesteps": 200, "checkpoint_every": 128},
                       eval={"every": 128, "episodes": 1, "metric": "return", "threshold": -1200})
    out = tmp_path / "bench"
    args = ["bench", str(cfg), "--seeds", "1", "--jobs", "1", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    run = out / "runs" / "pend" / "seed0"
    assert json.loads((run / "summary.json").read_text())["timesteps"] == 256
    first = (run / "eval.csv").read_text()
    assert main(args) == 0
    assert (run / "eval.csv").read_text() == first


def test_bench_with_a_larger_budget_extends_finished_runs_and_refuses_a_smaller_one(tmp_path, capsys) -> None:
    import pickle

    sac = {"algo": "SAC", "kwargs": {"learning_starts": 32, "batch_size": 32, "buffer_size": 1000,
                                     "policy_kwargs": {"net_arch": [16]}}}
    cfg = write_config(tmp_path, agent=sac, budget={"total_timesteps": 128, "checkpoint_every": 128},
                       eval={"every": 64, "episodes": 1, "metric": "return", "threshold": -1500})
    out = tmp_path / "bench"
    args = ["bench", str(cfg), "--seeds", "1", "--jobs", "1", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    run = out / "runs" / "pend" / "seed0"
    first = pd.read_csv(run / "eval.csv")
    assert first["timestep"].max() == 128
    # SB3 writes use_sde into the policy_kwargs it is given; the run's config keeps what the user wrote
    assert yaml.safe_load((run / "config.yaml").read_text())["agent"]["kwargs"]["policy_kwargs"] == {"net_arch": [16]}

    assert main([*args, "--set", "budget.total_timesteps=256"]) == 0
    results = pd.read_csv(out / "results.csv")
    assert set(results["timesteps"]) == {256} and len(results) == 2
    extended = pd.read_csv(run / "eval.csv")
    assert extended["timestep"].tolist() == [0, 64, 128, 192, 256]
    pd.testing.assert_frame_equal(extended.iloc[:3], first)  # continued, not trained again
    with open(run / "checkpoints" / "step_256" / "replay_buffer.pkl", "rb") as f:
        assert pickle.load(f).pos == 128  # 256 steps over 2 envs: the buffer kept its first 128 steps
    assert yaml.safe_load((run / "config.yaml").read_text())["budget"]["total_timesteps"] == 256

    designs = (out / "designs.json").read_text()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "was run to 256 env steps" in err and "budget.total_timesteps=256" in err and "Traceback" not in err
    assert (out / "designs.json").read_text() == designs  # a refused call leaves the bench folder as it was
