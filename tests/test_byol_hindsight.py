"""BYOL-Explore and BYOL-Hindsight: reward aggregation, the two-state toy, the min-max game, adapters, persistence."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import robo_reward  # noqa: F401
from robo_reward.checkpoint import load_reward, save_reward
from robo_reward.methods.curiosity.base import split_by_env
from robo_reward.methods.curiosity.byol import BYOLExplore, BYOLHindsight
from robo_reward.methods.curiosity.byol_model import (
    Sequences,
    WorldModel,
    WorldModelTrainer,
    normalized_l2,
    unit,
)
from robo_reward.protocol import RewardError, SpaceMismatchError, TransitionBatch
from robo_reward.registry import make_reward
from robo_reward.testing import check_reward, evaluate_in_order

OBS = gym.spaces.Box(0, 3, (6,), dtype=np.uint8)
ACT = gym.spaces.Discrete(3)
SMALL = {"hidden": 32, "embed": 16, "belief": 16}


def random_batches(rng: np.random.Generator, steps: int, n_envs: int, done_at: dict[int, int]) -> list[TransitionBatch]:
    """Time-ordered vector steps with a coherent obs chain; ``done_at[t] = env`` ends that env's episode at t."""
    obs = rng.integers(0, 4, (n_envs, 6)).astype(np.uint8)
    out = []
    for t in range(steps):
        nxt = rng.integers(0, 4, (n_envs, 6)).astype(np.uint8)
        term = np.zeros(n_envs, bool)
        if t in done_at:
            term[done_at[t]] = True
        out.append(TransitionBatch(obs, rng.integers(0, 3, n_envs), nxt, np.zeros(n_envs), term, np.zeros(n_envs, bool)))
        obs = nxt.copy()
        if term.any():
            obs[term] = rng.integers(0, 4, (int(term.sum()), 6))
    return out


# -- the intrinsic reward sums exactly the predictions that target o_{t+1} ---------------------------------------
def test_step_reward_sums_every_open_loop_prediction_of_the_next_observation(rng: np.random.Generator) -> None:
    reward = BYOLExplore(horizon=3, normalize=False, **SMALL)
    reward.bind(OBS, ACT, 2)
    batches = random_batches(rng, 9, 2, done_at={4: 1})
    step_time = evaluate_in_order(reward, batches, "raw")

    flat = TransitionBatch.concat(batches)
    split = split_by_env(flat)
    idx, valid = torch.from_numpy(split.index), torch.from_numpy(split.valid)
    seq = Sequences(obs=reward.obs_encoder(flat.obs)[idx], next_obs=reward.obs_encoder(flat.next_obs)[idx],
                    action=torch.nn.functional.one_hot(torch.from_numpy(flat.action)[idx], 3).float(),
                    done=torch.from_numpy(flat.done)[idx], valid=valid, score=valid,
                    start=torch.zeros(2, 16), has_start=torch.zeros(2, dtype=torch.bool))
    with torch.no_grad():
        roll = reward.model.rollout(seq, reward.model.beliefs(seq))
    loss = (roll.rec * roll.mask).numpy()  # l(p, q) at [env, p, q - 1]
    expected = np.zeros((9, 2))
    for e in range(2):
        for t in range(9):
            expected[t, e] = sum(loss[e, t - q + 1, q - 1] for q in range(1, 4) if t - q + 1 >= 0)
    np.testing.assert_allclose(step_time, expected, rtol=1e-4, atol=1e-6)
    # nothing crosses env 1's episode boundary: its first step after the reset has only the 1-step prediction
    assert roll.mask[1, 5].tolist() == [True, True, True] and roll.mask[1, 3].tolist() == [True, True, False]
    assert roll.mask[1, 4].tolist() == [True, False, False]


def test_evaluating_without_a_reset_is_refused(rng: np.random.Generator) -> None:
    reward = BYOLExplore(**SMALL)
    reward.bind(OBS, ACT, 2)
    b = random_batches(rng, 1, 2, done_at={0: 0})[0]
    with pytest.raises(RewardError, match=r"no belief for envs \[0, 1\]"):
        reward.evaluate(b)
    reward.reset(b.obs, np.ones(2, bool))
    reward.evaluate(b)  # env 0's episode ends here
    with pytest.raises(RewardError, match=r"no belief for envs \[0\]"):
        reward.evaluate(b)


# -- two-state toy: s' is A or B at random from fixed inputs ------------------------------------------------------
def toy_sequences(n: int, gen: torch.Generator, dim: int = 8) -> tuple[Sequences, torch.Tensor, torch.Tensor]:
    start, a_obs, b_obs = torch.eye(dim)[0], torch.eye(dim)[1] + torch.eye(dim)[2], torch.eye(dim)[3]
    coin = torch.rand(n, generator=gen) < 0.5
    nxt = torch.where(coin[:, None], a_obs, b_obs)
    seq = Sequences(obs=start.expand(n, 1, dim), next_obs=nxt[:, None], action=torch.ones(n, 1, 1),
                    done=torch.zeros(n, 1, dtype=torch.bool), valid=torch.ones(n, 1, dtype=torch.bool),
                    score=torch.ones(n, 1, dtype=torch.bool), start=torch.zeros(n, 16),
                    has_start=torch.zeros(n, dtype=torch.bool))
    return seq, a_obs, b_obs


@pytest.mark.parametrize("hindsight", [False, True])
def test_two_state_toy(hindsight: bool) -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = WorldModel(8, 1, hindsight=hindsight, horizon=1, hidden=32, embed=16, belief=16, z_dim=4)
    trainer = WorldModelTrainer(model, lr=3e-3, target_ema=0.999, generator=gen)
    losses = []
    for _ in range(400):
        seq, a_obs, b_obs = toy_sequences(128, gen)
        losses.append(trainer.step(seq)["rec"])
    seq, a_obs, b_obs = toy_sequences(512, gen)
    with torch.no_grad():
        e_a, e_b = model.target(a_obs[None])[0], model.target(b_obs[None])[0]
        _, rec, _ = trainer.losses(seq)
    floor = 2 - float(torch.sqrt(2 * (1 + e_a @ e_b)))
    assert floor > 0.05, "the target embeddings of A and B collapsed onto each other"
    if hindsight:
        assert float(rec) < 0.05 * floor, f"Hindsight loss {float(rec):.4f} should vanish (floor {floor:.4f})"
    else:
        assert float(rec) == pytest.approx(floor, rel=0.1), f"Explore loss {float(rec):.4f} vs floor {floor:.4f}"


# -- the min-max game ---------------------------------------------------------------------------------------------
def coded_sequences(n: int, seed: int) -> Sequences:
    """One-step sequences whose future is a function of the present, so context-dependent codes carry I(Z; b, a)."""
    gen = torch.Generator().manual_seed(seed)
    obs = (torch.rand(n, 1, 6, generator=gen) < 0.5).float()
    action = torch.nn.functional.one_hot(torch.randint(0, 3, (n, 1), generator=gen), 3).float()
    return Sequences(obs=obs, next_obs=obs.flip(-1), action=action, done=torch.zeros(n, 1, dtype=torch.bool),
                     valid=torch.ones(n, 1, dtype=torch.bool), score=torch.ones(n, 1, dtype=torch.bool),
                     start=torch.zeros(n, 16), has_start=torch.zeros(n, dtype=torch.bool))


def critic_step(seed: int, flipped: bool) -> tuple[float, float, float, dict[str, float], float]:
    """One ``WorldModelTrainer.step`` whose world-model step is inert (lr 0, target frozen), so what changes is the
    critic's doing. Returns L_inv before and after (same draws), dL_inv/d log-scale, the step's metrics and how far
    the critic's log-scale (a parameter that enters L_inv only) moved."""
    torch.manual_seed(seed)
    model = WorldModel(6, 3, hindsight=True, horizon=1, hidden=32, embed=16, belief=16, z_dim=4)
    with torch.no_grad():
        model.generator[-1].weight.normal_(0.0, 1.0)  # codes that depend on (b, a, w'), so there is MI to find
    gen = torch.Generator()
    trainer = WorldModelTrainer(model, lr=0.0, critic_lr=1e-2, target_ema=1.0, negatives=15, generator=gen)
    if flipped:
        trainer.critic_ascent = False
    seq = coded_sequences(64, seed)

    def invariance() -> torch.Tensor:
        gen.manual_seed(1)  # the step below draws the same codes and negatives
        return trainer.losses(seq)[2]

    before = invariance()
    slope = torch.autograd.grad(before, model.critic_log_scale)[0].item()
    scale, world = model.critic_log_scale.item(), [p.detach().clone() for p in trainer.world_params]
    gen.manual_seed(1)
    metrics = trainer.step(seq)
    assert all(torch.equal(a, b) for a, b in zip(world, trainer.world_params, strict=True))
    return before.item(), invariance().item(), slope, metrics, model.critic_log_scale.item() - scale


def test_one_critic_step_raises_the_invariance_estimate_and_a_flipped_one_lowers_it() -> None:
    """Spec unit check: the trainer's critic step ascends L_inv; the single-optimiser bug (a minimising critic)
    descends it. The critic's objective also holds its predictor's BYOL loss, so L_inv itself is compared between
    the honest and the flipped step from the same start, and over seeds."""
    changes = {False: [], True: []}
    for seed in range(5):
        after = {}
        for flipped in (False, True):
            before, after[flipped], slope, metrics, moved = critic_step(seed, flipped)
            assert metrics["critic_inv"] == pytest.approx(before, abs=1e-6)  # the step scored what we measured
            assert moved * slope * (-1 if flipped else 1) > 0, "the log-scale moved against the critic's goal"
            changes[flipped].append(after[flipped] - before)
        assert after[False] > after[True], f"seed {seed}: honest {after[False]:.4f} vs flipped {after[True]:.4f}"
    assert np.mean(changes[False]) > 0 > np.mean(changes[True]), changes


@pytest.mark.parametrize("hindsight", [False, True])
def test_target_encoder_moves_toward_the_online_encoder_by_one_minus_ema(hindsight: bool) -> None:
    """phi <- ema * phi + (1 - ema) * theta after every trainer step, with theta the freshly updated encoder."""
    torch.manual_seed(0)
    model = WorldModel(6, 3, hindsight=hindsight, horizon=1, hidden=32, embed=16, belief=16, z_dim=4)
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(0.5 * torch.randn_like(p))  # online and target differ from the start
    trainer = WorldModelTrainer(model, lr=1e-2, target_ema=0.9, generator=torch.Generator().manual_seed(0))
    phi = [p.detach().clone() for p in model.target_encoder.parameters()]
    gap = sum(float((t - p.detach()).norm()) for t, p in zip(phi, model.encoder.parameters(), strict=True))
    trainer.step(coded_sequences(32, 0))
    theta = [p.detach() for p in model.encoder.parameters()]
    assert not any(torch.equal(a, b) for a, b in zip(phi, theta, strict=True))
    for old, new, online in zip(phi, model.target_encoder.parameters(), theta, strict=True):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * online)
    assert sum(float((t - p).norm()) for t, p in zip(model.target_encoder.parameters(), theta, strict=True)) < gap
    assert all(not p.requires_grad for p in model.target_encoder.parameters())


def test_byol_reward_passes_its_target_ema_to_the_trainer() -> None:
    reward = BYOLExplore(target_ema=0.95, **SMALL)
    reward.bind(OBS, ACT, 1)
    assert reward.trainer.target_ema == 0.95


def reliance_on_codes(critic_ascent: bool, steps: int = 300, seed: int = 0) -> float:
    """Train Hindsight where o' is a deterministic function of o (16 starts), so everything Z could tell the
    reconstructor is predictable from the belief. Returns how much the reconstruction leans on the codes: its loss
    with the codes shuffled across tuples minus its loss with each tuple's own code."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    dim, n_starts = 24, 16
    starts = torch.eye(dim)[:n_starts]
    targets = (torch.rand(n_starts, dim, generator=gen) < 0.3).float()
    model = WorldModel(dim, 1, hindsight=True, horizon=1, hidden=64, embed=16, belief=16, z_dim=8)
    trainer = WorldModelTrainer(model, lr=1e-3, inv_weight=1.0, generator=gen)
    trainer.critic_ascent = critic_ascent

    def batch(n: int) -> Sequences:
        pick = torch.randint(0, n_starts, (n,), generator=gen)
        return Sequences(obs=starts[pick][:, None], next_obs=targets[pick][:, None], action=torch.ones(n, 1, 1),
                         done=torch.zeros(n, 1, dtype=torch.bool), valid=torch.ones(n, 1, dtype=torch.bool),
                         score=torch.ones(n, 1, dtype=torch.bool), start=torch.zeros(n, 16),
                         has_start=torch.zeros(n, dtype=torch.bool))

    for _ in range(steps):
        trainer.step(batch(128))
    with torch.no_grad():
        seq = batch(512)
        roll = model.rollout(seq, model.beliefs(seq), gen)
        shuffled = roll.z[torch.randperm(len(roll.z), generator=gen)]
        own = normalized_l2(model.reconstructor(torch.cat([roll.context, roll.z], -1)), roll.target).mean()
        other = normalized_l2(model.reconstructor(torch.cat([roll.context, shuffled], -1)), roll.target).mean()
    return float(other - own)


@pytest.mark.slow
def test_the_critic_really_maximises() -> None:
    honest, flipped = reliance_on_codes(True), reliance_on_codes(False)
    assert flipped > 0.1, f"with a minimising critic the reconstruction should copy the future from Z ({flipped:.3f})"
    assert honest < 0.2 * flipped, f"the maximising critic let the reconstruction lean on Z by {honest:.3f}"


# -- adapters, determinism, persistence ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["byol_explore", "byol_hindsight", "rnd"])
def test_seeded_runs_through_the_sb3_wrapper_are_identical(name: str) -> None:
    rewards = check_reward(lambda: make_reward(name, update_every=8, hidden=32, **(
        {"embed": 16, "belief": 16} if name != "rnd" else {"features": 8})),
        lambda: gym.make("robo_reward/NoisyTVOnDemand-v0", max_steps=20), n_envs=2, steps=30)
    assert rewards.shape == (30, 2) and (rewards >= 0).all()


def test_ppo_trains_the_world_model_online_and_logs_streams_apart() -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from robo_reward.sb3 import RewardCallback, RewardVecEnvWrapper

    venv = DummyVecEnv([lambda: gym.make("robo_reward/NoisyTVOnDemand-v0", max_steps=40)] * 2)
    venv.seed(0)
    env = RewardVecEnvWrapper(venv, {"name": "byol_hindsight", "update_every": 32, "coef": 0.5, **SMALL},
                              extrinsic_weight=1.0)
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=32, n_epochs=1, seed=0, device="cpu")
    callback = RewardCallback()
    model.learn(192, callback=callback)  # 3 rollouts of 32 vector steps x 2 envs
    assert env.evaluator.num_updates == 3
    keys = set(callback.episodes[0])
    assert {"reward/extrinsic", "reward/byol_hindsight", "reward/byol_hindsight/raw",
            "reward/byol_hindsight/rec", "reward/byol_hindsight/inv"} <= keys
    ep = callback.episodes[0]
    assert ep["reward/byol_hindsight"] == pytest.approx(0.5 * ep["reward/byol_hindsight/normalized"])


@pytest.mark.parametrize("cls", [BYOLExplore, BYOLHindsight])
def test_save_and_load_reproduce_the_reward(cls: type[BYOLExplore], tmp_path, rng: np.random.Generator) -> None:
    reward = make_reward(cls.name, **SMALL)
    reward.bind(OBS, ACT, 2)
    batches = random_batches(rng, 12, 2, done_at={})
    evaluate_in_order(reward, batches, "raw")
    reward.update(TransitionBatch.concat(batches))
    path = save_reward(reward, tmp_path / "r.pt")
    loaded = load_reward(path)
    loaded.bind(OBS, ACT, 2)
    np.testing.assert_array_equal(evaluate_in_order(reward, batches, "normalized"),
                                  evaluate_in_order(loaded, batches, "normalized"))
    other = cls(hidden=32, embed=8, belief=16)
    other.bind(OBS, ACT, 2)
    with pytest.raises(RewardError, match="sizes"):
        other.load_state_dict(reward.state_dict())


def test_bad_spaces_and_arguments_are_refused() -> None:
    with pytest.raises(SpaceMismatchError, match="flat Box observations"):
        BYOLExplore().bind(gym.spaces.Dict({"a": OBS}), ACT, 1)
    with pytest.raises(ValueError, match="horizon"):
        BYOLExplore(horizon=0).bind(OBS, ACT, 1)
    with pytest.raises(ValueError, match=">= 0"):
        BYOLExplore(coef=-1.0)
    with pytest.raises(ValueError, match="negatives"):
        BYOLHindsight(negatives=0)
    BYOLHindsight(**SMALL).bind(OBS, gym.spaces.Box(-1, 1, (2,)), 1)  # continuous actions are fine


def test_normalized_l2_is_two_minus_two_cosine() -> None:
    a, b = torch.randn(5, 7), unit(torch.randn(5, 7))
    np.testing.assert_allclose(normalized_l2(a, b), 2 - 2 * torch.cosine_similarity(a, b), atol=1e-6)
