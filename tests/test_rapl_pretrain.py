"""Autoencoder pretraining of RAPL's encoder: it learns the frames, spreads the embeddings, and every method of the
pipeline starts from the same pretrained weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import robo_reward  # noqa: F401  (registers the envs)
from robo_reward.cli import main
from robo_reward.methods.rapl.align import embedding_spread
from robo_reward.methods.rapl.data import collect_rollouts
from robo_reward.methods.rapl.encoder import ClipEncoder, FrameEncoder
from robo_reward.methods.rapl.pipeline import RAPLPipelineConfig
from robo_reward.methods.rapl.pretrain import FrameDecoder, pretrain_autoencoder
from robo_reward.methods.rapl.reward import load_reward_model

ROOT = Path(__file__).resolve().parents[1]


def _encoder() -> FrameEncoder:
    torch.manual_seed(0)
    return FrameEncoder(embed_dim=16, channels=(8, 16, 16))


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    torch.set_num_threads(1)
    return collect_rollouts("robo_reward/Push2D-v0", 12, seed=3, frame_stride=5)["frames"]


def test_pretraining_reconstructs_the_frames_and_spreads_the_embeddings(frames: np.ndarray) -> None:
    flat = frames.reshape(-1, 64, 64, 3)
    random_init = _encoder()
    net = _encoder()
    losses = pretrain_autoencoder(net, frames, steps=300, batch=32, seed=0)
    assert np.mean(losses[-10:]) < 0.25 * np.mean(losses[:10]), (losses[:3], losses[-3:])
    assert not net.training
    spread_random, spread_pretrained = embedding_spread(random_init, flat), embedding_spread(net, flat)
    assert spread_pretrained > 5 * spread_random, (spread_random, spread_pretrained)
    decoder = FrameDecoder(net)
    assert decoder(net(torch.as_tensor(flat[:2]))).shape == (2, 3, 64, 64)


def test_pretraining_is_seeded(frames: np.ndarray) -> None:
    a, b = _encoder(), _encoder()
    pretrain_autoencoder(a, frames, steps=5, seed=1)
    pretrain_autoencoder(b, frames, steps=5, seed=1)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name
    c = _encoder()
    pretrain_autoencoder(c, frames, steps=5, seed=2)
    assert not torch.equal(a.head.weight, c.head.weight)


def test_bad_inputs_are_named(frames: np.ndarray) -> None:
    clip = ClipEncoder(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 4)), 4, embed_dim=4, input_size=8)
    with pytest.raises(ValueError, match=r"pretrain\.kind: none"):
        pretrain_autoencoder(clip, frames)
    with pytest.raises(ValueError, match="no frames"):
        pretrain_autoencoder(_encoder(), frames[:0])
    with pytest.raises(ValueError, match="multiple of 16"):
        FrameDecoder(FrameEncoder(image_size=66))
    with pytest.raises(ValueError, match=r"pretrain\.kind=none"):
        RAPLPipelineConfig(encoder={"kind": "clip", "arch": "ViT-B-32", "checkpoint": "x.pt"},
                           pretrain={"kind": "autoencoder"})


def test_every_method_starts_from_the_pretrained_encoder(tmp_path: Path) -> None:
    common = ["--seeds", "1", "--set", "budgets=[6]", "--set", "rollouts.train=12", "--set", "rollouts.heldout=8",
              "--set", "rollouts.transfer=0", "--set", "rollouts.eval_triplets=10", "--set", "align.steps=1",
              "--set", "rlhf.steps=1", "--set", "eval_iters=20", "--set", "align.lr=1e-9", "--set", "rlhf.lr=1e-9"]
    config = str(ROOT / "configs/rapl/pipeline.yaml")
    assert main(["rapl", config, "--out", str(tmp_path / "random"), *common, "--set", "pretrain.kind=none"]) == 0
    assert main(["rapl", config, "--out", str(tmp_path / "ae"), *common, "--set", "pretrain.kind=autoencoder",
                 "--set", "pretrain.steps=20"]) == 0
    weights = {}
    for run in ("random", "ae"):
        models = tmp_path / run / "models" / "seed0"
        weights[run] = {m: load_reward_model(models / f"{m}_6.pt", "ot" if m != "rlhf" else "rlhf")["encoder"]
                        for m in ("unaligned", "rapl", "rlhf")}
    first = "conv.0.weight"
    for method in ("unaligned", "rapl", "rlhf"):
        w = weights["ae"][method][first]
        assert not torch.allclose(w, weights["random"][method][first], atol=1e-4), method
        torch.testing.assert_close(w, weights["ae"]["unaligned"][first], atol=1e-6, rtol=0)
    results = pd.read_csv(tmp_path / "ae" / "results.csv").set_index("method")
    assert results.loc["unaligned", "pretrain_loss"] > 0
    assert np.isnan(pd.read_csv(tmp_path / "random" / "results.csv").set_index("method").loc["unaligned",
                                                                                               "pretrain_loss"])


def test_a_folder_measured_with_other_settings_is_not_extended(tmp_path: Path) -> None:
    common = ["--seeds", "1", "--out", str(tmp_path / "run"), "--set", "budgets=[6]", "--set", "rollouts.train=12",
              "--set", "rollouts.heldout=8", "--set", "rollouts.transfer=0", "--set", "rollouts.eval_triplets=10",
              "--set", "align.steps=1", "--set", "rlhf.steps=1", "--set", "eval_iters=20", "--set", "pretrain.kind=none"]
    config = str(ROOT / "configs/rapl/pipeline.yaml")
    assert main(["rapl", config, *common]) == 0
    rows = len(pd.read_csv(tmp_path / "run" / "results.csv"))
    assert main(["rapl", config, *common, "--set", "pretrain.kind=autoencoder", "--set", "seeds=[0, 1]",
                 "--seeds", "2"]) == 2
    assert len(pd.read_csv(tmp_path / "run" / "results.csv")) == rows
    assert main(["rapl", config, *common, "--set", "budgets=[6, 7]"]) == 0
    assert len(pd.read_csv(tmp_path / "run" / "results.csv")) == 2 * rows
