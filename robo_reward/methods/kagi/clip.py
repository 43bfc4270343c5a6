"""A zero-shot KAGI proposer from open_clip: region-text similarity over candidate points.

Each candidate point of the top image (:func:`~.vlm.candidate_points`, the stand-in for detector + SAM
candidates) gets a square crop around it; open_clip embeds the crops and two queries (what to grasp, where to
put it), and the grasp (target) keypoint is the candidate whose crop is most similar to the grasp (target)
query. CLIP cannot read heights, so the waypoint heights are given per task (``heights``); a push's contact
point is placed behind the chosen cube point on the line away from the target, lifted through the top view's
depth. This is a departure from the paper's GPT-4V selection, which also generates the waypoints.

The model is real open_clip code loaded from a local folder (``local-dir:`` with ``open_clip_config.json`` and
the weights; :func:`save_local_checkpoint` writes one); nothing is ever downloaded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robo_reward.methods.kagi.proposer import KeypointProposer, Proposal, ProposalError, Scene, plan_waypoints
from robo_reward.methods.kagi.vlm import candidate_points

DEFAULT_HEIGHTS = {"pick_place": (0.07, 0.02, 0.09, 0.09, 0.04), "push": (0.07, 0.02, 0.02, 0.02)}
DEFAULT_QUERIES = {"pick_place": ("a {colour} cube", "a green square pad"),
                   "push": ("a {colour} cube", "a green disc")}


def save_local_checkpoint(model: Any, model_cfg: Mapping[str, Any], folder: str | os.PathLike) -> Path:
    """Write an open_clip model as a ``local-dir:`` checkpoint folder (config JSON + state dict)."""
    import torch

    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    (path / "open_clip_config.json").write_text(json.dumps({"model_cfg": dict(model_cfg), "preprocess_cfg": {}}))
    torch.save(model.state_dict(), path / "open_clip_pytorch_model.bin")
    return path


class ClipProposer(KeypointProposer):
    """open_clip region similarity over candidate points (see the module docstring).

    :param checkpoint: a local open_clip folder (``open_clip_config.json`` + weights file).
    :param colour: the cube's colour word in the default queries.
    :param queries: ``(grasp query, target query)``; default by task.
    :param heights: waypoint heights (m), one per waypoint of the task; default by task.
    :param crop: side of the square crop around each candidate (top-image pixels).
    """

    name = "clip"

    def __init__(self, *, checkpoint: str, colour: str = "red", queries: Sequence[str] | None = None,
                 heights: Mapping[str, Sequence[float]] | None = None, crop: int = 24) -> None:
        import open_clip
        import torch

        folder = Path(checkpoint)
        if not (folder / "open_clip_config.json").is_file():
            raise FileNotFoundError(f"open_clip checkpoint folder {folder} has no open_clip_config.json; give a "
                                    "local folder (see robo_reward.methods.kagi.clip.save_local_checkpoint)")
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
        self.colour, self.queries, self.crop = colour, tuple(queries) if queries else None, int(crop)
        self.heights = {**DEFAULT_HEIGHTS, **{k: tuple(v) for k, v in (heights or {}).items()}}
        self._torch = torch

    def similarities(self, scene: Scene, instruction: str) -> tuple[np.ndarray, np.ndarray]:
        """Candidate pixels ``(C, 2)`` and their cosine similarity to each query ``(C, 2)``."""
        from PIL import Image

        rgb = scene.views["top"].rgb
        cands = candidate_points(rgb)
        if len(cands) < 2:
            raise ProposalError("fewer than two candidate points on the top image (nothing but table is visible)")
        half = self.crop // 2
        padded = np.pad(rgb, ((half, half), (half, half), (0, 0)), mode="edge")
        crops = [Image.fromarray(padded[int(v):int(v) + self.crop, int(u):int(u) + self.crop]) for u, v in cands]
        queries = self.queries or tuple(q.format(colour=self.colour) for q in DEFAULT_QUERIES[scene.task])
        torch = self._torch
        with torch.no_grad():
            images = torch.stack([self.preprocess(c) for c in crops])
            img = self.model.encode_image(images)
            txt = self.model.encode_text(self.tokenizer(list(queries)))
            img = img / img.norm(dim=-1, keepdim=True)
            txt = txt / txt.norm(dim=-1, keepdim=True)
        return cands, (img @ txt.T).numpy().astype(np.float64)

    def propose(self, scene: Scene, instruction: str) -> Proposal:
        cands, sim = self.similarities(scene, instruction)
        g = int(np.argmax(sim[:, 0]))
        order = np.argsort(-sim[:, 1])
        t = int(order[0] if order[0] != g else order[1])
        grasp, target = cands[g], cands[t]
        contact = grasp
        if scene.task == "push":
            top = scene.views["top"]
            from robo_reward.methods.kagi.reward import lift

            cube, goal = lift(top.camera, top.depth, np.stack([grasp, target]))
            away = cube[:2] - goal[:2]
            away = away / max(float(np.linalg.norm(away)), 1e-9)
            point = np.append(cube[:2] + 0.042 * away, self.heights["push"][1])
            contact = np.clip(top.camera.project(point[None])[0][0], 0, [top.camera.width - 1, top.camera.height - 1])
        waypoints = plan_waypoints(scene.task, contact, target, self.heights[scene.task], scene.height_lines)
        return Proposal(grasp=(float(contact[0]), float(contact[1])), target=(float(target[0]), float(target[1])),
                        waypoints=waypoints, meta={"source": self.name}).check(scene)
