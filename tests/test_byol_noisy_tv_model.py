"""Model-level noisy TV (fixed data, no RL): BYOL-Explore keeps paying for the TV, BYOL-Hindsight pays far less
for it, and Hindsight's code does not explain novel deterministic transitions away."""

from __future__ import annotations

import numpy as np
import pytest

from robo_reward.envs.noisy_tv.env import REMOTE_ACTION, NoisyTVEnv
from robo_reward.methods.curiosity.byol import BYOLExplore, BYOLHindsight
from robo_reward.protocol import TransitionBatch
from robo_reward.testing import evaluate_in_order


def collect(make: type[NoisyTVEnv] | object, n_envs: int, steps: int, seed: int, p_tv: float) -> list[TransitionBatch]:
    """A random walk (turns and mostly forward moves) that presses the remote with probability ``p_tv``."""
    envs = [make() for _ in range(n_envs)]  # type: ignore[operator]
    rng = np.random.default_rng(seed)
    obs = np.stack([e.reset(seed=seed * 100 + i)[0] for i, e in enumerate(envs)])
    batches = []
    for _ in range(steps):
        act = np.where(rng.random(n_envs) < p_tv, REMOTE_ACTION, rng.choice([0, 1, 2, 2, 2], n_envs))
        out = [e.step(int(a)) for e, a in zip(envs, act, strict=True)]
        nxt = np.stack([o[0] for o in out])
        term, trunc = np.array([o[2] for o in out]), np.array([o[3] for o in out])
        batches.append(TransitionBatch(obs, act, nxt, np.zeros(n_envs), term, trunc))
        obs = nxt.copy()
        for i in np.flatnonzero(term | trunc):
            obs[i] = envs[i].reset()[0]
    return batches


def raw_rewards(reward: BYOLExplore, batches: list[TransitionBatch], term: str = "raw") -> np.ndarray:
    """Step through held-out data as the adapters would (resetting beliefs at episode starts)."""
    reward.bind(reward.observation_space, reward.action_space, batches[0].num)
    return evaluate_in_order(reward, batches, term).reshape(-1)


@pytest.fixture(scope="module")
def data() -> dict[str, list[TransitionBatch]]:
    return {
        "train": collect(lambda: NoisyTVEnv("on_demand", max_steps=128), 8, 1024, 0, 0.3),
        "eval": collect(lambda: NoisyTVEnv("on_demand", max_steps=128), 8, 256, 1, 0.3),
        "familiar": collect(lambda: NoisyTVEnv("none", max_steps=128), 8, 128, 3, 0.0),
        # a layout never seen in training: larger rooms, doors elsewhere (same cells, new dynamics)
        "novel": collect(lambda: NoisyTVEnv("none", room_size=7, max_steps=128), 8, 128, 2, 0.0),
    }


def train(reward: BYOLExplore, batches: list[TransitionBatch], calls: int) -> BYOLExplore:
    reward.bind(NoisyTVEnv().observation_space, NoisyTVEnv().action_space, batches[0].num)
    flat = TransitionBatch.concat(batches)
    for _ in range(calls):
        reward.update(flat)
    return reward


def tv_levels(reward: BYOLExplore, batches: list[TransitionBatch]) -> tuple[float, float]:
    """Mean raw reward of TV transitions and of the other transitions."""
    tv = np.concatenate([b.action == REMOTE_ACTION for b in batches])
    r = raw_rewards(reward, batches)
    return float(r[tv].mean()), float(r[~tv].mean())


def tv_ratio(reward: BYOLExplore, batches: list[TransitionBatch]) -> float:
    """Mean raw reward of TV transitions over that of the other transitions."""
    tv, other = tv_levels(reward, batches)
    return tv / other


@pytest.mark.slow
def test_explore_keeps_paying_for_the_tv_and_hindsight_does_not(data: dict[str, list[TransitionBatch]]) -> None:
    explore_ratio = tv_ratio(train(BYOLExplore(normalize=False, epochs=1), data["train"], 30), data["eval"])
    assert explore_ratio >= 3.0, f"Explore's TV reward is only {explore_ratio:.2f}x its non-TV reward"

    # Hindsight's levels swing from update to update (the critic game), so they are pooled over the last updates
    # before dividing: its raw reward holds the invariance term, which can be negative, so a per-update non-TV mean
    # can sit near 0 or below it and a mean of per-update ratios says nothing (it was -1.3 here, "passing" <= 0.5x).
    hindsight = train(BYOLHindsight(normalize=False, epochs=1, negatives=7), data["train"], 20)
    levels = [tv_levels(hindsight, data["eval"])]
    for _ in range(2):
        train(hindsight, data["train"], 5)
        levels.append(tv_levels(hindsight, data["eval"]))
    tv, other = np.mean(levels, axis=0)
    detail = f"(Explore: {explore_ratio:.2f}x; per update TV, non-TV: {np.round(levels, 3).tolist()})"
    assert other > 0.05, f"Hindsight's non-TV reward {other:.3f} is no level to compare with {detail}"
    # specs/byol_hindsight.md: the TV reward falls to within about 1.5x of the non-TV level
    assert tv <= 1.5 * other, f"Hindsight's TV reward is {tv / other:.2f}x its non-TV reward {detail}"
    assert tv / other <= 0.5 * explore_ratio, f"Hindsight's TV reward is {tv / other:.2f}x its non-TV {detail}"

    # the cheating-Z guard: the code does not explain novel deterministic outcomes away
    novel = raw_rewards(hindsight, data["novel"], "rec").mean()
    familiar = raw_rewards(hindsight, data["familiar"], "rec").mean()
    assert novel >= 1.3 * familiar, f"Hindsight's novel/familiar error is only {novel / familiar:.2f}"
