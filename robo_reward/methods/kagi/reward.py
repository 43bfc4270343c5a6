"""KAGI's reward: waypoints proposed once per episode, lifted to 3D, tracked with a monotone index.

Lee et al., arXiv 2407.10341. Per the paper, each timestep is paid the sparse success reward where it is
positive and a dense reward measuring progress along the proposed waypoints otherwise. The exact dense equation
is not published: the one here is the spec's **reconstruction** (``specs/kagi.md``):

* waypoints ``w_0..w_{K-1}``; the tracked point ``p`` is the end effector before contact and the object after;
* the index ``k`` advances (one waypoint per step) when ``|p - w_k| < tau``, or when ``p`` has passed ``w_k``:
  it lies beyond the plane through ``w_k`` normal to the next segment and within ``pass_fraction`` of that
  segment's length of ``w_k`` (see the departures below); entering the after-contact part of a pick-and-place
  also needs the grasp, and a grasp anywhere in the pre-contact part jumps ``k`` to the first after-contact
  waypoint; if the object is not held during that part (and is not resting at the last waypoint, where it is
  released) it has dropped and ``k`` regresses to 0, the pre-grasp segment (a push holds nothing, so its index
  never regresses);
* ``d_k = |w_k - w_{k-1}|`` with ``w_{-1} = p`` at reset, and
  ``r_dense = -1 + (k + 1 - min(1, |p - w_k| / d_k)) / K`` in [-1, 0], capped at 0 once every waypoint is reached;
* distances are measured in the top view's pixel plane plus the side view's height:
  ``|a - b| = sqrt(|uv_a - uv_b|^2 + (lambda (h_a - h_b))^2)``, with ``uv`` the top-image pixel of the point's
  foot on the table and ``lambda = height_weight *`` the top camera's pixels per metre at the table;
* ``r = 1`` on success (the env's sparse reward is positive), else ``r_dense``: success strictly dominates.

Departures from the paper, and why:

* **Where the images come from.** The protocol hands a reward observations only. At each reset the reward
  rebuilds the episode's start state in a private copy of the task (``gymnasium.make`` of ``env_id`` and
  ``env_kwargs``, reset with the observed grip, cube and goal positions as reset options) and renders the top
  and side views with depth and camera matrices there. The policy's observations and the replay buffer stay
  image-free, nothing renders per step, and replayed demos get proposals the same way. The oracle reads the
  privileged positions from that same copy (the env's state vector). Distractors and the cube's yaw, not
  in the state vector's reset options, come from the copy's own seeded sampler.
* **Grasp** is read from the state vector, not from contacts, so it is batched numpy: *grasped* (to enter the
  after-contact part) when the finger gap is within ``grasp_gap_slack`` of the cube's width and the cube's
  centre within ``grasp_radius`` of the grip point; *held* (its loss is a drop) while the cube's centre stays
  within ``drop_radius`` of the grip point and the fingers are not opened wider than the cube. The looser
  second test keeps a squeeze that momentarily changes the gap from counting as a drop.
* **Failure ends.** The dense term is negative, so an episode that ends by failing (the cube knocked off the
  table, ``terminated`` without success) would escape it; such a step pays ``-1 / (1 - gamma)``, the value of
  staying at the floor ``-1`` forever (``failure_penalty: false`` turns this off).
* **Advancing under keypoint error.** With the radius test alone, a waypoint a VLM misplaces by more than
  ``tau`` is never reached, and the index stalls there for the rest of the episode (measured: 5 px noise
  against tau = 4 px turned the reward's correlation with progress along the expert negative). Two rules,
  both path-following practice rather than the paper's, keep the index moving with the behaviour: the pass
  test above (a waypoint switch at the perpendicular plane), and, for pick-and-place, the grasp itself as the
  signal that the contact keypoint was reached, whatever its pixel error. ``pass_fraction: 0`` and
  ``grasp_jump: false`` restore the radius test alone.
* **Fallback.** A proposal the parser rejects (:class:`~.proposer.ProposalError`) makes that episode pay the
  sparse reward alone (1 on success, else 0); fallbacks are counted (:attr:`fallbacks`) and logged.

Relabelling never calls the proposer: :meth:`transition_state` exposes, per env, the episode's scored
waypoints and anchor, the index before the step, and the grasp and success flags at s'; a relabelling replay
buffer stores them beside each transition and :meth:`relabel` recomputes the index and reward from them and
the stored s'.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol, cast

import gymnasium as gym
import numpy as np

from robo_reward.methods.kagi.proposer import (
    AFTER_CONTACT,
    TASKS,
    CameraLike,
    KeypointProposer,
    Proposal,
    ProposalError,
    Scene,
    View,
    build_proposer,
)
from robo_reward.protocol import Obs, Reward, RewardError, RewardOutput, SpaceMismatchError, TransitionBatch

log = logging.getLogger(__name__)

INSTRUCTIONS = {"pick_place": "pick up the {colour} cube and place it on the green pad",
                "push": "push the {colour} cube onto the green disc"}


def lift(camera: Any, depth: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Pixels ``(N, 2)`` of a view to world points ``(N, 3)`` through its depth image and camera matrices."""
    uv = np.atleast_2d(np.asarray(uv, dtype=np.float64))
    cols = np.clip(np.rint(uv[:, 0]).astype(int), 0, depth.shape[1] - 1)
    rows = np.clip(np.rint(uv[:, 1]).astype(int), 0, depth.shape[0] - 1)
    return np.asarray(camera.unproject(uv, depth[rows, cols].astype(np.float64)))


class TaskEnvLike(Protocol):
    """What :class:`TaskScene` reads of a tabletop task (``robo_reward.envs.tasks``' pick-place and push envs)."""

    STATE_FIELDS: tuple[tuple[str, int], ...]
    half: float
    goal: np.ndarray
    goal_tolerance: float
    grip_pos: np.ndarray
    object_pos: np.ndarray
    rest_on_pad_z: float
    carry_z: float
    pad_height: float

    def state_index(self, field: str) -> list[int]: ...

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]: ...

    def render_rgb(self, camera: str) -> np.ndarray: ...

    def render_depth(self, camera: str) -> np.ndarray: ...

    def camera_model(self, camera: str) -> CameraLike: ...

    def grasp_point(self) -> np.ndarray: ...

    def push_point(self) -> np.ndarray: ...

    def close(self) -> None: ...


class TaskScene:
    """A private copy of the task that renders an episode's start state for the proposer (see module doc).

    :param env_id: the task's Gymnasium id (``robo_reward/PickPlace-v0``).
    :param env_kwargs: its variant kwargs (observation settings are overridden).
    :param image_size: side of the rendered views.
    """

    VIEWS = ("top", "side")

    def __init__(self, env_id: str, env_kwargs: Mapping[str, Any] | None = None, *, task: str,
                 image_size: int = 128) -> None:
        kwargs = {k: v for k, v in dict(env_kwargs or {}).items()
                  if k not in ("obs_mode", "cameras", "image_size", "depth", "render_mode")}
        self.env = cast(TaskEnvLike, gym.make(env_id, obs_mode="state", cameras=self.VIEWS, image_size=image_size,
                                              **kwargs).unwrapped)
        self.task = task
        self.fields = {name: self.env.state_index(name)
                       for name in ("grip_pos", "finger_gap", "object_pos", "object_rel", "goal_pos")}
        self.state_dim = int(sum(size for _, size in self.env.STATE_FIELDS))
        self.half = float(self.env.half)
        self.colour = str(env_kwargs.get("object_color", "red")) if env_kwargs else "red"

    def build(self, state: np.ndarray) -> Scene:
        """Reset the copy to the observed start state and render both views."""
        f = self.fields
        env = self.env
        env.reset(seed=0, options={"grip_pos": state[f["grip_pos"]].astype(np.float64),
                                   "object_pos": state[f["object_pos"]].astype(np.float64),
                                   "goal_pos": state[f["goal_pos"]].astype(np.float64)})
        views = {cam: View(env.render_rgb(cam), env.render_depth(cam), env.camera_model(cam)) for cam in self.VIEWS}
        priv: dict[str, Any] = {"grip_pos": env.grip_pos, "object_pos": env.object_pos, "goal_pos": env.goal.copy(),
                                "half": self.half, "goal_tolerance": float(env.goal_tolerance)}
        if self.task == "pick_place":
            priv.update(grasp_point=env.grasp_point(), rest_z=float(env.rest_on_pad_z), carry_z=float(env.carry_z),
                        goal_top_z=float(env.pad_height))
        else:
            priv.update(push_point=env.push_point())
        return Scene(views=views, task=self.task, privileged=priv)

    def top_camera(self) -> Any:
        """The top camera's model (fixed cameras: the same at every state)."""
        self.env.reset(seed=0)
        return self.env.camera_model("top")

    def close(self) -> None:
        self.env.close()


class KAGIReward(Reward):
    """KAGI's sparse-where-positive-else-dense waypoint reward (see the module docstring).

    :param task: ``"pick_place"`` or ``"push"``.
    :param env_id: the task the scene copy is built from (the env the reward is wrapped around).
    :param env_kwargs: that env's variant kwargs.
    :param proposer: ``{name: oracle | clip | vlm, cache: path?, ...}`` or a :class:`KeypointProposer`.
    :param instruction: the language instruction (default: the task's, with the cube's colour).
    :param tau: advance radius, in top-image pixels (with the height term).
    :param pass_fraction: a waypoint also counts as reached once the tracked point has crossed the plane
        through it normal to the next segment, within this fraction of that segment's length (0: off).
    :param grasp_jump: a grasp in the pre-contact part moves the index to the first after-contact waypoint.
    :param height_weight: weight of the height difference relative to a horizontal metre.
    :param image_size: side of the proposer's rendered views.
    :param failure_penalty: pay ``-1 / (1 - gamma)`` on a failed termination.
    :param grasp_gap_slack: finger-gap tolerance (m) of the grasp test.
    :param grasp_radius: largest grip-point-to-cube-centre distance (m) of the grasp test.
    :param drop_radius: largest grip-point-to-cube-centre distance (m) at which the cube still counts as held.
    :param state_key: key of the state vector in dict observations.
    """

    name = "kagi"
    stateless = False

    def __init__(self, *, task: str = "pick_place", env_id: str = "robo_reward/PickPlace-v0",
                 env_kwargs: Mapping[str, Any] | None = None, proposer: Mapping[str, Any] | KeypointProposer | None = None,
                 instruction: str | None = None, tau: float = 4.0, pass_fraction: float = 0.5, grasp_jump: bool = True,
                 height_weight: float = 1.0, image_size: int = 128, failure_penalty: bool = True, grasp_gap_slack: float = 0.01, grasp_radius: float = 0.015,
                 drop_radius: float = 0.03, state_key: str = "state") -> None:
        if task not in TASKS:
            raise ValueError(f"task={task!r} must be one of {TASKS}")
        if tau <= 0 or height_weight < 0 or pass_fraction < 0:
            raise ValueError(f"tau={tau} must be > 0, height_weight={height_weight} and "
                             f"pass_fraction={pass_fraction} >= 0")
        self.task, self.tau, self.height_weight = task, float(tau), float(height_weight)
        self.pass_fraction, self.grasp_jump = float(pass_fraction), bool(grasp_jump)
        self.proposer = build_proposer(proposer or {"name": "oracle"})
        self.scene = TaskScene(env_id, env_kwargs, task=task, image_size=image_size)
        self.instruction = instruction or INSTRUCTIONS[task].format(colour=self.scene.colour)
        self.failure_penalty = bool(failure_penalty)
        self.gap_slack, self.grasp_radius, self.drop_radius = float(grasp_gap_slack), float(grasp_radius), float(drop_radius)
        self.state_key = state_key
        self.after = np.array(AFTER_CONTACT[task])
        self.K = len(self.after)
        self.hold = task == "pick_place"
        self.first_after = int(np.argmax(self.after))
        top = self.scene.top_camera()
        self._K_top = np.asarray(top.intrinsics, dtype=np.float64)
        self._w2c = np.asarray(top.world_to_camera, dtype=np.float64)
        self.lam = self.height_weight * self._K_top[0, 0] / abs(self._w2c[2, 3])
        self.proposer_calls = 0
        self.fallbacks = 0
        self.last_proposals: dict[int, Proposal | None] = {}

    @property
    def can_relabel(self) -> bool:  # type: ignore[override]
        return True

    # -- lifecycle -------------------------------------------------------------------------------------------
    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        space = observation_space[self.state_key] if isinstance(observation_space, gym.spaces.Dict) and \
            self.state_key in observation_space.spaces else observation_space
        if not isinstance(space, gym.spaces.Box) or space.shape != (self.scene.state_dim,):
            raise SpaceMismatchError(f"KAGI reads the {self.task} state vector ({self.scene.state_dim} floats, or a "
                                     f"dict with key {self.state_key!r}); the env observes {observation_space}")

    def bind(self, observation_space: gym.Space, action_space: gym.Space, num_envs: int) -> None:
        super().bind(observation_space, action_space, num_envs)
        n, K = num_envs, self.K
        self._wp = np.zeros((n, K, 3))
        self._anchor = np.zeros((n, 3))
        self._k = np.zeros(n, dtype=np.int64)
        self._valid = np.zeros(n, dtype=bool)
        self._last = {"waypoints": np.zeros((n, K, 3)), "anchor": np.zeros((n, 3)),
                      "k_prev": np.zeros(n, dtype=np.int64), "grasped": np.zeros(n, dtype=bool),
                      "held": np.zeros(n, dtype=bool),
                      "success": np.zeros(n, dtype=bool), "valid": np.zeros(n, dtype=bool)}

    def _state(self, obs: Obs) -> np.ndarray:
        return np.asarray(obs[self.state_key] if isinstance(obs, dict) else obs, dtype=np.float64)

    def score(self, points: np.ndarray) -> np.ndarray:
        """World points ``(..., 3)`` to scoring coordinates: the top-image pixel of the foot on the table, and
        the height scaled by ``lambda`` (so Euclidean distance is the weighted image distance)."""
        foot = np.concatenate([points[..., :2], np.zeros_like(points[..., :1])], axis=-1)
        cam = foot @ self._w2c[:3, :3].T + self._w2c[:3, 3]
        uvw = cam @ self._K_top.T
        uv = uvw[..., :2] / uvw[..., 2:3]
        return np.concatenate([uv, self.lam * points[..., 2:3]], axis=-1)

    def lift_proposal(self, proposal: Proposal, scene: Scene) -> np.ndarray:
        """The proposal's waypoints as 3D points ``(K, 3)``: each pixel lifted through the top view's depth,
        at the waypoint's height."""
        top = scene.views["top"]
        uv = np.array([(w.u, w.v) for w in proposal.waypoints])
        surface = lift(top.camera, top.depth, uv)
        return np.column_stack([surface[:, :2], [w.height for w in proposal.waypoints]])

    def reset(self, obs: Obs, env_mask: np.ndarray) -> None:
        state = self._state(obs)
        f = self.scene.fields
        for i in np.flatnonzero(env_mask):
            self._k[i] = 0
            self._anchor[i] = self.score(state[i, f["grip_pos"]])
            scene = self.scene.build(state[i])
            self.proposer_calls += 1
            try:
                proposal = self.proposer.propose(scene, self.instruction).check(scene)
            except ProposalError as exc:
                self.fallbacks += 1
                log.warning("KAGI proposer %s failed for env %d (%s); this episode pays the sparse reward only "
                            "(%d fallbacks so far)", self.proposer.name, i, exc, self.fallbacks)
                self._valid[i] = False
                self._wp[i] = 0.0
                self.last_proposals[int(i)] = None
                continue
            self._valid[i] = True
            self._wp[i] = self.score(self.lift_proposal(proposal, scene))
            self.last_proposals[int(i)] = proposal

    # -- the reward ------------------------------------------------------------------------------------------
    def grasped(self, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Whether the fingers have closed on the cube, and whether it is still held (batched, state vector)."""
        f = self.scene.fields
        gap = state[:, f["finger_gap"][0]]
        centre = np.linalg.norm(state[:, f["object_rel"]], axis=1)
        width = 2 * self.scene.half
        grasped = (np.abs(gap - width) < self.gap_slack) & (centre < self.grasp_radius)
        return grasped, (gap < width + self.gap_slack) & (centre < self.drop_radius)

    def track(self, waypoints: np.ndarray, anchor: np.ndarray, k_prev: np.ndarray, state: np.ndarray,
              grasped: np.ndarray, held: np.ndarray, success: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New waypoint index and ``r_dense`` for a batch (pure: the online step and relabelling share it)."""
        f = self.scene.fields
        rows = np.arange(len(k_prev))
        ee, obj = self.score(state[:, f["grip_pos"]]), self.score(state[:, f["object_pos"]])
        K, after = self.K, self.after
        k = k_prev.copy()
        if self.hold:
            at_rest = np.linalg.norm(obj - waypoints[:, K - 1], axis=1) < self.tau
            dropped = after[np.minimum(k, K - 1)] & ~held & ~success & ~at_rest
            k[dropped] = 0
        kc = np.minimum(k, K - 1)
        p = np.where(after[kc][:, None], obj, ee)
        w, nxt = waypoints[rows, kc], waypoints[rows, np.minimum(kc + 1, K - 1)]
        off = np.linalg.norm(p - w, axis=1)
        passed = (kc + 1 < K) & (np.einsum("ij,ij->i", p - w, nxt - w) > 0) & \
            (off < self.pass_fraction * np.linalg.norm(nxt - w, axis=1))
        entering = (~after[kc]) & after[np.minimum(kc + 1, K - 1)] & (kc + 1 < K)
        k = k + ((k < K) & ((off < self.tau) | passed) & (~entering | grasped | (not self.hold)))
        if self.hold and self.grasp_jump:
            k = np.where(grasped & (k < self.first_after), self.first_after, k)
        kc = np.minimum(k, K - 1)
        p = np.where(after[kc][:, None], obj, ee)
        prev = np.where((kc == 0)[:, None], anchor, waypoints[rows, np.maximum(kc - 1, 0)])
        seg = np.maximum(np.linalg.norm(waypoints[rows, kc] - prev, axis=1), 1e-6)
        dist = np.linalg.norm(p - waypoints[rows, kc], axis=1)
        dense = -1.0 + (kc + 1 - np.minimum(1.0, dist / seg)) / K
        return k, np.where(k >= K, 0.0, dense)

    def _pay(self, dense: np.ndarray, valid: np.ndarray, success: np.ndarray, terminated: np.ndarray) -> np.ndarray:
        r = np.where(success, 1.0, np.where(valid, dense, 0.0))
        if self.failure_penalty:
            gamma = 0.99 if self.gamma is None else self.gamma
            r = np.where(terminated & ~success & valid, -1.0 / (1.0 - gamma), r)
        return r

    def evaluate(self, batch: TransitionBatch) -> RewardOutput:
        ids = batch.env_ids
        state = self._state(batch.next_obs)
        grasped, held = self.grasped(state)
        success = np.asarray(batch.reward) > 0
        k_prev = self._k[ids]
        k, dense = self.track(self._wp[ids], self._anchor[ids], k_prev, state, grasped, held, success)
        valid = self._valid[ids]
        total = self._pay(dense, valid, success, np.asarray(batch.terminated, dtype=bool))
        self._k[ids] = k
        last = self._last
        last["waypoints"][ids], last["anchor"][ids], last["k_prev"][ids] = self._wp[ids], self._anchor[ids], k_prev
        last["grasped"][ids], last["held"][ids], last["success"][ids], last["valid"][ids] = grasped, held, success, valid
        return RewardOutput(total, {self.name: total, f"{self.name}/dense": np.where(valid, dense, 0.0),
                                    f"{self.name}/waypoint": k.astype(np.float64)})

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        return self.evaluate(batch).total

    def transition_state(self) -> dict[str, np.ndarray]:
        return {f"{self.name}/{k}": v.copy() for k, v in self._last.items()}

    def relabel(self, batch: TransitionBatch) -> np.ndarray:
        """Recompute stored transitions from their stored keypoint state (never the proposer)."""
        keys = {k: f"{self.name}/{k}" for k in self._last}
        missing = [v for v in keys.values() if v not in batch.extras]
        if missing:
            raise RewardError(f"KAGI relabelling needs the stored transition state {missing}; store transitions "
                              "in a robo_reward RelabelingReplayBuffer (it keeps Reward.transition_state())")
        x = {k: np.asarray(batch.extras[v]) for k, v in keys.items()}
        _, dense = self.track(x["waypoints"], x["anchor"], x["k_prev"].astype(np.int64),
                              self._state(batch.next_obs), x["grasped"].astype(bool), x["held"].astype(bool),
                              x["success"].astype(bool))
        return self._pay(dense, x["valid"].astype(bool), x["success"].astype(bool),
                         np.asarray(batch.terminated, dtype=bool))

    def state_dict(self) -> dict[str, Any]:
        return {"proposer_calls": self.proposer_calls, "fallbacks": self.fallbacks}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.proposer_calls = int(state.get("proposer_calls", 0))
        self.fallbacks = int(state.get("fallbacks", 0))
