"""KAGI with a real VLM: MOKA-style marked images, an OpenAI-compatible chat client and a strict parser.

The top image gets a labelled grid (rows A.., columns 1..) and numbered candidate points (``P1``..: an
image-only segmentation of everything that is not table, standing in for the paper's open-vocabulary detector
plus SAM); the side image gets labelled height lines (cm). The VLM answers with one JSON object naming the grasp
and target points and the task's waypoints as (point or tile, height line) pairs. :func:`parse_answer` accepts
exactly that and raises :class:`~.proposer.ProposalError` naming the problem otherwise; the reward then pays
that episode the sparse reward only (counted and logged). Server errors are ProposalErrors too, so a flaky
server degrades training to sparse episodes instead of stopping it.

Nothing here is needed by the tests' training paths; the tests exercise it against a loopback server.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import string
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

import numpy as np

from robo_reward.methods.kagi.proposer import (
    WAYPOINT_NAMES,
    KeypointProposer,
    Proposal,
    ProposalError,
    Scene,
    Waypoint,
)

HEIGHT_LINE_STEP = 0.02
"""Spacing (m) of the labelled height lines drawn on the side view (every other line of the scene's grid)."""


def candidate_points(rgb: np.ndarray, *, max_points: int = 24, stride: int = 4) -> np.ndarray:
    """Candidate keypoints ``(C, 2)`` on everything that is not table: pixels far from the image's dominant
    colour, subsampled on a ``stride`` grid, spread by farthest-point sampling (deterministic)."""
    img = rgb.astype(np.float64)
    flat = img.reshape(-1, 3)
    colours, counts = np.unique((flat // 16).astype(int), axis=0, return_counts=True)
    table = (colours[np.argmax(counts)] + 0.5) * 16
    mask = np.linalg.norm(img - table, axis=-1) > 60.0
    rows, cols = np.nonzero(mask[::stride, ::stride])
    pts = np.column_stack([cols * stride, rows * stride]).astype(np.float64)
    if len(pts) == 0:
        return pts.reshape(0, 2)
    chosen = [int(np.argmin(pts[:, 0] + pts[:, 1] * rgb.shape[1]))]
    dist = np.linalg.norm(pts - pts[chosen[0]], axis=1)
    while len(chosen) < min(max_points, len(pts)):
        nxt = int(np.argmax(dist))
        if dist[nxt] <= 0:
            break
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(pts - pts[nxt], axis=1))
    return pts[chosen]


def tile_labels(width: int, height: int, grid: int) -> dict[str, tuple[float, float]]:
    """``{"A1": (u, v) centre, ...}``: rows lettered top to bottom, columns numbered left to right."""
    if not 1 <= grid <= 26:
        raise ValueError(f"grid={grid} must be in [1, 26]")
    tw, th = width / grid, height / grid
    return {f"{string.ascii_uppercase[r]}{c + 1}": ((c + 0.5) * tw - 0.5, (r + 0.5) * th - 0.5)
            for r in range(grid) for c in range(grid)}


def height_rows(scene: Scene) -> dict[int, float]:
    """Side-view pixel row of each labelled height line, ``{height_cm: row}`` (lines across the table centre)."""
    cam = scene.views["side"].camera
    out = {}
    for h in np.arange(0.0, max(scene.height_lines) + 1e-9, HEIGHT_LINE_STEP):
        uv, _ = cam.project(np.array([[0.0, 0.0, h]]))
        out[round(h * 100)] = float(uv[0, 1])
    return out


def marked_images(scene: Scene, grid: int = 8) -> tuple[Any, Any, dict[str, tuple[float, float]]]:
    """The top view with grid and candidate labels, the side view with height lines (PIL images), and every
    label the answer may use with its top-image pixel."""
    from PIL import Image, ImageDraw

    top_rgb = scene.views["top"].rgb
    h, w = top_rgb.shape[:2]
    labels = tile_labels(w, h, grid)
    top = Image.fromarray(top_rgb).convert("RGB")
    draw = ImageDraw.Draw(top)
    for i in range(1, grid):
        draw.line([(i * w / grid, 0), (i * w / grid, h)], fill=(255, 255, 255), width=1)
        draw.line([(0, i * h / grid), (w, i * h / grid)], fill=(255, 255, 255), width=1)
    for label, (u, v) in labels.items():
        draw.text((u - w / grid / 2 + 1, v - h / grid / 2), label, fill=(255, 255, 0))
    for i, (u, v) in enumerate(candidate_points(top_rgb), start=1):
        labels[f"P{i}"] = (float(u), float(v))
        draw.ellipse([(u - 2, v - 2), (u + 2, v + 2)], outline=(255, 0, 255))
        draw.text((u + 3, v - 5), f"P{i}", fill=(255, 0, 255))
    side = Image.fromarray(scene.views["side"].rgb).convert("RGB")
    sdraw = ImageDraw.Draw(side)
    for cm, row in height_rows(scene).items():
        sdraw.line([(0, row), (side.width, row)], fill=(0, 255, 255), width=1)
        sdraw.text((1, row - 10), f"{cm}cm", fill=(0, 255, 255))
    return top, side, labels


def _data_url(image: Any) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def build_prompt(scene: Scene, instruction: str, grid: int = 8) -> tuple[list[dict[str, Any]], dict[str, tuple[float, float]]]:
    """Chat messages (text + the two marked images) and the labels the answer may use."""
    top, side, labels = marked_images(scene, grid)
    names = WAYPOINT_NAMES[scene.task]
    lines = sorted(height_rows(scene))
    text = (
        f"Task: {instruction}.\nImage 1 is a top-down view with a labelled grid (tiles A1..) and numbered candidate "
        f"points (P1..). Image 2 is a side view with height lines labelled in cm ({', '.join(map(str, lines))}).\n"
        f"Choose the grasp point and the target point (a candidate P<n> or a tile), then exactly {len(names)} "
        f"waypoints in this order: {', '.join(names)}. Each waypoint is a point or tile and one of the height lines.\n"
        'Answer with one JSON object and nothing else: {"grasp": "P3", "target": "F6", "waypoints": '
        '[{"point": "P3", "height_cm": 8}, ...]}'
    )
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a robot manipulation planner. Answer only with the JSON asked for."},
        {"role": "user", "content": [{"type": "text", "text": text},
                                     {"type": "image_url", "image_url": {"url": _data_url(top)}},
                                     {"type": "image_url", "image_url": {"url": _data_url(side)}}]},
    ]
    return messages, labels


_FENCED = re.compile(r"^\s*```(?:json)?\s*(\{.*\})\s*```\s*$", re.DOTALL)


def parse_answer(text: str, scene: Scene, labels: Mapping[str, tuple[float, float]]) -> Proposal:
    """The VLM's answer as a :class:`Proposal`; anything but the asked-for JSON is a :class:`ProposalError`.

    Accepted: one JSON object (optionally in a ```json fence) with exactly the keys ``grasp``, ``target`` and
    ``waypoints``; labels from ``labels``; exactly the task's number of waypoints, each ``{"point": label,
    "height_cm": one of the height lines}``.
    """
    if not isinstance(text, str) or not text.strip():
        raise ProposalError("the VLM answer is empty; expected one JSON object")
    fenced = _FENCED.match(text)
    body = fenced.group(1) if fenced else text.strip()
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ProposalError(f"the VLM answer is not one JSON object ({exc.msg} at char {exc.pos}): {text[:120]!r}") from None
    if not isinstance(data, dict) or set(data) != {"grasp", "target", "waypoints"}:
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ProposalError(f"the VLM answer must have exactly the keys grasp, target, waypoints; got {got}")

    def point(value: Any, where: str) -> tuple[float, float]:
        if not isinstance(value, str) or value.strip().upper() not in labels:
            raise ProposalError(f"{where} {value!r} is not a label on the image (tiles like A1, candidates like P1)")
        return labels[value.strip().upper()]

    names = WAYPOINT_NAMES[scene.task]
    wps = data["waypoints"]
    if not isinstance(wps, list) or len(wps) != len(names):
        n = len(wps) if isinstance(wps, list) else type(wps).__name__
        raise ProposalError(f"waypoints must be a list of {len(names)} ({', '.join(names)}); got {n}")
    lines = sorted(height_rows(scene))
    waypoints = []
    for i, wp in enumerate(wps):
        if not isinstance(wp, dict) or set(wp) != {"point", "height_cm"}:
            raise ProposalError(f"waypoint {i} must be {{\"point\": label, \"height_cm\": line}}; got {wp!r}")
        h = wp["height_cm"]
        if isinstance(h, bool) or not isinstance(h, int | float) or not any(abs(h - c) < 1e-6 for c in lines):
            raise ProposalError(f"waypoint {i} height_cm={h!r} is not one of the height lines {lines}")
        u, v = point(wp["point"], f"waypoint {i} point")
        waypoints.append(Waypoint(u, v, float(h) / 100.0))
    proposal = Proposal(grasp=point(data["grasp"], "grasp"), target=point(data["target"], "target"),
                        waypoints=tuple(waypoints), meta={"source": "vlm"})
    return proposal.check(scene)


class VLMProposer(KeypointProposer):
    """Asks an OpenAI-compatible chat-completions server (``POST {base_url}/chat/completions``).

    :param base_url: e.g. ``http://127.0.0.1:8000/v1`` (a local vLLM or llama.cpp server) or a hosted API.
    :param model: the model name the server expects.
    :param api_key_env: environment variable holding the bearer token (none sent if unset).
    :param timeout: seconds per request.
    :param grid: tiles per side of the top image's grid.
    """

    name = "vlm"

    def __init__(self, *, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 60.0,
                 grid: int = 8, max_tokens: int = 400) -> None:
        self.base_url, self.model, self.api_key_env = base_url.rstrip("/"), model, api_key_env
        self.timeout, self.grid, self.max_tokens = float(timeout), int(grid), int(max_tokens)
        self.requests = 0

    def complete(self, messages: list[dict[str, Any]]) -> str:
        """The server's answer text for ``messages``."""
        body = json.dumps({"model": self.model, "messages": messages, "temperature": 0.0,
                           "max_tokens": self.max_tokens}).encode()
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(f"{self.base_url}/chat/completions", data=body, headers=headers, method="POST")
        self.requests += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                reply = json.loads(response.read().decode())
        except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as exc:
            raise ProposalError(f"VLM server {self.base_url} gave no usable reply ({type(exc).__name__}: {exc}); "
                                "check base_url and that the server is up") from None
        try:
            return str(reply["choices"][0]["message"]["content"])
        except (KeyError, IndexError, TypeError):
            raise ProposalError(f"VLM server reply has no choices[0].message.content: {str(reply)[:200]}") from None

    def propose(self, scene: Scene, instruction: str) -> Proposal:
        messages, labels = build_prompt(scene, instruction, self.grid)
        return parse_answer(self.complete(messages), scene, labels)
