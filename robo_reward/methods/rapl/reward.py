"""RAPL's reward for policy learning: per-frame OT matching of a rollout against a preferred expert demo.

For a finished rollout o_1..T and the expert demo o^E_1..T', with C_tj = 1 - cos(phi(o_t), phi(o^E_j)) and M* the
entropic OT plan, the reward of step t is r_t = -sum_j M*_tj C_tj (ROT / Sinkhorn imitation; Tian et al., ICLR
2024). Each row of M* sums to 1/T, so sum_t r_t = -D(o, o^E). A model saved with several demos scores a rollout
against the closest one, as the reference evaluation does (:func:`~.sinkhorn.closest_demo_rewards`). The reward is non-Markovian, so it is an
:class:`~robo_reward.episodic.EpisodicReward`: it is computed when the episode ends and written back to the
episode's transitions by the learner's episodic buffer (``agent.algo: EpisodicSAC`` or ``EpisodicPPO``).

Small-scale build: the policy may act on the low-dimensional state (``env.policy_obs: state``) while this reward
reads the rendered 64x64 frames (``key``), the fastest faithful path on a CPU: the reward is still computed from
pixels only. Frame ``t`` is the observation s'_t after step t.

:class:`RLHFEpisodeReward` pays the RLHF baseline's learned per-frame reward through the same path, so the two
are compared with the same learner.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from robo_reward.episodic import EpisodicReward
from robo_reward.methods.rapl.encoder import build_encoder, embed
from robo_reward.methods.rapl.rlhf import RLHFReward
from robo_reward.methods.rapl.sinkhorn import closest_demo_rewards
from robo_reward.protocol import SpaceMismatchError, TransitionBatch


def save_reward_model(path: str | os.PathLike[str], *, kind: str, encoder: torch.nn.Module,
                      expert_frames: np.ndarray | None = None, head: torch.nn.Module | None = None,
                      eps: float = 0.1, iters: int = 100, meta: Mapping[str, Any] | None = None) -> None:
    """Save an encoder (and the expert demo(s) for ``kind="ot"``, the MLP head for ``kind="rlhf"``) for the rewards.

    :param expert_frames: one demo (T, H, W, 3) or several (K, T, H, W, 3) uint8 videos.
    """
    if kind not in ("ot", "rlhf"):
        raise ValueError(f"kind={kind!r}; use 'ot' or 'rlhf'")
    if kind == "ot" and expert_frames is None:
        raise ValueError("an OT reward model needs expert_frames")
    if expert_frames is not None and np.ndim(expert_frames) not in (4, 5):
        raise ValueError(f"expert_frames has shape {np.shape(expert_frames)}; give (T, H, W, 3) or (K, T, H, W, 3)")
    if kind == "rlhf" and head is None:
        raise ValueError("an RLHF reward model needs its head")
    config: dict[str, Any] = dict(encoder.config)  # type: ignore[arg-type]
    torch.save({"kind": kind, "encoder_config": config, "encoder": encoder.state_dict(),
                "head": None if head is None else head.state_dict(),
                "expert_frames": None if expert_frames is None else np.asarray(expert_frames, np.uint8),
                "eps": float(eps), "iters": int(iters), "meta": dict(meta or {})}, path)


def load_reward_model(path: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """Read a file written by :func:`save_reward_model`, checking it holds a ``kind`` model."""
    if not os.path.isfile(path):
        raise FileNotFoundError(path)
    data = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(data, dict) or data.get("kind") != kind:
        got = data.get("kind") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path} holds a {got!r} reward model, not {kind!r}; train it with `robo-reward rapl`")
    encoder = build_encoder(data["encoder_config"])
    encoder.load_state_dict(data["encoder"])
    data["encoder_module"] = encoder.eval()
    return data


class _FrameReward(EpisodicReward):
    def __init__(self, key: str, scale: float) -> None:
        super().__init__(scale=scale)
        self.key = key

    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        space = observation_space[self.key] if isinstance(observation_space, gym.spaces.Dict) and \
            self.key in observation_space.spaces else None
        shape = tuple(space.shape or ()) if space is not None else ()
        if len(shape) != 3 or shape[-1] != 3:
            raise SpaceMismatchError(f"reward '{self.name}' reads RGB frames from observation key {self.key!r}, "
                                     f"but the env's observation space is {observation_space}; use an env with "
                                     "image observations (Push2D: env.kwargs.obs_mode=dict)")

    def keep(self, batch: TransitionBatch) -> np.ndarray:
        assert isinstance(batch.next_obs, dict)
        return np.asarray(batch.next_obs[self.key])

    def state_dict(self) -> dict[str, Any]:
        return {}


class OTReward(_FrameReward):
    """RAPL's per-frame OT reward of a rollout against the (closest) expert demo, paid at episode end.

    :param checkpoint: a reward model file from ``robo-reward rapl`` (an aligned or unaligned encoder and the
        expert demos' frames).
    :param key: the observation key holding the RGB frames.
    :param eps: entropic regularisation (default: the one the encoder was aligned with).
    :param iters: Sinkhorn iterations.
    :param scale: multiplies r_t (``scale = T`` makes r_t the plan-weighted mean cost of frame t, in [-2, 0]).
    """

    name = "rapl_ot"

    def __init__(self, checkpoint: str, *, key: str = "pixels", eps: float | None = None, iters: int = 100,
                 scale: float = 1.0) -> None:
        super().__init__(key, scale)
        model = load_reward_model(checkpoint, "ot")
        self.checkpoint, self.encoder = checkpoint, model["encoder_module"]
        self.eps, self.iters = float(model["eps"] if eps is None else eps), int(iters)
        demos = np.asarray(model["expert_frames"])
        self.experts = embed(self.encoder, demos[None] if demos.ndim == 4 else demos)  # (K, T', d)

    def episode_rewards(self, kept: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            rollout = embed(self.encoder, kept).unsqueeze(0)
            return closest_demo_rewards(rollout, self.experts, self.eps, self.iters)[0].double().numpy()


class RLHFEpisodeReward(_FrameReward):
    """The RLHF baseline's learned per-frame reward r(phi(o_t)), through the same episode-end path as RAPL's.

    :param checkpoint: an RLHF reward model file from ``robo-reward rapl``.
    :param key: the observation key holding the RGB frames.
    :param scale: multiplies r_t.
    """

    name = "rapl_rlhf"

    def __init__(self, checkpoint: str, *, key: str = "pixels", scale: float = 1.0) -> None:
        super().__init__(key, scale)
        model = load_reward_model(checkpoint, "rlhf")
        self.checkpoint = checkpoint
        self.net = RLHFReward(model["encoder_module"], int(model["encoder_config"]["embed_dim"]))
        self.net.head.load_state_dict(model["head"])
        self.net.eval()

    def episode_rewards(self, kept: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.net(torch.as_tensor(kept)).double().numpy()
