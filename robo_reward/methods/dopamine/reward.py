"""Dopamine-RL's reward: fused GRM progress as a potential, r = r_gold + gamma * Phi*(s') - Phi*(s).

Per rollout, Phi*(s_0) = 0 and three query modes estimate progress at every step (Robo-Dopamine, Sec. 3.1.3):

* incremental: h = H(s_{t-1}, s_t); Phi_I(s_t) = Phi_I(s_{t-1}) + (1 - Phi_I) h for h >= 0, + Phi_I h for h < 0;
* forward: Phi_F(s_t) = H(s_0, s_t);
* backward: Phi_B(s_t) = 1 + H(goal, s_t), with the reference goal image in every BEFORE slot.

Phi* is their mean (or, with ``consistency=True``, the paper's consistency-weighted update), clamped to [0, 1]
(the reference does not clamp: Phi_F can be negative and Phi_B can exceed 1, so clamping is a reconstruction).
The shaping goes through the core's :class:`~robo_reward.shaping.PotentialShaping` with the learner's gamma,
Phi = 0 on true termination and the real Phi(s') on truncation (the paper is silent on episode ends).
r_gold = 1 the first time in an episode that Phi*(s') >= 1 - delta (``gold="threshold"``, delta = 0.05), or when
the env reports success (``gold="success"``, the fidelity option). Paying r_gold once per episode is a
reconstruction: the paper's episodes end on success, and a per-step bonus could be farmed where they do not.
With ``gold="threshold"`` the underlying task is "reach Phi* >= 0.95", not the env's own success: where the env
terminates on a stricter success test, a policy can take r_gold and hover short of it (measured on Reach with
exact progress from a behaviour-cloned start: success fell from 0.6 to 0 while progress stayed ~0.95, see
``benchmarks/dopamine/reach_80k/NOTE.md``); ``gold="success"`` makes the env's success the underlying reward.

Ablations: ``modes`` (any subset of the three), ``shaping="naive"`` (Phi(s') - Phi(s), the "semantic trap"),
``shaping="progress"`` (no PBRS: r = r_gold + Phi*(s')), and the GRM checkpoint (zero-shot or adapted).

Cost: one encoder call (the new state's views, all envs) and one hop call (all envs, all modes) per vector step;
an episode's own START anchor is read from its first state's embedding, not encoded again.
With a per-state progress head (``progress.LearnedProgressHead``) the hop call is one progress call: every mode's
hop is the label formula on the cached phi(s_{t-1}), phi(s_0) and phi(goal) = 1 against the new phi(s_t), so
Phi_F = Phi_B = (pessimistic) phi(s_t) up to phi(s_0), and the incremental mode reproduces it by the label round
trip instead of accumulating hop noise (the paper's incremental update inflates zero-mean noise towards 0.5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from robo_reward.methods.dopamine.labels import hop_label, incremental_update
from robo_reward.methods.dopamine.progress import ProgressModel
from robo_reward.potentials import Potential
from robo_reward.protocol import Obs, Reward, RewardOutput, SpaceMismatchError, TransitionBatch
from robo_reward.shaping import PotentialShaping

MODES = ("incremental", "forward", "backward")


def fuse(phi_i: np.ndarray | None, phi_f: np.ndarray | None, phi_b: np.ndarray | None) -> np.ndarray:
    """Multi-perspective fusion: the mean of the available progress estimates."""
    parts = [p for p in (phi_i, phi_f, phi_b) if p is not None]
    if not parts:
        raise ValueError("fusion needs at least one progress mode")
    return np.mean(parts, axis=0)


def consistency_update(phi_prev: np.ndarray, phi_f: np.ndarray, phi_b: np.ndarray, delta_incremental: np.ndarray,
                       *, alpha: float = 2.0, eps: float = 0.05) -> np.ndarray:
    """The paper's optional check: Phi*_t = Phi*_{t-1} + (w/2)(mean(Phi_F, Phi_B) - Phi*_{t-1} + dPhi_I).

    w = exp(-alpha * Delta^2) with Delta = |Phi_B - Phi_F| / (mean + eps) falls when the anchored estimates
    disagree (out-of-distribution inputs, reward hacking). alpha and eps are not given by the paper.
    """
    mean = 0.5 * (phi_f + phi_b)
    disagreement = np.abs(phi_b - phi_f) / (mean + eps)
    w = np.exp(-alpha * disagreement**2)
    return phi_prev + 0.5 * w * (mean - phi_prev + delta_incremental)


class ProgressPotential(Potential):
    """Phi*(s): fused GRM progress over an episode (stateful; per-env caches of s_0, s_{t-1} and Phi)."""

    stateless = False

    def __init__(self, model: ProgressModel, *, modes: Sequence[str] = MODES, consistency: bool = False,
                 alpha: float = 2.0, eps: float = 0.05, clamp: bool = True,
                 anchors: tuple[np.ndarray, np.ndarray] | None = None, start: str = "reference") -> None:
        if start not in ("reference", "episode"):
            raise ValueError(f"start must be 'reference' (the demo's first frame) or 'episode' (the episode's own "
                             f"first frame), got {start!r}")
        self.start = start
        bad = set(modes) - set(MODES)
        if bad or not modes:
            raise ValueError(f"modes must be a non-empty subset of {MODES}, got {list(modes)}")
        if consistency and not {"forward", "backward"} <= set(modes):
            raise ValueError("the consistency check needs both the forward and backward modes")
        self.model, self.modes, self.consistency = model, tuple(m for m in MODES if m in modes), consistency
        self.alpha, self.eps, self.clamp = alpha, eps, clamp
        self.per_state = bool(getattr(model, "per_state", False))
        self.anchor_images = anchors
        self.calls = 0
        self.last: dict[str, np.ndarray] = {}

    def bind(self, observation_space: gym.Space, num_envs: int) -> None:
        if self.model.needs_privileged:
            pass  # the oracle reads info["progress"], no images
        elif not isinstance(observation_space, gym.spaces.Dict) or not set(self.model.cameras) <= set(observation_space):
            have = list(observation_space) if isinstance(observation_space, gym.spaces.Dict) else observation_space
            raise SpaceMismatchError(f"Dopamine's progress model reads cameras {list(self.model.cameras)} from a "
                                     f"Dict observation, the env gives {have}; use obs_mode='state+pixels' with "
                                     "those cameras")
        if self.model.needs_privileged:
            self._start, self._goal = self.model.embed_anchors(np.zeros(1), np.zeros(1)), \
                self.model.embed_anchors(np.zeros(1), np.ones(1))
        else:
            if self.anchor_images is None:
                raise ValueError("a learned progress model needs reference START/END images (reward.reference)")
            start, goal = self.anchor_images
            self._start = self.model.embed_anchors(np.asarray(start)[None])
            self._goal = self.model.embed_anchors(np.asarray(goal)[None])
        self._goal_state = self.model.anchor_as_state(self._goal)
        self.num_envs = num_envs
        self._init: np.ndarray | None = None
        self._prev: np.ndarray | None = None
        self._starts: np.ndarray | None = None
        self._phi_i = np.zeros(num_envs)
        self._phi = np.zeros(num_envs)

    def _embed(self, obs: Obs, rows: np.ndarray | slice, progress: np.ndarray | None) -> np.ndarray:
        self.calls += 1
        if self.model.needs_privileged:
            return self.model.embed_states({}, progress)
        views = {c: obs[c][rows] for c in self.model.cameras}  # type: ignore[index]
        return self.model.embed_states(views, progress)

    def _store(self, cache: np.ndarray | None, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
        if cache is None:
            cache = np.zeros((self.num_envs, *values.shape[1:]), dtype=values.dtype)
        cache[rows] = values
        return cache

    def _episode_start(self, obs: Obs, rows: np.ndarray, states: np.ndarray) -> None:
        """Cache each new episode's START anchor, read from its first state's embedding where the model keeps
        the anchor camera's view there (no second encoder pass over the same image)."""
        if self.model.needs_privileged:
            emb = self.model.embed_anchors(np.zeros(len(rows)), np.zeros(len(rows)))
        else:
            from_state = self.model.anchor_of_state(states)
            emb = from_state if from_state is not None else \
                self.model.embed_anchors(np.asarray(obs[self.model.anchor_camera])[rows])  # type: ignore[index]
        self._starts = self._store(self._starts, rows, emb)

    def _start_rows(self, ids: np.ndarray) -> np.ndarray:
        if self.start == "reference":
            return self._start
        assert self._starts is not None
        return self._starts[ids]

    def initial(self, obs: Obs, env_mask: np.ndarray) -> np.ndarray:
        rows = np.flatnonzero(env_mask)
        progress = np.zeros(len(rows)) if self.model.needs_privileged else None
        emb = self._embed(obs, rows, progress)
        if self.start == "episode":
            self._episode_start(obs, rows, emb)
        if self.per_state:
            emb = self.model.progress(self._start_rows(rows), self._goal, emb)  # type: ignore[attr-defined]
        self._init = self._store(self._init, rows, emb)
        self._prev = self._store(self._prev, rows, emb)
        self._phi_i[rows] = 0.0
        self._phi[rows] = 0.0
        return np.zeros(len(rows))

    def next(self, batch: TransitionBatch) -> np.ndarray:
        ids = batch.env_ids
        progress = None
        if self.model.needs_privileged:
            progress = np.array([info["progress"] for info in batch.infos], dtype=np.float64)
        emb = self._embed(batch.next_obs, slice(None), progress)
        assert self._init is not None and self._prev is not None
        if self.per_state:
            emb = self.model.progress(self._start_rows(ids), self._goal, emb)  # type: ignore[attr-defined]
            self.calls += 1
            before = {"incremental": self._prev[ids], "forward": self._init[ids], "backward": np.ones(len(ids))}
            h = {m: np.clip(hop_label(before[m], emb), -1.0, 1.0) for m in self.modes}
        else:
            before = {"incremental": self._prev[ids], "forward": self._init[ids],
                      "backward": np.broadcast_to(self._goal_state, (len(ids), *self._goal_state.shape[1:]))}
            start = self._start_rows(ids)
            if self.start == "episode":
                start = np.concatenate([start] * len(self.modes))
            hops = self.model.hop(start, self._goal, np.concatenate([before[m] for m in self.modes]),
                                  np.concatenate([emb] * len(self.modes)))
            self.calls += 1
            h = dict(zip(self.modes, np.split(np.clip(hops, -1.0, 1.0), len(self.modes)), strict=True))
        phi_i = incremental_update(self._phi_i[ids], h["incremental"]) if "incremental" in h else None
        phi_f = h.get("forward")
        phi_b = 1.0 + h["backward"] if "backward" in h else None
        if self.consistency:
            assert phi_f is not None and phi_b is not None
            delta_i = phi_i - self._phi_i[ids] if phi_i is not None else np.zeros(len(ids))
            fused = consistency_update(self._phi[ids], phi_f, phi_b, delta_i, alpha=self.alpha, eps=self.eps)
        else:
            fused = fuse(phi_i, phi_f, phi_b)
        if self.clamp:
            fused = np.clip(fused, 0.0, 1.0)
        if phi_i is not None:
            self._phi_i[ids] = phi_i
        self._phi[ids] = fused
        self._prev[ids] = emb
        self.last = {k: v for k, v in (("incremental", phi_i), ("forward", phi_f), ("backward", phi_b))
                     if v is not None}
        return fused

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])


class DopamineReward(Reward):
    """Robo-Dopamine's reward r_gold + gamma * Phi*(s') - Phi*(s) (arXiv 2512.23703); see the module docstring.

    :param model: progress model spec: ``{"name": "oracle"}``, ``{"name": "grm", "checkpoint": path}`` or
        ``{"name": "http", "url": ...}`` (or a :class:`ProgressModel`).
    :param cameras: the views of a state (the env must render them).
    :param reference: the demo whose first/last ``anchor_camera`` frames are the START/END anchors:
        ``{"dataset": <Minari id or folder>, "episode": 0}`` (not needed by the oracle).
    :param start: the START anchor: ``"reference"`` (the demo's first frame, the paper's prompt) or
        ``"episode"`` (the episode's own first frame, so a progress measured from the episode's start is
        computable from the query; a departure, the default for a per-state progress head).
    :param scale: multiplies the dense part, i.e. the potential is ``scale * Phi*`` (still potential-based; the
        paper's Phi* is in [0, 1], which over 100-step episodes gives PPO a faint signal next to r_gold).
    :param gold_reward: r_gold. Set it to ``scale`` to keep the paper's ratio of r_gold to the potential (the
        whole reward is then ``scale`` times the paper's, which changes no optimal policy); with the default 1 and
        a large ``scale``, the step that ends an episode on success pays 1 - scale * Phi*(s) < 0 (Phi = 0 on
        true termination), measured on Reach in ``benchmarks/dopamine/reach_learned_gold_80k/NOTE.md``.
    """

    name = "dopamine"
    stateless = False

    def __init__(self, *, model: ProgressModel | Mapping[str, Any] | None = None,
                 cameras: Sequence[str] = ("front", "wrist"), anchor_camera: str = "front",
                 modes: Sequence[str] = MODES, consistency: bool = False, shaping: str = "pbrs",
                 gold: str = "threshold", threshold: float = 0.95, gold_reward: float = 1.0, scale: float = 1.0,
                 reference: Mapping[str, Any] | None = None, gamma: float | None = None,
                 start: str | None = None, label: str = "dopamine") -> None:
        from robo_reward.methods.dopamine.models import build_progress_model, reference_anchors

        if shaping not in ("pbrs", "naive", "progress"):
            raise ValueError(f"shaping must be 'pbrs', 'naive' or 'progress', got {shaping!r}")
        if gold not in ("threshold", "success", "none"):
            raise ValueError(f"gold must be 'threshold', 'success' or 'none', got {gold!r}")
        self.model = build_progress_model(model or {"name": "oracle"}, cameras=cameras, anchor_camera=anchor_camera)
        anchors = reference_anchors(reference, anchor_camera) if reference is not None else None
        if start is None:
            start = "episode" if getattr(self.model, "per_state", False) else "reference"
        self.potential = ProgressPotential(self.model, modes=modes, consistency=consistency, anchors=anchors,
                                           start=start)
        self.shaping_mode, self.gold, self.threshold, self.gold_reward = shaping, gold, threshold, gold_reward
        self.scale = float(scale)
        self.shaping = PotentialShaping(self.potential, gamma=gamma, naive=shaping == "naive", label="shaping")
        self.needs_infos = self.model.needs_privileged or gold == "success"
        self.name = label
        self._paid = np.zeros(0, dtype=bool)

    def children(self) -> list[Reward]:
        return [self.shaping]

    def bind(self, observation_space: gym.Space, action_space: gym.Space, num_envs: int) -> None:
        super().bind(observation_space, action_space, num_envs)
        self._paid = np.zeros(num_envs, dtype=bool)

    def reset(self, obs: Obs, env_mask: np.ndarray) -> None:
        super().reset(obs, env_mask)
        self._paid[env_mask] = False

    def evaluate(self, batch: TransitionBatch) -> RewardOutput:
        shaped = self.shaping.evaluate(batch)
        phi = shaped.terms["shaping/phi"]
        if self.gold == "threshold":
            reached = phi >= self.threshold
        elif self.gold == "success":
            reached = np.array([bool(info.get("is_success", False)) for info in batch.infos])
        else:
            reached = np.zeros(batch.num, dtype=bool)
        first = reached & ~self._paid[batch.env_ids]
        self._paid[batch.env_ids] |= reached
        gold = np.where(first, self.gold_reward, 0.0)
        dense = self.scale * (phi if self.shaping_mode == "progress" else shaped.total)
        total = gold + dense
        terms = {self.name: total, f"{self.name}/gold": gold, f"{self.name}/shaping": dense,
                 f"{self.name}/phi": phi}
        terms.update({f"{self.name}/phi_{k}": v for k, v in self.potential.last.items()})
        return RewardOutput(total, terms)

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        return self.evaluate(batch).total

    def state_dict(self) -> dict[str, Any]:
        return {"potential": self.potential.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.potential.load_state_dict(state["potential"])
