"""Building progress models and reference anchors from plain-data specs (configs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from robo_reward.methods.dopamine.progress import LearnedGRM, OracleProgressModel, ProgressModel


def build_progress_model(spec: ProgressModel | Mapping[str, Any], *, cameras: Sequence[str],
                         anchor_camera: str = "front") -> ProgressModel:
    """``{"name": "oracle"}``, ``{"name": "grm", "checkpoint": path[, "task": name][, "beta": b]}`` or
    ``{"name": "http", "url": ..., "model": ..., "task": "..."}``."""
    if isinstance(spec, ProgressModel):
        return spec
    spec = dict(spec)
    name = spec.pop("name", None)
    if name == "oracle":
        return OracleProgressModel(cameras, anchor_camera)
    if name == "grm":
        if "checkpoint" not in spec:
            raise ValueError("progress model 'grm' needs checkpoint: <path of a GRM saved by robo-reward "
                             "dopamine-grm>")
        model = LearnedGRM.load(spec.pop("checkpoint"), task=spec.pop("task", None), beta=spec.pop("beta", None))
        if tuple(model.cameras) != tuple(cameras):
            raise ValueError(f"GRM checkpoint uses cameras {list(model.cameras)}, the reward is configured with "
                             f"{list(cameras)}")
        if spec:
            raise ValueError(f"unknown keys for progress model 'grm': {sorted(spec)}; valid: checkpoint, task, beta")
        return model
    if name == "http":
        from robo_reward.methods.dopamine.http import HttpGRM

        return HttpGRM(cameras=cameras, anchor_camera=anchor_camera, **spec)
    raise ValueError(f"unknown progress model {name!r}; use 'oracle', 'grm' or 'http'")


def reference_anchors(reference: Mapping[str, Any], camera: str) -> tuple[np.ndarray, np.ndarray]:
    """START and END images: the first and last ``camera`` frames of a reference demo."""
    from robo_reward.datasets import load_demos

    reference = dict(reference)
    if "dataset" not in reference:
        raise ValueError("reference needs dataset: <Minari dataset id or folder> (and optionally episode: N)")
    demos = load_demos(reference["dataset"], root=reference.get("root"))
    episode = int(reference.get("episode", 0))
    if not 0 <= episode < len(demos):
        raise ValueError(f"reference episode {episode} is not in {reference['dataset']} ({len(demos)} episodes)")
    frames = demos[episode].frames(camera)
    return frames[0], frames[-1]
