"""RAPL's frame encoders: the small CNN, and a frozen open_clip tower loaded from a local checkpoint with a
trained projector (a tiny open_clip model the test builds and saves; nothing is downloaded)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from robo_reward.methods.rapl.align import AlignConfig, align_encoder
from robo_reward.methods.rapl.encoder import ClipEncoder, FrameEncoder, build_encoder, embed

TINY = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16,
                                        "head_width": 16},
        "text_cfg": {"context_length": 8, "vocab_size": 100, "width": 16, "heads": 2, "layers": 1}}


@pytest.fixture()
def tiny_clip(tmp_path: Path) -> Path:
    open_clip = pytest.importorskip("open_clip")
    config = tmp_path / "rapl-tiny-test.json"
    config.write_text(json.dumps(TINY))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    checkpoint = tmp_path / "tiny.pt"
    torch.save(open_clip.create_model("rapl-tiny-test").state_dict(), checkpoint)
    return checkpoint


def test_clip_encoder_keeps_the_backbone_frozen_and_trains_the_projector(tiny_clip: Path) -> None:
    torch.set_num_threads(1)
    enc = build_encoder({"kind": "clip", "arch": "rapl-tiny-test", "checkpoint": str(tiny_clip), "embed_dim": 8})
    assert isinstance(enc, ClipEncoder) and enc.input_size == 32 and enc.prep.kind == "imagenet"
    frames = np.random.default_rng(0).integers(0, 255, (6, 4, 64, 64, 3), dtype=np.uint8)
    assert enc(torch.as_tensor(frames[0])).shape == (4, 8)
    backbone = {k: v.clone() for k, v in enc.backbone.state_dict().items()}
    projector = enc.projector.weight.detach().clone()
    align_encoder(enc, frames, np.array([[0, 1, 2], [3, 4, 5]]), cfg=AlignConfig(steps=3, batch=2, lr=1e-2, eps=0.05))
    assert all(torch.equal(v, enc.backbone.state_dict()[k]) for k, v in backbone.items())
    assert not torch.equal(projector, enc.projector.weight)
    assert not enc.backbone.training


def test_missing_checkpoint_and_bad_inputs_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ClipEncoder.from_open_clip("rapl-tiny-test", str(tmp_path / "none.pt"))
    with pytest.raises(ValueError, match="normalize"):
        FrameEncoder(normalize="zscore")
    with pytest.raises(ValueError, match=r"\(N, 64, 64, 3\)"):
        FrameEncoder()(torch.zeros(2, 32, 32, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="kind"):
        build_encoder({"kind": "resnet"})


def test_cnn_is_seeded_and_normalisation_is_a_setting() -> None:
    a, b = build_encoder({"kind": "cnn", "embed_dim": 8}, seed=3), build_encoder({"kind": "cnn", "embed_dim": 8}, seed=3)
    x = torch.as_tensor(np.random.default_rng(1).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8))
    assert torch.equal(a(x), b(x))
    plain = FrameEncoder(embed_dim=8, normalize="none")
    net = FrameEncoder(embed_dim=8, normalize="imagenet")
    net.load_state_dict(plain.state_dict())
    assert not torch.allclose(plain(x), net(x))


def test_embed_keeps_leading_dims_and_chunks_without_mixing_frames() -> None:
    enc = build_encoder({"kind": "cnn", "embed_dim": 8}, seed=0).eval()
    videos = np.random.default_rng(2).integers(0, 255, (3, 5, 64, 64, 3), dtype=np.uint8)
    out = embed(enc, videos, batch=4)
    assert out.shape == (3, 5, 8)
    with torch.no_grad():
        for i in range(3):
            torch.testing.assert_close(out[i], enc(torch.as_tensor(videos[i])), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(embed(enc, videos[1]), out[1], rtol=1e-5, atol=1e-6)


def test_projector_only_alignment_keeps_the_cnn_backbone_frozen() -> None:
    torch.set_num_threads(1)
    enc = build_encoder({"kind": "cnn", "embed_dim": 8}, seed=0)
    frames = np.random.default_rng(0).integers(0, 255, (6, 4, 64, 64, 3), dtype=np.uint8)
    conv = {k: v.clone() for k, v in enc.conv.state_dict().items()}
    head = enc.head.weight.detach().clone()
    align_encoder(enc, frames, np.array([[0, 1, 2], [3, 4, 5]]),
                  cfg=AlignConfig(steps=3, batch=2, lr=1e-2, eps=0.05, train="projector"))
    assert all(torch.equal(v, enc.conv.state_dict()[k]) for k, v in conv.items())
    assert not torch.equal(head, enc.head.weight)
    assert all(p.requires_grad for p in enc.parameters()), "alignment must give back the caller's grad flags"
    align_encoder(enc, frames, np.array([[0, 1, 2], [3, 4, 5]]),
                  cfg=AlignConfig(steps=3, batch=2, lr=1e-2, eps=0.05, train="all"))
    assert not all(torch.equal(v, enc.conv.state_dict()[k]) for k, v in conv.items())
    first = next(enc.conv.parameters())
    first.requires_grad_(False)  # a layer the caller froze stays frozen under train=all, and stays unchanged
    before = first.detach().clone()
    align_encoder(enc, frames, np.array([[0, 1, 2], [3, 4, 5]]),
                  cfg=AlignConfig(steps=2, batch=2, lr=1e-2, eps=0.05, train="all"))
    assert torch.equal(before, first) and not first.requires_grad
    assert all(p.requires_grad for p in enc.parameters() if p is not first)
    with pytest.raises(IndexError):  # flags come back after an error inside training, too
        align_encoder(enc, frames, np.array([[0, 1, 99]]), cfg=AlignConfig(steps=1, train="projector"))
    assert [p.requires_grad for p in enc.parameters()] == [p is not first for p in enc.parameters()]
    with pytest.raises(ValueError, match=r"align\.train"):
        align_encoder(enc, frames, np.array([[0, 1, 2]]), cfg=AlignConfig(steps=1, train="backbone"))
    with pytest.raises(ValueError, match="projector head"):
        align_encoder(torch.nn.Linear(3, 2), frames, np.array([[0, 1, 2]]), cfg=AlignConfig(steps=1, train="projector"))


@pytest.mark.parametrize("train", ["all", "projector", "none"])
def test_rlhf_trains_the_encoder_parameters_it_is_told_to_and_learns_the_ranking(train: str) -> None:
    from robo_reward.methods.rapl.rlhf import RLHFReward, train_rlhf

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    videos = rng.integers(0, 60, (9, 3, 64, 64, 3), dtype=np.uint8)
    videos[:3, :, :, :, 0] = 200  # the preferred videos are red
    model = RLHFReward(build_encoder({"kind": "cnn", "embed_dim": 8}, seed=0), 8, hidden=16)
    conv = {k: v.clone() for k, v in model.encoder.conv.state_dict().items()}
    head = model.encoder.head.weight.detach().clone()
    triplets = np.array([[i, 3 + i, 6 + i] for i in range(3)])
    losses = train_rlhf(model, videos, triplets, steps=40, batch=3, lr=3e-3, train=train)
    assert np.mean(losses[-5:]) < losses[0]
    conv_same = all(torch.equal(v, model.encoder.conv.state_dict()[k]) for k, v in conv.items())
    assert conv_same == (train != "all")
    assert torch.equal(head, model.encoder.head.weight) == (train == "none")
    assert all(p.requires_grad for p in model.parameters()), "RLHF must give back the caller's grad flags"
    with pytest.raises(ValueError, match=r"rlhf\.train"):
        train_rlhf(model, videos, triplets, steps=1, train="backbone")
