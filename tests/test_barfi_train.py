"""BARFI through the runner (robo-reward train), the exported blend driving SB3 PPO, and the bad-aux trap."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from robo_reward.agents.barfi import BARFI
from robo_reward.config import load_config
from robo_reward.methods.barfi import BlendHead, load_blend
from robo_reward.runner import TrainingRun, make_vec, train

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "barfi"
CENTRE = np.array([[0.45, 0.45], [0.45, 0.55], [0.55, 0.45], [0.55, 0.55], [0.55, 0.35], [0.35, 0.55]], np.float32)


def _phi2(head: BlendHead, obs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return head.phi(head.features(torch.from_numpy(obs)))[1].numpy()


def test_train_from_config_then_export_the_blend_to_ppo(tmp_path: Path) -> None:
    cfg = load_config(CONFIGS / "gridworld" / "bad" / "barfi.yaml",
                      ["budget.total_timesteps=1200", "budget.checkpoint_every=600", "eval.every=600",
                       "eval.episodes=2", "agent.kwargs.first_mul=6"])
    summary = train(cfg, tmp_path / "barfi", progress=False)
    assert summary["timesteps"] >= 1200 and np.isfinite(summary["final_return"])
    evals = (tmp_path / "barfi" / "eval.csv").read_text().splitlines()
    assert len(evals) >= 3 and "return_mean" in evals[0]
    blend = load_blend(tmp_path / "barfi")
    head = BlendHead.from_export(blend)
    assert not np.allclose(_phi2(head, CENTRE), 1.0)  # outer steps moved the blend
    ppo = load_config({
        "name": "ppo_on_blend", "env": {"id": "robo_reward/GridWorldBadAux-v0", "n_envs": 2},
        "reward": {"terms": [{"name": "barfi_blend", "source": str(tmp_path / "barfi")}]},
        "agent": {"algo": "PPO", "kwargs": {"n_steps": 64, "batch_size": 64, "n_epochs": 1}},
        "budget": {"total_timesteps": 128, "checkpoint_every": 128},
        "eval": {"every": 128, "episodes": 1, "metric": "return"}, "logging": {"progress": False},
    })
    run = TrainingRun(ppo, tmp_path / "ppo", progress=False)
    run.setup()
    run.learn()
    episodes = (tmp_path / "ppo" / "episodes.csv").read_text()
    assert "reward/blend" in episodes and "reward/blend/phi2" in episodes


def test_a_stopped_run_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    cfg = load_config(CONFIGS / "cartpole" / "bad" / "barfi.yaml",
                      ["budget.total_timesteps=800", "budget.checkpoint_every=400", "eval.every=400",
                       "eval.episodes=1", "agent.kwargs.first_mul=6"])
    run = TrainingRun(cfg, tmp_path, progress=False)
    run.setup()
    run.learn()
    state = json.loads((run.latest_checkpoint() / "state.json").read_text())  # type: ignore[operator]
    resumed = TrainingRun(cfg.model_copy(update={"budget": cfg.budget.model_copy(update={"total_timesteps": 1600})}),
                          tmp_path, progress=False)
    assert resumed.restore() == state["timesteps"]
    assert resumed.model.outer_steps == run.model.outer_steps  # type: ignore[union-attr]
    resumed.learn(resumed=True)
    assert resumed.model.num_timesteps >= 1600  # type: ignore[union-attr]
    assert resumed.model.outer_steps > run.model.outer_steps  # type: ignore[union-attr]


def test_bad_aux_gridworld_phi2_on_the_centre_bonus_shrinks() -> None:
    """The +50 centre bonus traps r_p + r_aux; the primary return's hypergradient turns phi2 down where the bonus
    is paid (phi is read at s_t, the bonus at s_{t+1}, so that is the centre and the cells that step into it)."""
    cfg = load_config(CONFIGS / "gridworld" / "bad" / "barfi.yaml")
    model = BARFI(cfg.agent.policy, make_vec(cfg.env, 0), seed=0, **cfg.agent.kwargs)
    model.learn(cfg.budget.total_timesteps)
    assert model.outer_steps > 30
    buffer = model.buffer
    paid = (buffer.r_aux > 0) & (buffer.mask > 0)
    with torch.no_grad():
        phi2 = model.head.phi(buffer.feats[paid])[1]
    assert paid.sum() > 20 and float(phi2.mean()) < 0.5, phi2
