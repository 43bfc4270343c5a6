"""Behaviour-cloning warm start: the actor learns the demos, the critic is untouched, bad input is named."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.env_util import make_vec_env

from robo_reward.cli import main
from robo_reward.datasets import write_dataset
from robo_reward.envs.demos import collect_demos
from robo_reward.warmstart import behaviour_clone, demo_pairs


def pendulum_pairs(n: int = 512) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, size=(n, 3)).astype(np.float32)
    return obs, np.clip(1.5 * obs[:, :1] - obs[:, 2:3], -2, 2).astype(np.float32)


def test_actor_fits_the_demos_and_the_critic_is_untouched() -> None:
    model = PPO("MlpPolicy", make_vec_env("Pendulum-v1", n_envs=1, seed=0), seed=0, device="cpu")
    critic = {k: v.clone() for k, v in model.policy.state_dict().items() if "value" in k}
    obs, actions = pendulum_pairs()
    before = np.mean((model.policy.predict(obs, deterministic=True)[0] - actions) ** 2)
    mse = behaviour_clone(model.policy, obs, actions, epochs=150, lr=3e-3, log_std=-1.5)
    after = np.mean((model.policy.predict(obs, deterministic=True)[0] - actions) ** 2)
    assert mse < 0.01 and after < 0.02 < before
    assert torch.allclose(model.policy.log_std, torch.full_like(model.policy.log_std, -1.5))
    for k, v in model.policy.state_dict().items():
        if "value" in k:
            assert torch.equal(v, critic[k]), k


def test_bad_input_is_named() -> None:
    model = PPO("MlpPolicy", make_vec_env("Pendulum-v1", n_envs=1, seed=0), seed=0, device="cpu")
    obs, actions = pendulum_pairs(16)
    with pytest.raises(ValueError, match="observations have shape"):
        behaviour_clone(model.policy, obs[:, :2], actions, epochs=1)
    with pytest.raises(ValueError, match="actions have shape"):
        behaviour_clone(model.policy, obs, np.hstack([actions, actions]), epochs=1)
    sac = SAC("MlpPolicy", "Pendulum-v1", device="cpu")
    with pytest.raises(TypeError, match="actor-critic policy with Gaussian actions"):
        behaviour_clone(sac.policy, obs, actions, epochs=1)  # type: ignore[arg-type]


def test_config_warm_start_clones_reach_demos_before_training(tmp_path) -> None:
    episodes = collect_demos("robo_reward/Reach-v0", episodes=20, seed=100)
    dataset = write_dataset("robo_reward/warm/reach-v0", episodes, root=tmp_path / "minari")
    obs, actions = demo_pairs(episodes)
    assert obs.shape == (sum(e.length for e in episodes), 13) and actions.shape[1] == 4
    with pytest.raises(KeyError, match="flat observations"):
        demo_pairs(episodes, "state")
    cfg = {"name": "warm", "env": {"id": "robo_reward/Reach-v0", "n_envs": 2},
           "agent": {"algo": "PPO", "kwargs": {"n_steps": 64, "batch_size": 64},
                     "warm_start": {"dataset": str(dataset), "epochs": 300, "log_std": -2.0}},
           "budget": {"total_timesteps": 128, "checkpoint_every": 128},
           "eval": {"every": 128, "episodes": 10}, "logging": {"progress": False}, "seeds": [0]}
    path = tmp_path / "warm.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    assert main(["train", str(path), "--run-dir", str(run), "--no-progress"]) == 0
    info = json.loads((run / "warm_start.json").read_text())
    assert info["episodes"] == 20 and info["pairs"] == len(obs) and info["mse"] < 0.05
    first_eval = (run / "eval.csv").read_text().splitlines()[1].split(",")
    assert float(first_eval[4]) >= 0.5, "the cloned expert succeeds at step 0"
