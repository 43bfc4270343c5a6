"""eval.info_metrics: info[key] at each eval episode's end -> eval.csv ``info/<key>``, summary.json
``final_info/<key>``, and the bench table (IQM with 95% CI)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

from robo_reward.bench import run_bench
from robo_reward.config import load_config
from robo_reward.runner import train

EPISODE = 5


class _Counting(gym.Env):
    """Episodes of 5 steps; the last step's info has ``episode_index`` (1, 2, ...) and every step's info has
    ``step_index`` (1..5), so an average over episode ends differs from one over all steps or the last episode."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, value: Any = None) -> None:
        self.episodes = 0
        self.t = 0
        self.value = value

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.episodes += 1
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        info: dict[str, Any] = {"step_index": float(self.t)}
        done = self.t >= EPISODE
        if done:
            info["episode_index"] = self.episodes if self.value is None else self.value
        return np.zeros(1, np.float32), 1.0, done, False, info


gym.register("RoboRewardTest/Counting-v0", entry_point=_Counting)


def _config(tmp_path: Path, metrics: list[str], **env_kwargs: Any) -> Any:
    return load_config({
        "name": "counting",
        "env": {"id": "RoboRewardTest/Counting-v0", "n_envs": 1, "kwargs": env_kwargs},
        "agent": {"algo": "PPO", "kwargs": {"n_steps": 16, "batch_size": 16, "n_epochs": 1}},
        "budget": {"total_timesteps": 32, "checkpoint_every": 32},
        "eval": {"every": 32, "episodes": 4, "metric": "return", "info_metrics": metrics},
        "logging": {"progress": False, "tensorboard": False},
        "output_dir": str(tmp_path),
    })


def test_info_metrics_average_episode_ends_into_eval_csv_and_summary(tmp_path: Path) -> None:
    cfg = _config(tmp_path, ["episode_index", "step_index"])
    summary = train(cfg, tmp_path / "run")
    ev = pd.read_csv(tmp_path / "run" / "eval.csv")
    assert len(ev) == 2
    # a fresh eval env per evaluation: its episodes are 1..4 (mean 2.5); step_index is 5 at every episode end
    np.testing.assert_allclose(ev["info/episode_index"], 2.5)
    np.testing.assert_allclose(ev["info/step_index"], float(EPISODE))
    assert summary["final_info/episode_index"] == pytest.approx(2.5)
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["final_info/step_index"] == pytest.approx(float(EPISODE))
    report = (tmp_path / "run" / "report.md").read_text().splitlines()
    header = report.index("| episode_index | step_index |")
    assert report[header + 2] == "| 2.5 | 5 |"


def test_info_metric_missing_or_not_a_number_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"episode_idx.*episode_index"):
        train(_config(tmp_path, ["episode_idx"]), tmp_path / "missing")
    with pytest.raises(TypeError, match=r"episode_index.*not a number"):
        train(_config(tmp_path, ["episode_index"], value="high"), tmp_path / "text")


def test_bench_table_reports_info_metrics_with_ci(tmp_path: Path) -> None:
    cfg = _config(tmp_path, ["episode_index"])
    for seed in range(2):  # run in this process (the test env is not registered in bench's worker processes)
        train(cfg, tmp_path / "bench" / "runs" / "counting" / f"seed{seed}", seed=seed)
    table = run_bench([cfg], tmp_path / "bench", seeds=2, jobs=1, progress=False)
    row = table.set_index("design").loc["counting"]
    assert row["seeds"] == 2
    assert row["final_info/episode_index_iqm"] == pytest.approx(2.5)
    assert row["final_info/episode_index_ci_low"] == pytest.approx(2.5)
    summary_csv = pd.read_csv(tmp_path / "bench" / "summary.csv")
    assert "final_info/episode_index_ci_high" in summary_csv
    md = (tmp_path / "bench" / "summary.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| design"))
    assert "| episode_index |" in header
    counting = next(line for line in md.splitlines() if line.startswith("| counting"))
    assert "2.5 [2.5, 2.5]" in counting
    assert header.count("|") == counting.count("|")


def test_normalized_return_scores_the_episode_at_its_last_step_only() -> None:
    from robo_reward.metrics import NormalizedReturn

    env = NormalizedReturn(_Counting(), low=1.0, high=3.0)  # 5 steps of reward 1: R = 5 -> (5 - 1) / 2 = 2
    for _ in range(2):  # the return restarts with each episode
        env.reset(seed=0)
        infos = [env.step(0)[-1] for _ in range(EPISODE)]
        assert all("normalized_return" not in info for info in infos[:-1])
        assert infos[-1]["episode_return"] == 5.0 and infos[-1]["normalized_return"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="low != high"):
        NormalizedReturn(_Counting(), low=1.0, high=1.0)


def test_bench_reports_the_late_success_over_the_last_quarter_of_each_run(tmp_path: Path) -> None:
    """Seed 0 swings 1 -> 0 at its final evaluation, seed 1 holds 1: the late success (mean over evaluations
    at or after 3/4 of the budget: 30 and 40 of 40) is 0.5 and 1, not the final 0 and 1 nor all evals' mean."""
    from robo_reward.bench import summarize

    cfg = _config(tmp_path, [])
    cfg.eval.metric = "success"
    curves = {0: [0.0, 0.0, 1.0, 1.0, 0.0], 1: [0.0, 1.0, 1.0, 1.0, 1.0]}
    results = []
    for seed, curve in curves.items():
        run = tmp_path / "bench" / "runs" / "counting" / f"seed{seed}"
        run.mkdir(parents=True)
        pd.DataFrame({"timestep": [0, 10, 20, 30, 40], "success_rate": curve,
                      "return_mean": curve}).to_csv(run / "eval.csv", index=False)
        results.append({"name": "counting", "seed": seed, "timesteps": 40, "final_success": curve[-1],
                        "final_return": curve[-1], "final_progress": None, "steps_to_threshold": None,
                        "wall_time": 1.0})
    table = summarize(tmp_path / "bench", [cfg], results)
    per_run = pd.read_csv(tmp_path / "bench" / "results.csv").set_index("seed")["late_success"]
    assert per_run.to_dict() == {0: 0.5, 1: 1.0}
    row = table.set_index("design").loc["counting"]
    assert row["late_success_iqm"] == pytest.approx(0.75)
    assert row["final_success_iqm"] == pytest.approx(0.5)
    md = (tmp_path / "bench" / "summary.md").read_text().splitlines()
    header = next(line for line in md if line.startswith("| design"))
    counting = next(line for line in md if line.startswith("| counting"))
    assert "| late success |" in header and "0.75 [0.5, 1]" in counting
    assert header.count("|") == counting.count("|")
