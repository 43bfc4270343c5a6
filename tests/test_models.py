"""Learned reward models: numpy fast path equals torch, follows training, saves and loads."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from robo_reward.models import MLPReward, NumpyInference
from robo_reward.protocol import RewardError, SpaceMismatchError, TransitionBatch

OBS, ACT = gym.spaces.Box(-1, 1, (5,)), gym.spaces.Box(-1, 1, (2,))


def batch(rng: np.random.Generator, n: int = 6) -> TransitionBatch:
    return TransitionBatch(rng.normal(size=(n, 5)), rng.normal(size=(n, 2)), rng.normal(size=(n, 5)), np.zeros(n),
                           np.zeros(n, bool), np.zeros(n, bool))


def torch_rewards(reward: MLPReward, b: TransitionBatch) -> np.ndarray:
    with torch.no_grad():
        return reward.forward(b).numpy()


def test_numpy_inference_matches_torch_and_follows_updates(rng) -> None:
    reward = MLPReward(hidden=(16, 16))
    reward.bind(OBS, ACT, 1)
    b = batch(rng)
    np.testing.assert_allclose(reward(b), torch_rewards(reward, b), rtol=1e-5, atol=1e-6)
    opt = torch.optim.SGD(reward.module.parameters(), lr=0.5)
    loss = reward.forward(b).pow(2).mean()
    loss.backward()
    opt.step()
    np.testing.assert_allclose(reward(b), torch_rewards(reward, b), rtol=1e-5, atol=1e-6)
    reward.module[0].weight = torch.nn.Parameter(torch.zeros_like(reward.module[0].weight))
    np.testing.assert_allclose(reward(b), torch_rewards(reward, b), rtol=1e-5, atol=1e-6)
    reward.module[2].weight.data = torch.ones_like(reward.module[2].weight)
    np.testing.assert_allclose(reward(b), torch_rewards(reward, b), rtol=1e-5, atol=1e-6)
    reward.module[0].bias.data = torch.ones_like(reward.module[0].bias)  # only a bias replaced
    np.testing.assert_allclose(reward(b), torch_rewards(reward, b), rtol=1e-5, atol=1e-6)


def test_wide_nets_stay_on_torch(rng) -> None:
    reward = MLPReward(hidden=(256,))
    reward.bind(OBS, ACT, 1)
    assert reward._numpy is None
    b = batch(rng)
    np.testing.assert_allclose(reward(b), torch_rewards(reward, b), rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="supports Linear"):
        NumpyInference(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.GELU()))


def test_state_dict_round_trip_and_mismatch(rng) -> None:
    a, b_ = MLPReward(seed=1), MLPReward(seed=2)
    a.bind(OBS, ACT, 1)
    b_.bind(OBS, ACT, 1)
    x = batch(rng)
    assert not np.allclose(a(x), b_(x))
    b_.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a(x), b_(x))
    other = MLPReward(hidden=(8,))
    other.bind(OBS, ACT, 1)
    with pytest.raises(RewardError, match="checkpoint does not match"):
        other.load_state_dict(a.state_dict())
    with pytest.raises(SpaceMismatchError, match="observation space"):
        a.bind(gym.spaces.Box(-1, 1, (4,)), ACT, 1)
    with pytest.raises(SpaceMismatchError, match="Box"):
        MLPReward().bind(gym.spaces.Discrete(3), ACT, 1)


def test_numpy_inference_buffers_do_not_leak_between_calls(rng) -> None:
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8), torch.nn.ReLU(),
                              torch.nn.Linear(8, 2))
    fast = NumpyInference(net)
    xs = [rng.normal(size=(n, 4)).astype(np.float32) for n in (3, 1, 3, 0, 5)]
    outs = [fast(x) for x in xs]
    with torch.no_grad():
        for x, out in zip(xs, outs, strict=True):  # earlier results are not overwritten by later calls
            np.testing.assert_allclose(out, net(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-6)
    head = torch.nn.Sequential(torch.nn.Linear(4, 1))
    scores = NumpyInference(head).scores(xs[0])
    assert scores.dtype == np.float64 and scores.shape == (3,)
    with torch.no_grad():
        np.testing.assert_allclose(scores, head(torch.from_numpy(xs[0]))[:, 0].numpy(), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        head[0].bias.zero_()
    np.testing.assert_allclose(NumpyInference(head).scores(xs[0]), xs[0] @ head[0].weight.detach().numpy()[0], rtol=1e-5)


def test_mlp_reward_single_input_and_linear_net(rng) -> None:
    reward = MLPReward(hidden=(), inputs=("next_obs",))
    reward.bind(OBS, ACT, 1)
    b = batch(rng, n=4)
    assert reward.features(b).dtype == np.float32
    out = reward.evaluate(b)
    assert out.total.dtype == np.float64 and list(out.terms) == ["mlp"]
    np.testing.assert_allclose(out.total, torch_rewards(reward, b), rtol=1e-5, atol=1e-6)
