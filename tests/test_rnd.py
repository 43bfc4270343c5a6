"""RND, the baseline a noisy TV defeats: familiar observations stop paying, fresh noise keeps paying."""

from __future__ import annotations

import glob

import numpy as np
import pytest

from robo_reward.checkpoint import load_reward, save_reward
from robo_reward.config import load_config
from robo_reward.envs.noisy_tv.env import REMOTE_ACTION, NoisyTVEnv
from robo_reward.methods.curiosity.rnd import RND
from robo_reward.protocol import TransitionBatch
from robo_reward.registry import make_reward


def walk(steps: int, seed: int, p_tv: float) -> TransitionBatch:
    env, rng = NoisyTVEnv("on_demand", max_steps=64), np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    rows = []
    for _ in range(steps):
        a = REMOTE_ACTION if rng.random() < p_tv else int(rng.choice([0, 1, 2, 2]))
        nxt, _, term, trunc, _ = env.step(a)
        rows.append((obs, a, nxt, term, trunc))
        obs = env.reset()[0] if term or trunc else nxt
    o, a, n, te, tr = (np.array(x) for x in zip(*rows, strict=True))
    return TransitionBatch(o, a, n, np.zeros(len(a)), te, tr)


def test_familiar_observations_stop_paying_but_noise_does_not() -> None:
    reward = make_reward("rnd", hidden=64, features=16, lr=1e-3, normalize=False)
    reward.bind(NoisyTVEnv().observation_space, NoisyTVEnv().action_space, 1)
    train = walk(2000, 0, 0.3)
    before = reward.evaluate(train).terms["rnd/raw"].mean()
    for _ in range(15):
        reward.update(train)
    held_out = walk(600, 1, 0.3)
    raw = reward.evaluate(held_out).terms["rnd/raw"]
    tv = held_out.action == REMOTE_ACTION
    assert raw[~tv].mean() < 0.5 * before
    assert raw[tv].mean() > 2.0 * raw[~tv].mean(), "fresh noise should stay novel to RND"


def test_relabel_matches_evaluate_and_freezes_the_statistics(tmp_path) -> None:
    reward = make_reward("rnd", hidden=32, features=8)
    reward.bind(NoisyTVEnv().observation_space, NoisyTVEnv().action_space, 1)
    batch = walk(50, 2, 0.2)
    reward.update(batch)
    paid = reward.evaluate(batch).total
    stats = reward.normalizer.state_dict()
    np.testing.assert_allclose(reward.relabel(batch), paid)
    assert reward.normalizer.state_dict() == stats
    loaded = load_reward(save_reward(reward, tmp_path / "rnd.pt"))
    np.testing.assert_allclose(loaded.relabel(batch), paid)


def test_errors() -> None:
    with pytest.raises(ValueError, match=">= 1"):
        RND(epochs=0)
    with pytest.raises(Exception, match="not bound"):
        RND().update(walk(2, 0, 0.0))


@pytest.mark.parametrize("path", sorted(glob.glob("configs/noisy_tv/*.yaml")))
def test_noisy_tv_configs_validate(path: str) -> None:
    cfg = load_config(path)
    assert cfg.env.id.startswith("robo_reward/NoisyTV") and cfg.reward.terms[0]["update_every"] == 128
