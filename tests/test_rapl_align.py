"""Preference alignment: the aligned encoder agrees with the hidden preference better than the unaligned one.

Rollouts are Push2D episodes of the scripted pusher with random detours around (or through) the red zone; the
oracle ranks them by the privileged preference return. After alignment on training triplets, held-out triplet
accuracy must beat 0.5 and the unaligned encoder's (paired permutation test on 600 held-out triplets, p < 0.05;
with 150 the test had too little power and its verdict moved with the CPU's float kernels: aligned 0.60 vs 0.53,
p 0.13 on one machine, while 600 give 0.64 vs 0.49, p 0.0005), and the OT reward against
the expert demo must rank 100 held-out rollouts more like the hidden return does (Spearman, by 0.1) than the
unaligned encoder's OT reward. (150 training triplets and 300 steps, as the benchmark's largest budget: with 120
and 200, or 50 held-out rollouts, the aligned Spearman moved between 0.15 and 0.54 over alignment seeds, against
0.45-0.67 here and 0.08 unaligned.)
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy import stats

import robo_reward  # noqa: F401  (registers the envs)
from robo_reward.methods.rapl.align import (
    AlignConfig,
    align_encoder,
    embedding_spread,
    triplet_accuracy,
    triplet_distances,
    triplet_loss,
)
from robo_reward.methods.rapl.data import collect_rollouts, expert_demo
from robo_reward.methods.rapl.encoder import FrameEncoder
from robo_reward.methods.rapl.pipeline import ot_returns
from robo_reward.methods.rapl.pretrain import pretrain_autoencoder
from robo_reward.preferences import PreferenceOracle, triplet_arrays

ENV = "robo_reward/Push2D-v0"


def _encoder() -> FrameEncoder:
    torch.manual_seed(0)
    return FrameEncoder(embed_dim=16, channels=(8, 16, 16))


@pytest.fixture(scope="module")
def data() -> dict[str, object]:
    torch.set_num_threads(1)
    train = collect_rollouts(ENV, 80, seed=1, frame_stride=10)
    heldout = collect_rollouts(ENV, 100, seed=2)
    oracle = PreferenceOracle(train["preference_return"], seed=0)
    triplets, equal = triplet_arrays(oracle.triplets(150))
    held = triplet_arrays(PreferenceOracle(heldout["preference_return"], seed=1).triplets(600))[0]
    return {"train": train, "heldout": heldout, "triplets": triplets, "equal": equal, "held_triplets": held,
            "expert": expert_demo(ENV)}


def test_training_lowers_the_loss_on_a_fixed_batch(data: dict) -> None:
    enc = _encoder()
    batch = data["triplets"][:4]
    videos = torch.as_tensor(data["train"]["frames"])

    def loss() -> float:
        with torch.no_grad():
            return float(triplet_loss(*triplet_distances(enc, videos, batch, 0.1, 50)))

    before = loss()
    align_encoder(enc, data["train"]["frames"], batch, cfg=AlignConfig(steps=30, batch=4, lr=1e-3))
    assert loss() < before - 0.05


def test_aligned_encoder_beats_the_unaligned_one_on_held_out_rollouts(data: dict) -> None:
    """Both start from the autoencoder-pretrained encoder, as in ``robo-reward rapl`` (pretrain.kind)."""
    unaligned = _encoder()
    pretrain_autoencoder(unaligned, data["train"]["frames"], steps=300, batch=32, seed=0)
    aligned = copy.deepcopy(unaligned)
    losses = align_encoder(aligned, data["train"]["frames"], data["triplets"], data["equal"],
                           AlignConfig(steps=300, batch=8, lr=1e-3, eps=0.1), seed=0)
    assert np.mean(losses[-20:]) < np.mean(losses[:20])
    held_frames = data["heldout"]["frames"][:, 9::10]
    acc_aligned = triplet_accuracy(aligned, held_frames, data["held_triplets"])
    acc_unaligned = triplet_accuracy(unaligned, held_frames, data["held_triplets"])
    test = stats.permutation_test((acc_aligned, acc_unaligned), lambda a, b: np.mean(a) - np.mean(b),
                                  permutation_type="samples", alternative="greater", n_resamples=2000,
                                  random_state=0)
    assert acc_aligned.mean() > 0.5
    assert test.pvalue < 0.05, (acc_aligned.mean(), acc_unaligned.mean(), test.pvalue)
    gt = data["heldout"]["preference_return"]
    rho_aligned = stats.spearmanr(gt, ot_returns(aligned, data["heldout"]["frames"], data["expert"], 0.1, 100))[0]
    rho_unaligned = stats.spearmanr(gt, ot_returns(unaligned, data["heldout"]["frames"], data["expert"], 0.1, 100))[0]
    assert rho_aligned > rho_unaligned + 0.1, (rho_aligned, rho_unaligned)


def test_embedding_spread_flags_a_collapsed_encoder(data: dict) -> None:
    frames = data["heldout"]["frames"][:4, ::10].reshape(-1, 64, 64, 3)
    net = _encoder()
    spread = embedding_spread(net, frames)
    assert 1e-4 < spread <= 2.0
    with torch.no_grad():
        net.head.weight.mul_(1e-6)
        net.head.bias.fill_(1.0)
    assert embedding_spread(net, frames) < 1e-3 * spread
    d1, d2 = triplet_distances(net, torch.as_tensor(data["train"]["frames"]), data["triplets"][:8], 0.1, 50)
    assert abs(float(triplet_loss(d1, d2)) - np.log(2.0)) < 1e-3
