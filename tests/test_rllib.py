"""The reward wrappers under Ray RLlib: env runners, per-term metrics, one reward learner, a shared reward server.

The cluster tests start a local Ray instance bound to 127.0.0.1 (loopback only) with 2 CPUs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import yaml

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only, before ray is imported
pytest.importorskip("ray.rllib", reason="the ray extra is not installed (pip install 'robo-reward[ray]')")

import robo_reward  # noqa: F401
from robo_reward.config import ConfigError, load_config
from robo_reward.protocol import RewardError, TransitionBatch

SHAPING = {"name": "potential_shaping", "potential": {"name": "goal_distance", "delta": [10, 11, 12]}}
RND = {"name": "rnd", "update_every": 8, "hidden": 32, "features": 16, "batch_size": 64, "epochs": 1}


def _cfg(tmp_path: Path, terms: list[dict], **agent) -> Path:
    cfg = {"name": "rllib_toy", "env": {"id": "robo_reward/Reach-v0", "n_envs": 2},
           "reward": {"terms": terms},
           "agent": {"algo": "PPO", "backend": "rllib", "kwargs": {"n_steps": 64, "batch_size": 64, "n_epochs": 1},
                     **agent},
           "budget": {"total_timesteps": 256, "checkpoint_every": 256},
           "eval": {"every": 100_000, "episodes": 1}, "logging": {"progress": False}}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_vector_env_has_the_info_masks_rllib_needs(tmp_path: Path) -> None:
    """RLlib wraps runners' envs in DictInfoToList, which needs a ``_key`` mask for every info key."""
    from robo_reward.agents.rllib import make_vector_env, reward_wrapper

    cfg = load_config(_cfg(tmp_path, [SHAPING]))
    venv = gym.wrappers.vector.DictInfoToList(make_vector_env(cfg, 2))
    venv.reset(seed=0)
    for _ in range(3):
        _, _, _, _, infos = venv.step(venv.action_space.sample())
    assert isinstance(infos, list) and "reward/shaping" in infos[0] and "original_env_rew" in infos[1]
    assert reward_wrapper(venv).reward.gamma == pytest.approx(0.99)
    venv.close()


def test_sb3_kwargs_map_to_rllib_or_are_named(tmp_path: Path) -> None:
    from robo_reward.agents.rllib import algo_config

    cfg = load_config(_cfg(tmp_path, [SHAPING]), ["agent.kwargs.learning_rate=0.001", "agent.kwargs.gamma=0.9"])
    config = algo_config(cfg, seed=0, learner=None)
    assert (config.lr, config.gamma, config.num_epochs, config.minibatch_size) == (0.001, 0.9, 1, 64)
    assert config.train_batch_size_per_learner == 128
    with pytest.raises(ConfigError, match=r"\['use_sde'\] have no RLlib PPO equivalent"):
        algo_config(load_config(_cfg(tmp_path, [SHAPING]), ["agent.kwargs.use_sde=true"]), seed=0, learner=None)
    with pytest.raises(ConfigError, match=r"runs agent.algo: PPO"):
        algo_config(load_config(_cfg(tmp_path, [SHAPING]), ["agent.algo=SAC"]), seed=0, learner=None)


@pytest.fixture(scope="module")
def local_ray():
    import ray

    from robo_reward.agents.rllib import init_local_ray

    init_local_ray(2)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_rllib_ppo_with_shaping_and_a_learned_reward(tmp_path: Path, local_ray) -> None:
    """Two env runners, one reward learner: terms reach RLlib's results, RND learns once, a checkpoint restores."""
    from robo_reward.cli import main

    path = _cfg(tmp_path, [SHAPING, RND], rllib={"num_env_runners": 2})
    run = tmp_path / "run"
    assert main(["train", str(path), "--run-dir", str(run), "--no-progress"]) == 0
    terms = pd.read_csv(run / "episodes.csv")
    for column in ("reward/shaping", "reward/rnd", "reward/extrinsic", "episodes_truncated"):
        assert column in terms and terms[column].notna().any(), column
    assert terms["episodes_truncated"].sum() >= 2, "Reach's time limit truncates random-policy episodes"
    assert (terms["episodes_terminated"].fillna(0) >= 0).all()
    assert terms["reward_learner/version"].max() >= 1, "the reward learner updated RND from the runners' data"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["timesteps"] >= 256 and summary["backend"] == "rllib"
    for f in ("config.yaml", "eval.csv", "report.md", "checkpoints/latest"):
        assert (run / f).exists(), f
    import torch

    folder = run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()
    learned = torch.load(folder / "reward.pt", weights_only=False)["state"]
    fresh = local_ray.remote(__import__("robo_reward.agents.rllib", fromlist=["RewardLearner"]).RewardLearner)
    initial = local_ray.get(fresh.remote(load_config(path).model_dump_json()).state_dict.remote())
    moved = [k for k in learned["child1"]["predictor"]
             if not torch.equal(learned["child1"]["predictor"][k], initial["child1"]["predictor"][k])]
    assert moved, "RND's predictor weights changed in the learner"
    # a resumed run restores the algorithm and continues from its step count, not from zero
    assert main(["train", "--resume", str(run), "--set", "budget.total_timesteps=512", "--no-progress"]) == 0
    after = json.loads((run / "summary.json").read_text())
    assert after["timesteps"] >= 512
    assert pd.read_csv(run / "episodes.csv")["timestep"].iloc[0] == terms["timestep"].iloc[0]


@pytest.mark.slow
def test_reward_server_batches_runners_and_fails_loudly(local_ray) -> None:
    """Concurrent requests share forward passes; results equal direct evaluation; a slow model times out.

    The servers wait 0.25 s for more requests after the first, so back-to-back requests queue and share passes on
    a loaded machine too (with no window they queue only during a pass: flaky on a busy CI box).
    """
    from robo_reward.agents.rllib import RemoteReward
    from robo_reward.registry import build_reward

    obs_space, act_space = gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-1, 1, (1,))
    spec = {"name": "goal_distance", "delta": [0, 1, 2]}
    direct = build_reward(spec)
    direct.bind(obs_space, act_space, 4)
    remote = RemoteReward(spec, server="test_server", timeout_s=20, batch_wait_s=0.25)
    remote.bind(obs_space, act_space, 4)
    rng = np.random.default_rng(0)
    batches = [TransitionBatch(rng.normal(size=(4, 3)), rng.normal(size=(4, 1)), rng.normal(size=(4, 3)),
                               np.zeros(4), np.zeros(4, bool), np.zeros(4, bool)) for _ in range(16)]
    refs = [remote._handle.evaluate.remote(b) for b in batches]
    for b, values in zip(batches, local_ray.get(refs), strict=True):
        np.testing.assert_allclose(values, direct(b))
    np.testing.assert_allclose(remote(batches[0]), direct(batches[0]))
    stats = local_ray.get(remote._handle.stats.remote())
    assert stats["requests"] == 17 and stats["calls"] < stats["requests"], stats

    impatient = RemoteReward(spec, server="test_server", timeout_s=1e-4)
    impatient.bind(obs_space, act_space, 4)
    with pytest.raises(RewardError, match="gave no reward within"):
        impatient(TransitionBatch(rng.normal(size=(20_000, 3)), np.zeros((20_000, 1)), rng.normal(size=(20_000, 3)),
                                  np.zeros(20_000), np.zeros(20_000, bool), np.zeros(20_000, bool)))

    with pytest.raises(ConfigError, match="batch_wait_s must be >= 0"):
        RemoteReward(spec, batch_wait_s=-1.0)
    bounded = RemoteReward(spec, server="bounded_server", max_queue=1, batch_wait_s=0.25)
    bounded.bind(obs_space, act_space, 4)
    outcomes = []
    for ref in [bounded._handle.evaluate.remote(b) for b in batches * 4]:
        try:
            outcomes.append(local_ray.get(ref))
        except local_ray.exceptions.RayTaskError as exc:
            assert "requests waiting (max_queue=1)" in str(exc)
            outcomes.append(None)
    assert any(o is None for o in outcomes), "a full queue refuses requests instead of growing"
