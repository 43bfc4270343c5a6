"""The Dopamine reward's cached pixel path (embeddings reused across steps, anchors cached per episode, the hop
GRM's first layer split per state, the ensemble's heads stacked) gives the rewards of a from-scratch computation
that re-encodes every image of every query with the nets' training-time forward passes."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from robo_reward.methods.dopamine import DopamineReward
from robo_reward.methods.dopamine.labels import hop_label, incremental_update
from robo_reward.methods.dopamine.progress import LearnedGRM, LearnedProgressHead
from robo_reward.protocol import TransitionBatch

CAMS = ("front", "wrist")
SIZE = 24
N_ENVS, STEPS = 3, 7
RESETS = {(3, 1), (5, 0), (5, 2)}  # (step, env): that env's episode ends at this step and a new one begins


def _encode(model, images: np.ndarray) -> torch.Tensor:
    return model.net.encode(torch.from_numpy(np.ascontiguousarray(images)))


def _state(model, frame: dict[str, np.ndarray]) -> torch.Tensor:
    return torch.stack([_encode(model, frame[c][None])[0] for c in CAMS])[None]


def _head_phi(model, start: torch.Tensor, goal: torch.Tensor, state: torch.Tensor) -> np.ndarray:
    m = torch.sigmoid(model.net.phi(start, goal, state)).numpy().astype(np.float64)
    return np.clip(m.mean(1) - model.beta * m.std(1), 0.0, 1.0)


def _net_hop(model, start: torch.Tensor, goal: torch.Tensor, before: torch.Tensor, after: torch.Tensor) -> np.ndarray:
    return model.net.hop(start, goal, before, after, torch.zeros(1, dtype=torch.long)).numpy().astype(np.float64)


def _reference_phi(model, episode: list[dict[str, np.ndarray]], goal_image: np.ndarray,
                   start_image: np.ndarray | None) -> list[dict[str, float]]:
    """Fused Phi* (and each mode) after every step of one env's episode, every embedding computed afresh."""
    start_image = episode[0]["front"] if start_image is None else start_image
    out, phi_i = [], np.zeros(1)
    with torch.no_grad():
        for t in range(1, len(episode)):
            start, goal = _encode(model, start_image[None]), _encode(model, goal_image[None])
            s0, prev, cur = _state(model, episode[0]), _state(model, episode[t - 1]), _state(model, episode[t])
            if isinstance(model, LearnedProgressHead):
                p0, pp, pc = (_head_phi(model, start, goal, s) for s in (s0, prev, cur))
                h_i, h_f, h_b = hop_label(pp, pc), hop_label(p0, pc), hop_label(np.ones(1), pc)
            else:
                goal_state = goal[:, None].repeat(1, len(CAMS), 1)
                h_i, h_f, h_b = (_net_hop(model, start, goal, b, cur) for b in (prev, s0, goal_state))
            h_i, h_f, h_b = (np.clip(h, -1.0, 1.0) for h in (h_i, h_f, h_b))
            phi_i = incremental_update(phi_i, h_i)
            fused = np.clip((phi_i + h_f + 1.0 + h_b) / 3.0, 0.0, 1.0)
            out.append({"phi": float(fused[0]), "phi_incremental": float(phi_i[0]), "phi_forward": float(h_f[0]),
                        "phi_backward": float(1.0 + h_b[0])})
    return out


@pytest.mark.parametrize(("kind", "start"), [("hop", "reference"), ("hop", "episode"), ("phi", "episode")])
def test_cached_pixel_path_matches_from_scratch_rewards(kind: str, start: str) -> None:
    rng = np.random.default_rng(0)
    model = (LearnedGRM(CAMS, "front", image_size=SIZE, seed=1) if kind == "hop"
             else LearnedProgressHead(CAMS, "front", image_size=SIZE, seed=1))
    torch.manual_seed(2)
    with torch.no_grad():  # a random init's heads are nearly constant; spread them so stale inputs show
        for p in model.net.parameters():
            p.mul_(3.0)
    ref_start, ref_goal = (rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(2))
    reward = DopamineReward(model=model, cameras=CAMS, gamma=0.9, start=start, gold="none")
    reward.potential.anchor_images = (ref_start, ref_goal)
    image = gym.spaces.Box(0, 255, (SIZE, SIZE, 3), np.uint8)
    reward.bind(gym.spaces.Dict({c: image for c in CAMS}), gym.spaces.Box(-1, 1, (1,)), N_ENVS)

    def frame() -> dict[str, np.ndarray]:
        return {c: rng.integers(0, 256, (N_ENVS, SIZE, SIZE, 3), dtype=np.uint8) for c in CAMS}

    obs = frame()
    reward.reset(obs, np.ones(N_ENVS, dtype=bool))
    episodes: list[list[list[dict[str, np.ndarray]]]] = [[[{c: obs[c][i] for c in CAMS}]] for i in range(N_ENVS)]
    got: list[list[dict[str, float]]] = [[] for _ in range(N_ENVS)]
    for t in range(1, STEPS + 1):
        next_obs = frame()
        done = np.array([(t, i) in RESETS for i in range(N_ENVS)])
        out = reward.evaluate(TransitionBatch(obs, np.zeros((N_ENVS, 1)), next_obs, np.zeros(N_ENVS),
                                              terminated=np.zeros(N_ENVS, bool), truncated=done))
        for i in range(N_ENVS):
            episodes[i][-1].append({c: next_obs[c][i] for c in CAMS})
            got[i].append({k: float(out.terms[f"dopamine/{k}"][i])
                           for k in ("phi", "phi_incremental", "phi_forward", "phi_backward")})
        obs = next_obs
        if done.any():
            obs = {c: v.copy() for c, v in obs.items()}
            fresh = frame()
            for c in CAMS:
                obs[c][done] = fresh[c][done]
            for i in np.flatnonzero(done):
                episodes[i].append([{c: obs[c][i] for c in CAMS}])
            reward.reset(obs, done)
    for i in range(N_ENVS):
        want = [row for ep in episodes[i]
                for row in _reference_phi(model, ep, ref_goal, ref_start if start == "reference" else None)]
        assert len(want) == len(got[i]) == STEPS
        for t, (w, g) in enumerate(zip(want, got[i], strict=True)):
            for key in w:
                assert g[key] == pytest.approx(w[key], abs=1e-4), (kind, start, i, t, key)


def test_cached_first_layer_and_stacked_heads_follow_weight_updates() -> None:
    """The inference caches are rebuilt when an optimiser step or load_state_dict writes the weights."""
    rng = np.random.default_rng(0)
    views = {c: rng.integers(0, 256, (4, SIZE, SIZE, 3), dtype=np.uint8) for c in CAMS}
    for model in (LearnedGRM(CAMS, image_size=SIZE), LearnedProgressHead(CAMS, image_size=SIZE)):
        anchors = model.embed_anchors(views["front"][:2])
        states = model.embed_states(views)
        if isinstance(model, LearnedGRM):
            before = model.hop(anchors[:1], anchors[1:], states[:2], states[2:])
        else:
            before = model.progress(anchors[:1], anchors[1:], states)
        other = type(model)(CAMS, image_size=SIZE, seed=5)
        model.net.load_state_dict(other.net.state_dict())
        states = model.embed_states(views)
        if isinstance(model, LearnedGRM):
            after = model.hop(anchors[:1], anchors[1:], states[:2], states[2:])
            fresh = other.hop(anchors[:1], anchors[1:], other.embed_states(views)[:2], other.embed_states(views)[2:])
        else:
            after = model.progress(anchors[:1], anchors[1:], states)
            fresh = other.progress(anchors[:1], anchors[1:], other.embed_states(views))
        assert not np.allclose(before, after)
        np.testing.assert_allclose(after, fresh, atol=1e-6)
