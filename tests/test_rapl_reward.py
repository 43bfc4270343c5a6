"""The episode-end OT and RLHF rewards through the SB3 path, the reward-model files, and `robo-reward rapl`."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch
from stable_baselines3.common.vec_env import DummyVecEnv

import robo_reward  # noqa: F401  (registers the envs)
from robo_reward.cli import main
from robo_reward.methods.rapl.encoder import FrameEncoder, embed
from robo_reward.methods.rapl.reward import OTReward, RLHFEpisodeReward, save_reward_model
from robo_reward.methods.rapl.rlhf import RLHFReward
from robo_reward.methods.rapl.sinkhorn import ot_distance, per_frame_rewards
from robo_reward.preferences import PreferenceStore, load_triplets
from robo_reward.protocol import SpaceMismatchError
from robo_reward.registry import make_reward
from robo_reward.sb3 import RewardVecEnvWrapper

ROOT = Path(__file__).resolve().parents[1]


def _encoder() -> FrameEncoder:
    torch.manual_seed(0)
    return FrameEncoder(embed_dim=8, channels=(4, 8, 8))


@pytest.fixture()
def models(tmp_path: Path) -> dict[str, Path]:
    torch.set_num_threads(1)
    env = gym.make("robo_reward/Push2D-v0", obs_mode="dict")
    env.reset(seed=5)
    expert = np.stack([env.step(np.array([0.5, 0.5]))[0]["pixels"] for _ in range(50)])
    ot, rlhf = tmp_path / "ot.pt", tmp_path / "rlhf.pt"
    save_reward_model(ot, kind="ot", encoder=_encoder(), expert_frames=expert, eps=0.1)
    net = RLHFReward(_encoder(), 8)
    save_reward_model(rlhf, kind="rlhf", encoder=net.encoder, head=net.head)
    return {"ot": ot, "rlhf": rlhf, "expert": expert}  # type: ignore[dict-item]


def _venv(n: int = 2) -> DummyVecEnv:
    return DummyVecEnv([lambda: gym.make("robo_reward/Push2D-v0", obs_mode="dict") for _ in range(n)])


def test_ot_reward_pays_at_episode_end_and_sums_to_minus_the_distance(models: dict) -> None:
    reward = make_reward("rapl_ot", checkpoint=str(models["ot"]), scale=1.0)
    venv = RewardVecEnvWrapper(_venv(), reward, extrinsic_weight=0.0)
    venv.reset()
    frames = [[], []]
    rng = np.random.default_rng(0)
    for t in range(50):
        obs, paid, dones, infos = venv.step(rng.uniform(-1, 1, (2, 2)).astype(np.float32))
        assert (paid == 0).all()
        for i in range(2):
            frames[i].append(infos[i]["terminal_observation"]["pixels"] if dones[i] else obs["pixels"][i])
        if t < 49:
            assert not dones.any() and not any(reward.finished)
    assert dones.all()
    enc = reward.encoder
    for i in range(2):
        r = reward.pop_finished(i)
        assert r.shape == (50,)
        distance = float(ot_distance(embed(enc, np.stack(frames[i])), embed(enc, models["expert"]), 0.1, 100))
        assert np.isclose(r.sum(), -distance, atol=1e-5)
        assert np.isclose(infos[i]["reward/rapl_ot_episode"], r.sum())


def test_ot_reward_with_several_demos_pays_against_the_closest(models: dict, tmp_path: Path) -> None:
    expert = models["expert"]
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 255, expert.shape, dtype=np.uint8)
    path = tmp_path / "two.pt"
    save_reward_model(path, kind="ot", encoder=_encoder(), expert_frames=np.stack([noise, expert]), eps=0.1)
    single = OTReward(str(models["ot"]))
    both = OTReward(str(path))
    assert both.experts.shape[0] == 2 and single.experts.shape[0] == 1
    enc = both.encoder
    for rollout in (expert[::-1].copy(), noise[::-1].copy()):
        emb = embed(enc, rollout)
        demos = (noise, expert)
        distances = [float(ot_distance(emb, embed(enc, d), 0.1, 100)) for d in demos]
        closest = int(np.argmin(distances))
        expected = per_frame_rewards(emb, embed(enc, demos[closest]), 0.1, 100).double().numpy()
        np.testing.assert_allclose(both.episode_rewards(rollout), expected, rtol=1e-5, atol=1e-8)
        assert np.isclose(both.episode_rewards(rollout).sum(), -min(distances), atol=1e-5)
    np.testing.assert_allclose(single.episode_rewards(noise),
                               per_frame_rewards(embed(enc, noise), embed(enc, expert), 0.1, 100).double().numpy(),
                               rtol=1e-5, atol=1e-8)
    with pytest.raises(ValueError, match=r"\(K, T, H, W, 3\)"):
        save_reward_model(path, kind="ot", encoder=_encoder(), expert_frames=expert[0])


def test_rlhf_reward_is_the_per_frame_net(models: dict) -> None:
    reward = RLHFEpisodeReward(str(models["rlhf"]), scale=2.0)
    frames = models["expert"][:7]
    with torch.no_grad():
        expected = 2.0 * reward.net(torch.as_tensor(frames)).double().numpy()
    np.testing.assert_allclose(reward.scale * reward.episode_rewards(frames), expected, rtol=1e-6)


def test_wrong_inputs_are_named(models: dict, tmp_path: Path) -> None:
    reward = OTReward(str(models["ot"]))
    with pytest.raises(SpaceMismatchError, match="obs_mode=dict"):
        reward.bind(gym.spaces.Box(-1, 1, (8,)), gym.spaces.Box(-1, 1, (2,)), 1)
    with pytest.raises(ValueError, match="not 'ot'"):
        OTReward(str(models["rlhf"]))
    with pytest.raises(FileNotFoundError):
        OTReward(str(tmp_path / "missing.pt"))


@pytest.mark.parametrize("algo", ["EpisodicSAC", "EpisodicPPO"])
def test_train_with_an_episodic_agent_and_the_ot_reward(models: dict, tmp_path: Path, algo: str) -> None:
    run = tmp_path / "run"
    kwargs = ("{learning_starts: 100, batch_size: 32, policy_kwargs: {net_arch: [16]}}" if algo == "EpisodicSAC"
              else "{n_steps: 50, batch_size: 50, n_epochs: 1, policy_kwargs: {net_arch: [16]}}")
    code = main(["train", str(ROOT / "configs/rapl/rl_rapl.yaml"), "--run-dir", str(run), "--no-progress",
                 "--set", f"reward.terms.0.checkpoint={models['ot']}", "--set", "budget.total_timesteps=400",
                 "--set", f"agent.algo={algo}", "--set", f"agent.kwargs={kwargs}", "--set", "eval.episodes=2",
                 "--set", "env.n_envs=2"])
    assert code == 0
    episodes = pd.read_csv(run / "episodes.csv")
    assert len(episodes) == 8 and (episodes["reward/rapl_ot_episode"] < 0).all()
    assert (episodes["reward/rapl_ot"] == 0).all()
    assert {"info/zone_time", "info/preference_return"} <= set(pd.read_csv(run / "eval.csv").columns)


def test_rapl_command_writes_tables_stores_and_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rapl"
    args = ["rapl", str(ROOT / "configs/rapl/pipeline.yaml"), "--seeds", "1", "--out", str(out),
            "--set", "budgets=[6]", "--set", "rollouts.train=12", "--set", "rollouts.heldout=8",
            "--set", "rollouts.transfer=6", "--set", "rollouts.eval_triplets=10", "--set", "align.steps=3",
            "--set", "rlhf.steps=3", "--set", "eval_iters=20", "--set", "pretrain.steps=5"]
    code = main(args)
    assert code == 0
    results = pd.read_csv(out / "results.csv")
    assert set(results["method"]) == {"rapl", "rlhf", "unaligned", "task_reward"}
    assert results["spearman"].between(-1, 1).all() and "transfer_spearman" in results
    assert results["step_spearman"].between(-1, 1).all(), "every method has a per-step Spearman"
    spread = results.set_index("method")["embedding_spread"]
    assert spread[["rapl", "unaligned"]].between(0, 2).all() and spread[["rlhf", "task_reward"]].isna().all()
    assert len(load_triplets(PreferenceStore(out / "prefs" / "seed0_b6.jsonl"))) == 6
    for method in ("rapl", "rlhf", "unaligned"):
        assert (out / "models" / "seed0" / f"{method}_6.pt").is_file()
    assert (out / "rollouts_seed0.npz").is_file() and "| rapl | 6 | 1 |" in (out / "summary.md").read_text()
    (out / "summary.md").unlink()
    stored = json.loads((out / "config.json").read_text())
    stored["rlhf"]["finetune_encoder"] = stored["rlhf"].pop("train") == "all"  # a folder from before rlhf.train
    (out / "config.json").write_text(json.dumps(stored))
    again = main(args)
    assert again == 0 and len(pd.read_csv(out / "results.csv")) == len(results)
    assert "| rapl | 6 | 1 |" in (out / "summary.md").read_text(), "a finished folder's tables are rewritten"
    assert main([*args, "--set", "align.train=projector"]) != 0
    assert "align differ" in capsys.readouterr().err and len(pd.read_csv(out / "results.csv")) == len(results)
    stored["rlhf"]["finetune_encoder"] = False  # an old folder with a frozen RLHF encoder is rlhf.train=none
    (out / "config.json").write_text(json.dumps(stored))
    assert main(args) != 0 and "rlhf differ" in capsys.readouterr().err
    assert main([*args, "--set", "rlhf.train=none"]) == 0
    assert main([*args, "--set", "rlhf.train=none", "--set", "experts=2"]) != 0
    assert "experts differ" in capsys.readouterr().err
    (out / "config.json").write_text(json.dumps({**stored, "align": {"stepz": 3}}))
    assert main(args) != 0
    err = capsys.readouterr().err
    assert "config.json" in err and "stepz" in err and "Traceback" not in err


def test_demos_in_the_buffer_are_paid_the_task_reward_plus_their_ot_reward(models: dict, tmp_path: Path) -> None:
    """``rl_task_plus_rapl_demos.yaml`` end to end: each demo slot holds r_env + its own episode-end OT reward."""
    import pickle

    from robo_reward.envs.demos import collect_demos, write_dataset

    demos = collect_demos("robo_reward/Push2D-v0", episodes=2, seed=100, env_kwargs={"obs_mode": "dict"})
    write_dataset("robo_reward/rapl/push2d-expert-v0", demos, root=tmp_path / "minari")
    run = tmp_path / "run"
    code = main(["train", str(ROOT / "configs/rapl/rl_task_plus_rapl_demos.yaml"), "--run-dir", str(run),
                 "--no-progress", "--set", f"reward.terms.0.checkpoint={models['ot']}",
                 "--set", f"agent.demo_buffer.root={tmp_path / 'minari'}", "--set", "budget.total_timesteps=200",
                 "--set", "budget.checkpoint_every=200", "--set", "eval.episodes=1",
                 "--set", "agent.kwargs={learning_starts: 150, batch_size: 32, policy_kwargs: {net_arch: [16]}}"])
    assert code == 0
    with open(run / "checkpoints" / "step_200" / "replay_buffer.pkl", "rb") as f:
        buffer = pickle.load(f)
    ot = OTReward(str(models["ot"]), scale=50.0)
    for i, ep in enumerate(demos):
        expected = ep.rewards + ot.scale * ot.episode_rewards(ep.observations["pixels"][1:])
        np.testing.assert_allclose(buffer.rewards[50 * i : 50 * (i + 1), 0], expected, rtol=1e-5)
    np.testing.assert_allclose(buffer.observations[:50, 0], demos[0].observations["state"][:50])
    agent = pd.read_csv(run / "episodes.csv")
    assert len(agent) == 4 and (agent["reward/rapl_ot_episode"] < 0).all()
