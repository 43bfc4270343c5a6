"""Shared curiosity pieces: the EMA normaliser, observation encoding and standardisation, per-env splitting."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from robo_reward.methods.curiosity.base import EMANormalizer, ObsEncoder, RunningStandardizer, split_by_env
from robo_reward.protocol import SpaceMismatchError, TransitionBatch


def test_normalizer_matches_numpy_exponentially_weighted_moments(rng: np.random.Generator) -> None:
    decay = 0.9
    stream = [rng.normal(3.0, 2.0, size=8) for _ in range(40)]
    norm = EMANormalizer(decay=decay)
    for batch in stream:
        norm.observe(batch)
    # the first batch initialises both moments, each later batch enters with weight (1 - decay)
    weights = np.array([decay ** (len(stream) - 1)] + [(1 - decay) * decay ** (len(stream) - 1 - i)
                                                       for i in range(1, len(stream))])
    values = np.stack(stream)
    mean = np.average(values.mean(1), weights=weights)
    second = np.average((values**2).mean(1), weights=weights)
    assert weights.sum() == pytest.approx(1.0)
    assert norm.mean == pytest.approx(mean)
    assert norm.std == pytest.approx(np.sqrt(second - mean**2), rel=1e-6)


def test_normalizer_on_a_constant_stream_is_plain_mean_and_std() -> None:
    norm = EMANormalizer(decay=0.99)
    data = np.array([1.0, 2.0, 3.0, 4.0])
    for _ in range(50):
        norm.observe(data)
    assert norm.mean == pytest.approx(data.mean())
    assert norm.std == pytest.approx(data.std(), rel=1e-6)
    out = norm.normalize(np.array([0.0, 2.5, 4.0]))
    np.testing.assert_allclose(out, [0.0, 0.0, 1.5 / data.std()], rtol=1e-6)


def test_normalizer_does_not_explode_like_the_rwickman_variant() -> None:
    # sqrt(max(mean - square_mean, 0)) with mean 0 / square_mean 1 start gives std ~ 1e-3 and huge rewards
    norm = EMANormalizer()
    norm.observe(np.array([0.5, 0.7, 0.9]))
    assert norm.std == pytest.approx(np.std([0.5, 0.7, 0.9]), rel=1e-4)
    assert norm.normalize(np.array([0.9])).item() < 2.0


def test_scale_mode_divides_without_centering() -> None:
    norm = EMANormalizer(mode="scale")
    norm.observe(np.array([1.0, 3.0]))
    np.testing.assert_allclose(norm.normalize(np.array([1.0, 3.0])), [1.0, 3.0])


def test_obs_encoder_one_hots_small_integer_codes_and_scales_the_rest() -> None:
    space = gym.spaces.Box(0, np.array([2, 1, 3]), dtype=np.uint8)
    enc = ObsEncoder(space)
    x = enc(np.array([[2, 0, 3], [0, 1, 0]], dtype=np.uint8))
    assert enc.onehot and enc.dim == 3 + 2 + 4
    assert x.tolist() == [[0, 0, 1, 1, 0, 0, 0, 0, 1], [1, 0, 0, 0, 1, 1, 0, 0, 0]]
    cont = ObsEncoder(gym.spaces.Box(-2.0, 2.0, (2,)))
    assert cont(np.array([[2.0, -1.0]])).tolist() == [[1.0, -0.5]]
    with pytest.raises(SpaceMismatchError, match="flat Box observations"):
        ObsEncoder(gym.spaces.Dict({"a": gym.spaces.Discrete(2)}))
    with pytest.raises(SpaceMismatchError, match="4 values, the bound space has 3"):
        enc(np.zeros((1, 4)))


def test_running_standardizer_matches_numpy(rng: np.random.Generator) -> None:
    data = rng.normal(size=(300, 4)) * [1, 2, 3, 0] + [0, 1, 2, 5]
    stats = RunningStandardizer(4)
    for part in np.array_split(data, 7):
        stats.observe(torch.as_tensor(part, dtype=torch.float32))
    np.testing.assert_allclose(stats.mean.numpy(), data.mean(0), atol=1e-5)
    np.testing.assert_allclose(stats.var.numpy(), data.var(0), rtol=1e-4, atol=1e-6)
    out = stats(torch.as_tensor(data[:5], dtype=torch.float32))
    assert torch.all(out[:, 3] == 0) and out.abs().max() <= stats.clip


def test_split_by_env_keeps_time_order() -> None:
    ids = np.array([0, 1, 2, 0, 2, 0])
    b = TransitionBatch(np.arange(6)[:, None], np.zeros(6), np.arange(6)[:, None], np.zeros(6),
                        np.zeros(6, bool), np.zeros(6, bool), env_ids=ids)
    s = split_by_env(b)
    assert s.env_ids.tolist() == [0, 1, 2]
    assert s.index[s.valid].tolist() == [0, 3, 5, 1, 2, 4]
    assert s.valid.sum(1).tolist() == [3, 1, 2]
