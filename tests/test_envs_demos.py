"""Demo datasets: Minari write/read identity, phase labels, the collect-demos command."""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import minari
import numpy as np
import pytest

import robo_reward  # noqa: F401  (registers the tasks)
from robo_reward.envs.commands import add_command
from robo_reward.envs.demos import collect_demos, default_dataset_id, load_demos, write_dataset


def _assert_same(a, b, where: str = "") -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
        return
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, (where, a.dtype, b.dtype, a.shape, b.shape)
    assert np.array_equal(a, b), where


@pytest.mark.parametrize("pixels", [False, True])
def test_dataset_written_and_read_back_is_identical(tmp_path: Path, pixels: bool) -> None:
    episodes = collect_demos(
        "robo_reward/PickPlace-v0",
        episodes=3,
        noise=0.1,
        pixels=pixels,
        image_size=32,
        seed=7,
        env_kwargs={"object_color": "blue"},
    )
    path = write_dataset(default_dataset_id("robo_reward/PickPlace-v0", 0.1, pixels), episodes, root=tmp_path)
    back = load_demos(path)
    assert len(back) == 3
    for i, (ep, rb) in enumerate(zip(episodes, back, strict=True)):
        for field in ("observations", "actions", "rewards", "terminations", "truncations", "infos"):
            _assert_same(getattr(ep, field), getattr(rb, field), f"episode {i} {field}")
        assert rb.seed == 7 + i and rb.num_phases == 5
    if pixels:
        assert back[0].frames("front").shape == (back[0].length + 1, 32, 32, 3)
    else:
        with pytest.raises(KeyError, match="--pixels"):
            back[0].frames("front")
    env = minari.MinariDataset(path / "data").recover_environment()
    assert env.spec.kwargs["object_color"] == "blue"
    env.close()


def test_episode_layout_follows_minari(tmp_path: Path) -> None:
    ep = collect_demos("robo_reward/Push-v0", episodes=1, seed=0)[0]
    T = ep.length
    assert ep.observations.shape == (T + 1, 29) and ep.actions.shape == (T, 4)
    assert ep.rewards.shape == ep.terminations.shape == ep.truncations.shape == (T,)
    assert all(v.shape[0] == T + 1 for v in ep.infos.values())
    assert ep.terminations[-1] and not ep.terminations[:-1].any() and not ep.truncations.any()
    assert ep.rewards[-1] == 1.0 and ep.infos["is_success"][-1]


def test_phase_labels_and_keyframes_survive_the_round_trip(tmp_path: Path) -> None:
    episodes = collect_demos("robo_reward/PickPlace-v0", episodes=4, seed=0)
    demos = load_demos(write_dataset("robo_reward/PickPlace/expert-v0", episodes, root=tmp_path))
    for demo in demos:
        assert demo.success
        assert np.all(np.diff(demo.phases) >= 0) and set(demo.phases.tolist()) == set(range(5))
        ks = demo.keyframes
        assert len(ks) == 6 and ks[0] == 0 and ks[-1] == demo.length
        assert [demo.phases[k] for k in ks[:-1]] == [0, 1, 2, 3, 4]
        assert demo.progress[0] == 0.0 and demo.progress[-1] == 1.0


def test_existing_dataset_is_not_overwritten_silently(tmp_path: Path) -> None:
    episodes = collect_demos("robo_reward/Reach-v0", episodes=1, seed=0)
    write_dataset("robo_reward/Reach/expert-v0", episodes, root=tmp_path)
    with pytest.raises(FileExistsError, match="overwrite"):
        write_dataset("robo_reward/Reach/expert-v0", episodes, root=tmp_path)
    write_dataset("robo_reward/Reach/expert-v0", episodes * 2, root=tmp_path, overwrite=True)
    assert len(load_demos("robo_reward/Reach/expert-v0", root=tmp_path)) == 2
    with pytest.raises(FileNotFoundError, match="no Minari dataset"):
        load_demos("robo_reward/Reach/missing-v0", root=tmp_path)


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="robo-reward")
    add_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_collect_demos_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "collect-demos",
        "Push",
        "--episodes",
        "3",
        "--noise",
        "0.1",
        "--pixels",
        "--cameras",
        "front,top",
        "--image-size",
        "24",
        "--root",
        str(tmp_path),
        "--env-kwargs",
        '{"num_distractors": 2}',
    ]
    assert _cli(argv) == 0
    assert "wrote 3 episodes" in capsys.readouterr().out
    demos = load_demos("robo_reward/Push/expert-noise0p1-pixels-v0", root=tmp_path)
    assert len(demos) == 3 and set(demos[0].observations) == {"state", "front", "top"}
    assert demos[0].frames("top").shape[1:] == (24, 24, 3)
    os.environ["MINARI_DATASETS_PATH"] = str(tmp_path)
    try:
        assert minari.load_dataset("robo_reward/Push/expert-noise0p1-pixels-v0").total_episodes == 3
    finally:
        del os.environ["MINARI_DATASETS_PATH"]
    assert _cli(argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (
        _cli(["collect-demos", "Push", "--episodes", "1", "--env-kwargs", "[1]", "--root", str(tmp_path)])
        == 2
    )
    assert (
        _cli(
            [
                "collect-demos",
                "Push",
                "--episodes",
                "1",
                "--env-kwargs",
                '{"bogus": 1}',
                "--root",
                str(tmp_path),
            ]
        )
        == 2
    )


@pytest.mark.skipif(
    importlib.util.find_spec("robo_reward.cli") is None, reason="core CLI (robo_reward/cli.py) not merged yet"
)
def test_robo_reward_script_runs_collect_demos(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("robo-reward")
    out = subprocess.run(
        [str(script), "collect-demos", "Reach", "--episodes", "2", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert len(load_demos("robo_reward/Reach/expert-v0", root=tmp_path)) == 2


def test_relative_root_writes_and_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--root runs/minari`` (relative, as the configs' comments say) must land under the working directory."""
    monkeypatch.chdir(tmp_path)
    assert _cli(["collect-demos", "Reach", "--episodes", "2", "--root", "runs/minari"]) == 0
    assert (tmp_path / "runs" / "minari" / "robo_reward" / "Reach" / "expert-v0").is_dir()
    assert len(load_demos("robo_reward/Reach/expert-v0", root="runs/minari")) == 2
    assert len(load_demos("runs/minari/robo_reward/Reach/expert-v0")) == 2
