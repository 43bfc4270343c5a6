"""Learned terms keep learning inside composites (issue 11): each on its own schedule, in every adapter.

RND alone, inside ``weighted_sum``, inside ``normalize`` and beside ``potential_shaping`` must change its
predictor's weights during training (SB3, Gymnasium vector and single-env adapters, ``robo-reward train``); the
batches queued for updates stay bounded; relabelling and state_dict reach the nested term.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.env_util import make_vec_env

from robo_reward.checkpoint import load_reward_state, save_reward
from robo_reward.cli import main as cli_main
from robo_reward.methods.curiosity.rnd import RND
from robo_reward.protocol import FunctionReward, Reward
from robo_reward.registry import build_reward
from robo_reward.sb3 import RelabelingReplayBuffer, RewardCallback, RewardVecEnvWrapper
from robo_reward.shaping import RunningNormalize, WeightedSum
from robo_reward.wrappers import RewardVectorWrapper, RewardWrapper

EVERY = 16
RND_SPEC = {"name": "rnd", "hidden": 16, "features": 8, "update_every": EVERY, "epochs": 1, "batch_size": 64}
SHAPING = {"name": "potential_shaping", "potential": {"name": "goal_distance", "delta": [2]}}

# reward specs for the adapters, and the same designs as `reward.terms` of an experiment config
DESIGNS: dict[str, dict[str, Any]] = {
    "alone": RND_SPEC,
    "weighted_sum": {"name": "weighted_sum", "terms": [RND_SPEC, {"name": "extrinsic"}], "weights": [0.5, 1.0]},
    "normalize": {"name": "normalize", "term": RND_SPEC},
    "beside_shaping": {"name": "weighted_sum", "terms": [RND_SPEC, SHAPING]},
}
CONFIG_TERMS: dict[str, list[dict[str, Any]]] = {
    "alone": [RND_SPEC],
    "weighted_sum": [dict(RND_SPEC, weight=0.5)],
    "normalize": [{"name": "normalize", "term": RND_SPEC}],
    "beside_shaping": [RND_SPEC, SHAPING],
}


def rnd_in(reward: Reward) -> RND:
    return next(r for r in reward.walk() if isinstance(r, RND))


def weights(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(b, p) for b, p in zip(before, module.parameters(), strict=True))


def drive_vector(env: RewardVectorWrapper, steps: int, seed: int = 0) -> None:
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        env.step(rng.integers(0, 2, env.num_envs))


def drive_single(env: RewardWrapper, steps: int) -> None:
    env.reset(seed=0)
    for t in range(steps):
        _, _, terminated, truncated, _ = env.step(t % 2)
        if terminated or truncated:
            env.reset()


@pytest.mark.parametrize("adapter", ["sb3", "vector", "single"])
@pytest.mark.parametrize("kind", list(DESIGNS))
def test_rnd_learns_alone_and_inside_composites(kind: str, adapter: str) -> None:
    reward = build_reward(copy.deepcopy(DESIGNS[kind]))
    if adapter == "sb3":
        env: Any = RewardVecEnvWrapper(make_vec_env("CartPole-v1", n_envs=2, seed=0), reward)
    elif adapter == "vector":
        env = RewardVectorWrapper(gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync"), reward,
                                  gamma=0.99)
    else:
        env = RewardWrapper(gym.make("CartPole-v1"), reward, gamma=0.99)
    rnd = rnd_in(reward)
    predictor, target = weights(rnd.predictor), weights(rnd.target)
    if adapter == "sb3":
        model = PPO("MlpPolicy", env, n_steps=32, batch_size=64, n_epochs=1, seed=0)
        model.learn(128, callback=RewardCallback())  # 64 vector steps of 2 envs
    elif adapter == "vector":
        drive_vector(env, 64)
    else:
        drive_single(env, 64)
    assert env.evaluator.num_updates == 64 // EVERY
    assert changed(predictor, rnd.predictor), f"RND {kind} never updated under the {adapter} adapter"
    assert not changed(target, rnd.target)
    assert env.evaluator.pending_rows == 0


def test_composition_does_not_change_what_the_term_learns() -> None:
    trained = {}
    for kind, spec in DESIGNS.items():
        reward = build_reward(copy.deepcopy(spec))
        env = RewardVectorWrapper(gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync"), reward,
                                  gamma=0.99)
        drive_vector(env, 48)
        trained[kind] = weights(rnd_in(reward).predictor)
    for kind, params in trained.items():
        assert all(torch.equal(a, b) for a, b in zip(trained["alone"], params, strict=True)), kind


class Learner(FunctionReward):
    """A learned term that records when it updates and on how many rows."""

    def __init__(self, every: int, label: str) -> None:
        super().__init__(lambda b: np.zeros(b.num), label=label)
        self.update_every = every
        self.sizes: list[int] = []

    def update(self, batch):
        self.sizes.append(batch.num)
        return {"rows": float(batch.num)}


def test_each_learned_child_keeps_its_own_schedule() -> None:
    fast, slow = Learner(3, "fast"), Learner(5, "slow")
    design = WeightedSum([RunningNormalize(fast), slow, {"name": "extrinsic"}], weights=[1.0, 2.0, 1.0])
    venv = RewardVecEnvWrapper(make_vec_env("CartPole-v1", n_envs=2, seed=0), design)
    assert [lr.reward for lr in venv.evaluator.learners] == [fast, slow]
    venv.reset()
    logged: list[tuple[int, list[str]]] = []
    for t in range(1, 16):
        venv.step(np.zeros(2, dtype=np.int64))
        if venv.evaluator.update_due:
            logged.append((t, sorted(venv.evaluator.run_update())))
    assert fast.sizes == [6] * 5 and slow.sizes == [10] * 3
    assert logged == [(3, ["fast/rows"]), (5, ["slow/rows"]), (6, ["fast/rows"]), (9, ["fast/rows"]),
                      (10, ["slow/rows"]), (12, ["fast/rows"]), (15, ["fast/rows", "slow/rows"])]


def test_queued_batches_stay_bounded_over_a_long_run() -> None:
    reward = build_reward(copy.deepcopy(DESIGNS["normalize"]))
    env = RewardVectorWrapper(gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync"), reward,
                              auto_update=False)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    most = 0
    for _ in range(1000):
        env.step(rng.integers(0, 2, 2))
        most = max(most, env.evaluator.pending_rows)
    assert most <= EVERY * 2 and len(env.evaluator.learners[0].pending) == EVERY
    metrics = env.update_reward()
    assert "rnd/loss" in metrics and env.evaluator.pending_rows == 0

    venv = RewardVecEnvWrapper(make_vec_env("CartPole-v1", n_envs=2, seed=0), copy.deepcopy(DESIGNS["alone"]))
    venv.reset()
    for _ in range(1000):
        venv.step(np.zeros(2, dtype=np.int64))  # nobody runs the updates: the queue still holds EVERY steps
    assert venv.evaluator.pending_rows == EVERY * 2


def test_rewards_that_never_learn_queue_nothing() -> None:
    design = {"name": "normalize", "term": {"name": "weighted_sum", "terms": [{"name": "extrinsic"}, SHAPING]}}
    venv = RewardVecEnvWrapper(make_vec_env("CartPole-v1", n_envs=2, seed=0), design)
    venv.reward.set_discount(0.99)
    venv.reset()
    for _ in range(50):
        venv.step(np.zeros(2, dtype=np.int64))
    assert venv.evaluator.learners == [] and venv.evaluator.pending_rows == 0 and not venv.evaluator.update_due


def test_bad_update_every_is_named() -> None:
    with pytest.raises(ValueError, match=r"'fast'.*update_every=0"):
        RewardVecEnvWrapper(make_vec_env("CartPole-v1", n_envs=1), RunningNormalize(Learner(0, "fast")))


def test_relabelling_uses_the_nested_terms_current_model() -> None:
    rnd = dict(RND_SPEC, update_every=50)
    design = build_reward({"name": "weighted_sum", "terms": [{"name": "normalize", "term": rnd},
                                                               dict(SHAPING, potential={"name": "goal_distance",
                                                                                        "delta": [0]})]})
    venv = RewardVecEnvWrapper(make_vec_env("Pendulum-v1", n_envs=1, seed=0), design, extrinsic_weight=0.5)
    model = SAC("MlpPolicy", venv, learning_starts=100, buffer_size=1000, batch_size=32, seed=0,
                replay_buffer_class=RelabelingReplayBuffer, policy_kwargs={"net_arch": [16]})
    model.learn(220, callback=RewardCallback())
    assert venv.evaluator.num_updates == 4
    buf: RelabelingReplayBuffer = model.replay_buffer  # type: ignore[assignment]
    inds = np.arange(buf.pos)
    np.random.seed(0)
    before = buf._get_samples(inds).rewards.numpy().ravel()
    np.testing.assert_allclose(before, 0.5 * buf.rewards[inds, 0] + design.relabel(buf.stored(inds, 0 * inds)),
                               rtol=1e-5, atol=1e-5)
    for _ in range(10):
        venv.step(np.zeros((1, 1)))
    predictor = weights(rnd_in(design).predictor)
    venv.evaluator.run_update(all_pending=True)
    assert changed(predictor, rnd_in(design).predictor)
    after = buf._get_samples(inds).rewards.numpy().ravel()
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, 0.5 * buf.rewards[inds, 0] + design.relabel(buf.stored(inds, 0 * inds)),
                               rtol=1e-5, atol=1e-5)


def test_state_dict_of_nested_learned_terms_resumes_exactly(tmp_path: Path) -> None:
    spec = {"name": "weighted_sum", "terms": [{"name": "normalize", "term": RND_SPEC}, SHAPING]}

    def wrapped() -> tuple[RewardVectorWrapper, Reward]:
        reward = build_reward(copy.deepcopy(spec))
        return RewardVectorWrapper(gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync"), reward,
                                   gamma=0.99), reward

    env_a, a = wrapped()
    drive_vector(env_a, 3 * EVERY, seed=0)
    save_reward(a, tmp_path / "reward.pt")
    env_b, b = wrapped()
    assert changed(weights(rnd_in(a).predictor), rnd_in(b).predictor)
    load_reward_state(b, tmp_path / "reward.pt")
    assert not changed(weights(rnd_in(a).predictor), rnd_in(b).predictor)
    assert rnd_in(a).normalizer_state() == rnd_in(b).normalizer_state()
    assert (a.terms[0].mean, a.terms[0].count) == (b.terms[0].mean, b.terms[0].count)
    # both continue on the same transitions: same payouts, same updates (optimizer and generator state restored)
    paid = []
    for env in (env_a, env_b):
        env.reset(seed=1)
        rng = np.random.default_rng(1)
        paid.append([env.step(rng.integers(0, 2, 2))[1] for _ in range(40)])
    np.testing.assert_allclose(paid[0], paid[1])
    assert env_a.evaluator.num_updates == 5 and env_b.evaluator.num_updates == 2
    assert not changed(weights(rnd_in(a).predictor), rnd_in(b).predictor)


def _first(state: Any, key: str) -> Any:
    if isinstance(state, dict):
        if key in state:
            return state[key]
        for value in state.values():
            found = _first(value, key)
            if found is not None:
                return found
    return None


@pytest.mark.parametrize("kind", list(CONFIG_TERMS))
def test_robo_reward_train_updates_the_rnd_term(kind: str, tmp_path: Path) -> None:
    config = {
        "name": f"rnd_{kind}", "env": {"id": "CartPole-v1", "n_envs": 2},
        "reward": {"extrinsic_weight": 1.0, "terms": CONFIG_TERMS[kind]},
        "agent": {"algo": "PPO", "kwargs": {"n_steps": 32, "batch_size": 64, "n_epochs": 1,
                                             "policy_kwargs": {"net_arch": [16]}}},
        "budget": {"total_timesteps": 256, "checkpoint_every": 256},
        "eval": {"every": 256, "episodes": 1}, "logging": {"progress": False, "tensorboard": False},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    assert cli_main(["train", str(path), "--run-dir", str(run_dir), "--no-progress"]) == 0
    folder = run_dir / "checkpoints" / (run_dir / "checkpoints" / "latest").read_text().strip()
    state = torch.load(folder / "reward.pt", map_location="cpu", weights_only=False)["state"]
    fresh = build_reward(copy.deepcopy(RND_SPEC))
    fresh.bind(gym.spaces.Box(-np.inf, np.inf, (4,)), gym.spaces.Discrete(2), 2)
    trained = _first(state, "predictor")
    assert trained is not None, f"no RND state in the {kind} checkpoint"
    assert any(not torch.equal(v, fresh.predictor.state_dict()[k]) for k, v in trained.items())
    assert torch.equal(_first(state, "target")["0.weight"], fresh.target.state_dict()["0.weight"])
