"""`robo-reward perf`: the table it writes, where it writes it, and the optional imitation side-by-side."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from robo_reward.cli import build_parser
from robo_reward.perf import IMITATION_PATH_ENV, _venv, imitation_version, run_perf


def test_perf_table_has_every_mode_and_ratios_to_raw(tmp_path) -> None:
    table = run_perf("Pendulum-v1", n_envs=(1, 2), steps=40, repeats=1, hidden=(8, 8), out=tmp_path / "perf")
    modes = {"raw", "numpy", "batched_mlp", "batched_mlp_torch", "per_env_mlp"}
    assert modes <= set(table["mode"]) and sorted(set(table["n_envs"])) == [1, 2]
    raw = table[table["mode"] == "raw"]
    assert (raw["ratio_to_raw"] == 1.0).all() and (raw["ratio_q25"] == 1.0).all() and (raw["ratio_q75"] == 1.0).all()
    assert (table["ratio_q25"] <= table["ratio_q75"]).all()
    assert (table["steps_per_s"] > 0).all()
    written = pd.read_csv(tmp_path / "perf" / "perf.csv")
    assert len(written) == len(table)
    assert "| 2 | batched_mlp |" in (tmp_path / "perf" / "perf.md").read_text()
    assert list(written.columns) == list(table.columns)


def test_perf_times_a_registered_reward_instead() -> None:
    table = run_perf("Pendulum-v1", n_envs=(1,), steps=20, repeats=1, reward="extrinsic")
    assert list(table["mode"]) == ["raw", "numpy", "reward:extrinsic"]


def test_perf_writes_into_runs_not_benchmarks_by_default() -> None:
    args = build_parser(["perf"]).parse_args(["perf"])
    assert args.out == "runs/perf" and args.imitation_path is None


def test_imitation_path_must_be_a_folder(tmp_path) -> None:
    with pytest.raises(ValueError, match="is not a folder"):
        imitation_version(tmp_path / "missing")


def test_imitation_side_by_side_uses_a_net_of_the_same_size() -> None:
    if imitation_version(os.environ.get(IMITATION_PATH_ENV)) is None:
        pytest.skip(f"imitation is not importable (set {IMITATION_PATH_ENV} to a folder holding it)")
    ours, theirs = _venv("batched_mlp", "Pendulum-v1", 2, (16, 16)), _venv("imitation_mlp", "Pendulum-v1", 2, (16, 16))
    net = theirs.reward_fn.__self__
    sizes = sorted(p.numel() for p in net.parameters())
    assert sizes == sorted(p.numel() for p in ours.reward.module.parameters())
    theirs.reset()
    _, rewards, _, _ = theirs.step(np.zeros((2, 1), dtype=np.float32))
    assert rewards.shape == (2,) and np.isfinite(rewards).all()


def test_pixel_perf_measures_render_only_against_the_dopamine_reward(tmp_path) -> None:
    from robo_reward.perf import pixel_modes, run_pixel_perf

    assert pixel_modes() == ("render", "grm_hop", "grm_phi")
    table = run_pixel_perf(n_envs=(2,), image_size=24, steps=8, repeats=1, out=tmp_path / "pixel")
    assert list(table["mode"]) == list(pixel_modes())
    render = table[table["mode"] == "render"].iloc[0]
    assert render["ratio_to_render"] == 1.0 and render["env_ms"] > 0
    assert (table["steps_per_s"] > 0).all() and (table["reward_ms"][table["mode"] != "render"] > 0).all()
    assert "| 2 | grm_hop |" in (tmp_path / "pixel" / "perf.md").read_text()
    with pytest.raises(ValueError, match="start with the baseline"):
        run_pixel_perf(modes=("grm_hop",))
    with pytest.raises(ValueError, match=r"robo_reward\.pixel_perf"):
        run_pixel_perf(n_envs=(1,), steps=2, repeats=1, modes=("render", "no_such_mode"))


def test_perf_cli_takes_pixel_cameras() -> None:
    args = build_parser(["perf"]).parse_args(["perf", "--pixels", "front", "wrist", "--image-size", "32"])
    assert args.pixels == ["front", "wrist"] and args.image_size == 32
