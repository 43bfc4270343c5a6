"""Every user mistake at the command line exits 2 with a message naming the problem and the fix, never a traceback;
``--debug`` shows the traceback; a corrupt newest checkpoint on ``--resume`` falls back to the previous one.

Each case runs ``python -m robo_reward.cli`` in a subprocess, as a user would. Cases that fail before torch loads
take about a second each; the ones that build an env, an agent or load a checkpoint import torch and SB3 (a few
seconds each) and are marked slow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

from robo_reward.cli import build_parser, main, user_message
from robo_reward.errors import CheckpointError, UnknownNameError, UserError

CONFIG = {
    "name": "pend",
    "env": {"id": "Pendulum-v1", "n_envs": 1},
    "reward": {"terms": [{"name": "goal_distance", "delta": [0], "weight": 0.1}]},
    "agent": {"algo": "PPO", "kwargs": {"n_steps": 32, "batch_size": 32, "n_epochs": 1}},
    "budget": {"total_timesteps": 96, "checkpoint_every": 32},
    "eval": {"every": 96, "episodes": 1, "metric": "return", "threshold": -1200},
    "logging": {"progress": False, "tensorboard": False},
}


def cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "robo_reward.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


def user_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Assert exit 2, each needle in stderr, and no traceback; return stderr."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, (result.returncode, result.stderr)
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)
    return result.stderr


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "pend.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 96-step run: checkpoints step_64 and step_96 (the last two are kept)."""
    root = tmp_path_factory.mktemp("run")
    path = root / "pend.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    assert main(["train", str(path), "--run-dir", str(root / "run"), "--no-progress"]) == 0
    return root / "run"


@pytest.fixture
def run_copy(trained_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained_run, tmp_path / "run"))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:200])


# -- mistakes found before torch loads ---------------------------------------------------------------------------
def test_missing_config_file(tmp_path: Path) -> None:
    user_error(cli("train", tmp_path / "nope.yaml"), "nope.yaml does not exist", "check the path")


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nenv:\n  id: Pendulum-v1\n  n_envs: [1\nagent: {}\n")
    user_error(cli("train", bad), f"{bad}:5:", "YAML syntax error")


def test_unknown_config_key_is_named_with_the_valid_ones(config: Path) -> None:
    user_error(cli("train", config, "--set", "agent.kwarg={}"), "unknown key 'agent.kwarg'",
               "did you mean 'kwargs'", "valid keys here")


def test_bad_set_override(config: Path) -> None:
    user_error(cli("train", config, "--set", "agent.kwargs.n_steps.x=1"), "does not lead to a settable field")


def test_unknown_env_id_lists_close_registered_ids(config: Path) -> None:
    user_error(cli("train", config, "--set", "env.id=Pendulm-v1"), "unknown env id 'Pendulm-v1'",
               "did you mean 'Pendulum-v1'", "robo-reward envs")
    user_error(cli("train", config, "--set", "env.id=robo_reward/Rech-v0"), "'robo_reward/Reach-v0'")


def test_unknown_agent_algo(config: Path) -> None:
    user_error(cli("train", config, "--set", "agent.algo=ppo"), "unknown agent.algo 'ppo'",
               "did you mean 'PPO'", "SAC")


def test_unknown_reward_name(config: Path) -> None:
    user_error(cli("train", config, "--set", "reward.terms.0.name=goal_distanc"),
               "'goal_distanc' is not a registered reward", "did you mean 'goal_distance'")


def test_eval_and_resume_on_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    user_error(cli("eval", tmp_path), "is not a run folder: it has no config.yaml", "robo-reward train")
    user_error(cli("train", "--resume", tmp_path / "missing"), "run folder", "does not exist")


def test_train_without_config_or_with_config_and_resume(config: Path, tmp_path: Path) -> None:
    user_error(cli("train"), "give a CONFIG file")
    user_error(cli("train", config, "--resume", tmp_path), "CONFIG cannot be given with it")


def test_bench_designs_need_distinct_names(config: Path) -> None:
    user_error(cli("bench", config, config, "--seeds", "1"), "need distinct names", "['pend']")


def test_debug_shows_the_traceback_before_or_after_the_command(tmp_path: Path) -> None:
    for args in (("--debug", "train", tmp_path / "nope.yaml"), ("train", tmp_path / "nope.yaml", "--debug")):
        result = cli(*args)
        assert result.returncode == 2
        assert "Traceback" in result.stderr and "ConfigError" in result.stderr
        assert "robo-reward train: config file" in result.stderr


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    import robo_reward.cli as cli_module

    def broken(_: object) -> int:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli_module, "_envs", broken)
    with pytest.raises(ZeroDivisionError):
        main(["envs"])
    assert user_message(KeyError("x")) is None and user_message(RuntimeError("x")) is None
    assert user_message(SystemExit(2)) is None and user_message(SystemExit("msg")) == "msg"


def test_error_family() -> None:
    from robo_reward.agents_registry import resolve_algo
    from robo_reward.config import ConfigError

    assert issubclass(ConfigError, UserError) and issubclass(ConfigError, ValueError)
    with pytest.raises(KeyError, match="did you mean 'TD3'"):
        resolve_algo("TD4")
    assert str(UnknownNameError("plain text")) == "plain text"
    assert issubclass(CheckpointError, UserError)


def test_core_commands_do_not_load_plugin_commands() -> None:
    assert "deploy" not in build_parser(["train", "x.yaml"]).format_usage()
    assert all(c in build_parser(["deploy", "x"]).format_usage() for c in ("deploy", "dopamine-grm", "train"))
    args = build_parser(["deploy"]).parse_args(["deploy", "r", "--robot", "p.yaml", "--set", "a.b=1"])
    assert args.set == ["a.b=1"] and args.debug is False


# -- mistakes found while building the env, the agent or a checkpoint (torch loads) -----------------------------
@pytest.mark.slow
def test_invalid_agent_kwarg_and_policy(config: Path) -> None:
    user_error(cli("train", config, "--set", "agent.kwargs.lerning_rate=0.001"),
               "agent.kwargs.lerning_rate is not a parameter of PPO", "did you mean 'learning_rate'")
    user_error(cli("train", config, "--set", "agent.policy=MlpPolicyy"), "Policy MlpPolicyy unknown",
               "fix agent.algo, agent.policy or agent.kwargs")


@pytest.mark.slow
def test_reward_kwargs_that_do_not_fit(config: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    user_error(cli("train", config, "--set", "reward.terms.0.delta=[7]", "--run-dir", run_dir),
               "reward.terms do not fit env 'Pendulum-v1'", "observation entry 7")
    assert not run_dir.exists(), "a config that cannot be built leaves no run folder"
    user_error(cli("train", config, "--set", "reward.terms.0.dleta=[0]"),
               "reward.terms[0] ('goal_distance') cannot be built", "dleta")
    shaping = "reward.terms=[{name: potential_shaping, gamma: 0.9, potential: {name: goal_distance, delta: [0]}}]"
    user_error(cli("train", config, "--set", shaping, "--run-dir", run_dir),
               "reward.terms do not fit agent PPO (gamma=0.99)", "configured with gamma=0.9")
    assert not run_dir.exists()


@pytest.mark.slow
def test_bad_key_in_a_dopamine_grm_config(tmp_path: Path) -> None:
    grm = tmp_path / "grm.yaml"
    base = Path(__file__).resolve().parents[1] / "configs" / "dopamine" / "grm_reach.yaml"
    grm.write_text(f"base: {base}\npretrain_stepz: 3\n")
    user_error(cli("dopamine-grm", grm), "unknown key 'pretrain_stepz'", "valid keys here")


@pytest.mark.slow
def test_deploy_on_a_folder_without_a_policy(tmp_path: Path) -> None:
    robot = Path(__file__).resolve().parents[1] / "configs" / "robots" / "fake_arm7.yaml"
    user_error(cli("deploy", tmp_path, "--robot", robot), "no policy checkpoint", "--policy PATH")


@pytest.mark.slow
def test_eval_corrupt_checkpoint_names_it_and_the_previous_one(run_copy: Path) -> None:
    truncate(run_copy / "checkpoints" / "step_96" / "agent.zip")
    user_error(cli("eval", run_copy, "--episodes", "1"), "step_96 cannot be loaded: agent.zip",
               "--checkpoint step_64", "train --resume")
    ok = cli("eval", run_copy, "--episodes", "1", "--checkpoint", "step_64")
    assert ok.returncode == 0, ok.stderr
    assert '"timestep": 64.0' in ok.stdout


@pytest.mark.slow
def test_eval_incompatible_checkpoint_via_set(run_copy: Path) -> None:
    user_error(cli("eval", run_copy, "--set", "env.id=MountainCarContinuous-v0", "--set", "reward.terms=[]"),
               "cannot be loaded: agent.zip", "Observation spaces do not match", "restore the config")


@pytest.mark.slow
def test_resume_falls_back_from_a_corrupt_newest_checkpoint(run_copy: Path) -> None:
    root = run_copy / "checkpoints"
    truncate(root / "step_96" / "reward.pt")
    result = cli("train", "--resume", run_copy, "--set", "budget.total_timesteps=128", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "step_96 cannot be loaded: reward.pt" in result.stderr
    assert "resuming from the previous complete checkpoint step_64" in result.stderr
    assert (root / "unreadable-step_96" / "reward.pt").exists()
    assert (root / "latest").read_text() == "step_128"
    assert sorted(p.name for p in root.glob("step_*")) == ["step_128", "step_96"]
    assert yaml.safe_load((run_copy / "config.yaml").read_text())["budget"]["total_timesteps"] == 128


@pytest.mark.slow
def test_resume_with_no_loadable_checkpoint(run_copy: Path) -> None:
    root = run_copy / "checkpoints"
    truncate(root / "step_96" / "agent.zip")
    (root / "step_64" / "state.json").write_text("{not json")
    user_error(cli("train", "--resume", run_copy, "--no-progress"), "step_96 cannot be loaded: agent.zip",
               "step_64 cannot be loaded: state.json is unreadable", "train the run again")


# -- in process: what the subprocess cases rest on ---------------------------------------------------------------
def test_training_keeps_the_last_two_complete_checkpoints(trained_run: Path) -> None:
    root = trained_run / "checkpoints"
    assert sorted(p.name for p in root.glob("step_*")) == ["step_64", "step_96"]
    assert (root / "latest").read_text() == "step_96"


def test_deploy_set_overrides_the_runs_config(trained_run: Path) -> None:
    from robo_reward.config import ConfigError
    from robo_reward.hardware.policy import load_run_reward

    ckpt = trained_run / "checkpoints" / "step_96" / "reward.pt"
    obs, act = gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-2, 2, (1,))
    reward = load_run_reward(trained_run, ckpt, obs, act, 0.99, overrides=["reward.terms.0.weight=0.5"])
    np.testing.assert_array_equal(reward.weights, [0.5])  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"reward\.terms"):
        load_run_reward(trained_run, ckpt, obs, act, 0.99, overrides=["reward.terms.0.name=nope"])
