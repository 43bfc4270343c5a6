"""KAGI's keypoint proposer: marked scene images + an instruction in, grasp/target keypoints and waypoints out.

Lee et al., "Affordance-Guided Reinforcement Learning via Visual Prompting", arXiv 2407.10341. A VLM, shown a
top-down image with candidate keypoints and a labelled grid and a side image with labelled height lines (MOKA
style), picks the grasp keypoint, the target keypoint and a waypoint sequence of (tile, height) pairs, once per
episode. :class:`KeypointProposer` is that interface; this module has the deterministic oracle stand-in that
emulates the VLM's errors and the JSON cache; :mod:`.vlm` has the OpenAI-compatible client and :mod:`.clip` the
open_clip zero-shot proposer.

Coordinates: a keypoint is a pixel ``(u, v)`` of the *top* image (OpenCV convention, integer values at pixel
centres), a waypoint is such a pixel (the surface the VLM points at) plus a height above the table in metres
(read off the side view's height lines). :mod:`.reward` lifts them to 3D with the top view's depth and camera.
"""

from __future__ import annotations

import abc
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

TASKS = ("pick_place", "push")
WAYPOINT_NAMES: dict[str, tuple[str, ...]] = {
    "pick_place": ("pre_grasp", "grasp", "lift", "over_target", "place"),
    "push": ("pre_push", "push_point", "halfway", "target"),
}
"""The waypoint sequence each task's proposals follow (the spec's pre-grasp, grasp, lift, above target, place)."""
AFTER_CONTACT: dict[str, tuple[bool, ...]] = {
    "pick_place": (False, False, True, True, True),
    "push": (False, False, True, True),
}
"""Per waypoint: tracked by the object (after contact) rather than the end effector."""


class ProposalError(ValueError):
    """A proposer's answer is unusable (malformed, out of range); the episode falls back to the sparse reward."""


class CameraLike(Protocol):
    """What the proposers and the lifting need of a camera (``robo_reward.envs.cameras.CameraModel`` has it)."""

    width: int
    height: int
    intrinsics: np.ndarray
    world_to_camera: np.ndarray

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def unproject(self, uv: np.ndarray, depth: np.ndarray | float) -> np.ndarray: ...

    def unproject_to_plane(self, uv: np.ndarray, z: float) -> np.ndarray: ...


@dataclass(frozen=True)
class View:
    """One rendered camera view: RGB ``(H, W, 3)`` uint8, depth ``(H, W)`` metres, and its camera."""

    rgb: np.ndarray
    depth: np.ndarray
    camera: CameraLike


@dataclass(frozen=True)
class Scene:
    """What a proposer sees at an episode's start.

    :param views: ``{"top": View, "side": View}``.
    :param task: ``"pick_place"`` or ``"push"`` (which waypoint sequence to propose).
    :param privileged: simulator state only the oracle may read (``object_pos``, ``goal_pos``, task heights).
    :param height_lines: the heights (m) the side view is marked with; proposed heights snap to them.
    """

    views: Mapping[str, View]
    task: str
    privileged: Mapping[str, Any] = field(default_factory=dict)
    height_lines: tuple[float, ...] = tuple(np.round(np.arange(0.0, 0.205, 0.01), 3))

    def key(self, instruction: str) -> str:
        """A stable id of the scene (its start state rounded to 0.1 mm) and instruction, for caching."""
        state = {k: np.round(np.asarray(v, dtype=np.float64), 4).tolist() for k, v in sorted(self.privileged.items())}
        text = json.dumps({"task": self.task, "state": state, "instruction": instruction}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Waypoint:
    """A top-image pixel the VLM points at and a height above the table (m)."""

    u: float
    v: float
    height: float


@dataclass(frozen=True)
class Proposal:
    """Grasp and target keypoints (top-image pixels) and the waypoint sequence of one episode.

    ``meta`` records how it was made (``wrong_grasp`` / ``wrong_target`` for the oracle's injected errors).
    """

    grasp: tuple[float, float]
    target: tuple[float, float]
    waypoints: tuple[Waypoint, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"grasp": list(self.grasp), "target": list(self.target),
                "waypoints": [asdict(w) for w in self.waypoints], "meta": dict(self.meta)}

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Proposal:
        try:
            return Proposal(grasp=(float(data["grasp"][0]), float(data["grasp"][1])),
                            target=(float(data["target"][0]), float(data["target"][1])),
                            waypoints=tuple(Waypoint(float(w["u"]), float(w["v"]), float(w["height"]))
                                            for w in data["waypoints"]),
                            meta=dict(data.get("meta", {})))
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            raise ProposalError(f"cached proposal {dict(data)} is malformed ({type(exc).__name__}: {exc}); delete "
                                "the cache file to propose again") from None

    def check(self, scene: Scene) -> Proposal:
        """Raise :class:`ProposalError` unless it fits the scene: the task's waypoint count, pixels inside the
        top image, heights within the side view's lines."""
        n = len(WAYPOINT_NAMES[scene.task])
        if len(self.waypoints) != n:
            raise ProposalError(f"proposal has {len(self.waypoints)} waypoints; task {scene.task!r} needs {n} "
                                f"({', '.join(WAYPOINT_NAMES[scene.task])})")
        cam = scene.views["top"].camera
        lo, hi = min(scene.height_lines), max(scene.height_lines)
        for name, (u, v) in [("grasp", self.grasp), ("target", self.target),
                             *((f"waypoint {i}", (w.u, w.v)) for i, w in enumerate(self.waypoints))]:
            if not (np.isfinite(u) and np.isfinite(v) and -0.5 <= u <= cam.width - 0.5 and -0.5 <= v <= cam.height - 0.5):
                raise ProposalError(f"{name} pixel ({u}, {v}) lies outside the {cam.width}x{cam.height} top image")
        for i, w in enumerate(self.waypoints):
            if not lo - 1e-9 <= w.height <= hi + 1e-9:
                raise ProposalError(f"waypoint {i} height {w.height} m is outside the side view's lines [{lo}, {hi}]")
        return self


class KeypointProposer(abc.ABC):
    """Proposes keypoints and waypoints for one episode; the reward calls :meth:`propose` once per reset."""

    name: str = "proposer"

    @abc.abstractmethod
    def propose(self, scene: Scene, instruction: str) -> Proposal:
        """The episode's proposal; raise :class:`ProposalError` for an unusable answer."""


def snap_height(h: float, lines: Sequence[float]) -> float:
    """The height line nearest to ``h`` (the VLM answers with a line label, not a number)."""
    arr = np.asarray(lines, dtype=np.float64)
    return float(arr[np.argmin(np.abs(arr - h))])


def task_plan(task: str, privileged: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True 3D grasp point, target point and waypoint heights of a task, from privileged state.

    Pick-place: grasp at the cube's centre, target the pad centre; heights: pre-grasp 5 cm above the grasp,
    grasp, carry height (lift and over target), resting height on the pad (place). Push: the push point behind
    the cube, the goal; heights: 5 cm above the push point, push height, then cube-centre height twice.
    """
    if task == "pick_place":
        grasp = np.asarray(privileged["grasp_point"], dtype=np.float64)
        target = np.append(np.asarray(privileged["goal_pos"], dtype=np.float64)[:2], privileged["rest_z"])
        carry = float(privileged["carry_z"])
        heights = np.array([grasp[2] + 0.05, grasp[2], carry, carry, target[2]])
        return grasp, target, heights
    if task == "push":
        grasp = np.asarray(privileged["push_point"], dtype=np.float64)
        obj = np.asarray(privileged["object_pos"], dtype=np.float64)
        target = np.append(np.asarray(privileged["goal_pos"], dtype=np.float64)[:2], obj[2])
        heights = np.array([grasp[2] + 0.05, grasp[2], obj[2], obj[2]])
        return grasp, target, heights
    raise ValueError(f"task={task!r} must be one of {TASKS}")


def plan_waypoints(task: str, grasp_uv: np.ndarray, target_uv: np.ndarray, heights: Sequence[float] | np.ndarray,
                   lines: Sequence[float], halfway_uv: np.ndarray | None = None) -> tuple[Waypoint, ...]:
    """The task's waypoint sequence over the grasp and target pixels, heights snapped to the height lines."""
    g, t = np.asarray(grasp_uv, dtype=np.float64), np.asarray(target_uv, dtype=np.float64)
    h = [snap_height(x, lines) for x in heights]
    if task == "pick_place":
        pix = [g, g, g, t, t]
    else:
        mid = (g + t) / 2 if halfway_uv is None else np.asarray(halfway_uv, dtype=np.float64)
        pix = [g, g, mid, t]
    return tuple(Waypoint(float(p[0]), float(p[1]), hh) for p, hh in zip(pix, h, strict=True))


class OracleProposer(KeypointProposer):
    """Deterministic stand-in for the VLM: keypoints from simulator state, snapped to candidates, with errors.

    Candidates are what an open-vocabulary segmenter would give: a 3x3 grid of points on the cube's top face, a
    3x3 grid on the goal region and a ring of 12 table points, projected into the top image. The grasp
    (target) keypoint is the cube (goal) candidate nearest to the true grasp (target) point; with probability
    ``wrong_prob`` it is instead a uniformly drawn candidate off the cube (off the goal), the VLM's wrong
    selection. Then Gaussian pixel noise of ``pixel_noise`` pixels is added. Heights snap to the side view's
    lines. The generator is seeded by ``seed`` and the scene, so the same scene always gets the same proposal.

    :param pixel_noise: standard deviation (top-image pixels) of the noise on each keypoint.
    :param wrong_prob: probability of a wrong candidate, for the grasp and the target keypoint independently.
    :param seed: base seed of the error generator.
    """

    name = "oracle"

    def __init__(self, *, pixel_noise: float = 0.0, wrong_prob: float = 0.0, seed: int = 0) -> None:
        if pixel_noise < 0 or not 0.0 <= wrong_prob <= 1.0:
            raise ValueError(f"pixel_noise={pixel_noise} must be >= 0 and wrong_prob={wrong_prob} in [0, 1]")
        self.pixel_noise, self.wrong_prob, self.seed = float(pixel_noise), float(wrong_prob), int(seed)

    def candidates(self, scene: Scene) -> tuple[np.ndarray, np.ndarray]:
        """Candidate pixels ``(C, 2)`` and their labels (0 cube, 1 goal, 2 table)."""
        p = scene.privileged
        obj, goal = np.asarray(p["object_pos"], dtype=np.float64), np.asarray(p["goal_pos"], dtype=np.float64)
        half, tol = float(p["half"]), float(p["goal_tolerance"])
        grid = np.array([(a, b) for a in (-1.0, 0.0, 1.0) for b in (-1.0, 0.0, 1.0)])
        cube = np.column_stack([obj[0] + 0.6 * half * grid[:, 0], obj[1] + 0.6 * half * grid[:, 1],
                                np.full(9, obj[2] + half)])
        pad = np.column_stack([goal[0] + 0.6 * tol * grid[:, 0], goal[1] + 0.6 * tol * grid[:, 1],
                               np.full(9, float(p.get("goal_top_z", 0.0)))])
        angles = np.arange(12) * (2 * np.pi / 12)
        table = np.column_stack([0.19 * np.cos(angles), 0.19 * np.sin(angles), np.zeros(12)])
        uv, _ = scene.views["top"].camera.project(np.concatenate([cube, pad, table]))
        return uv, np.repeat([0, 1, 2], [9, 9, 12])

    def propose(self, scene: Scene, instruction: str) -> Proposal:
        if scene.task not in TASKS:
            raise ValueError(f"scene task {scene.task!r} must be one of {TASKS}")
        rng = np.random.default_rng([self.seed, int(scene.key(instruction)[:12], 16)])
        cam = scene.views["top"].camera
        grasp3, target3, heights = task_plan(scene.task, scene.privileged)
        cand, labels = self.candidates(scene)
        true_uv = cam.project(np.stack([grasp3, target3]))[0]
        keypoints, wrong = [], []
        for true, label in zip(true_uv, (0, 1), strict=True):
            own = cand[labels == label]
            pick = own[np.argmin(np.linalg.norm(own - true, axis=1))]
            is_wrong = bool(rng.random() < self.wrong_prob)
            if is_wrong:
                others = cand[labels != label]
                pick = others[rng.integers(len(others))]
            if scene.task == "push" and label == 0 and not is_wrong:
                pick = true
            noisy = pick + rng.normal(0.0, self.pixel_noise, size=2) if self.pixel_noise else pick
            keypoints.append(np.clip(noisy, 0.0, [cam.width - 1, cam.height - 1]))
            wrong.append(is_wrong)
        waypoints = plan_waypoints(scene.task, keypoints[0], keypoints[1], heights, scene.height_lines)
        return Proposal(grasp=tuple(keypoints[0].tolist()), target=tuple(keypoints[1].tolist()),  # type: ignore[arg-type]
                        waypoints=waypoints, meta={"source": self.name, "wrong_grasp": wrong[0],
                                                   "wrong_target": wrong[1]}).check(scene)


class CachedProposer(KeypointProposer):
    """Proposals stored in a JSON file by scene key, for reproducible runs with a slow or paid proposer.

    A scene found in the cache is never proposed again; a new one is proposed by ``inner`` and written back
    (atomically). With ``inner=None`` the cache is read-only and a missing scene is a :class:`ProposalError`.

    :param path: the JSON file (created on the first write).
    :param inner: the proposer for scenes not in the cache.
    """

    name = "cache"

    def __init__(self, path: str | os.PathLike, inner: KeypointProposer | None = None) -> None:
        self.path, self.inner = Path(path), inner
        self.hits = 0
        self._entries: dict[str, Any] = {}
        if self.path.exists():
            try:
                self._entries = json.loads(self.path.read_text())
            except json.JSONDecodeError as exc:
                raise ValueError(f"proposal cache {self.path} is not valid JSON ({exc}); delete or fix it") from None

    def propose(self, scene: Scene, instruction: str) -> Proposal:
        key = scene.key(instruction)
        if key in self._entries:
            self.hits += 1
            return Proposal.from_json(self._entries[key]).check(scene)
        if self.inner is None:
            raise ProposalError(f"scene {key} is not in the read-only proposal cache {self.path}; give the cache "
                                "an inner proposer to fill it")
        proposal = self.inner.propose(scene, instruction)
        self._entries[key] = proposal.to_json()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps(self._entries, indent=1, sort_keys=True))
        os.replace(tmp, self.path)
        return proposal


def build_proposer(spec: Mapping[str, Any] | KeypointProposer) -> KeypointProposer:
    """A proposer from ``{name: oracle|clip|vlm, ...kwargs}`` (or an instance), wrapped in a cache if
    ``cache: path`` is given."""
    if isinstance(spec, KeypointProposer):
        return spec
    spec = dict(spec)
    name = spec.pop("name", "oracle")
    cache = spec.pop("cache", None)
    proposer: KeypointProposer
    if name == "oracle":
        proposer = OracleProposer(**spec)
    elif name == "clip":
        from robo_reward.methods.kagi.clip import ClipProposer

        proposer = ClipProposer(**spec)
    elif name == "vlm":
        from robo_reward.methods.kagi.vlm import VLMProposer

        proposer = VLMProposer(**spec)
    else:
        raise ValueError(f"proposer name {name!r} is not one of oracle, clip, vlm")
    return CachedProposer(cache, proposer) if cache else proposer
