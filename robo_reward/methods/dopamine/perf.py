"""Dopamine's modes for ``robo-reward perf --pixels``: the reward with a freshly built learned model.

Registered in the ``robo_reward.pixel_perf`` entry-point group, so the core's pixel benchmark names no method.
Weights do not change the cost, so none are trained or loaded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from robo_reward.methods.dopamine.progress import LearnedGRM, LearnedProgressHead
from robo_reward.methods.dopamine.reward import DopamineReward


def _reward(model: LearnedGRM | LearnedProgressHead, cameras: Sequence[str],
            first_frames: np.ndarray) -> DopamineReward:
    reward = DopamineReward(model=model, cameras=cameras, anchor_camera=cameras[0], gamma=0.99)
    reward.potential.anchor_images = (first_frames[0], first_frames[-1])
    return reward


def hop_reward(cameras: Sequence[str], image_size: int, first_frames: np.ndarray) -> DopamineReward:
    """The hop GRM (START = the reference frame: here the first env's first frame, END = the last env's).

    :param cameras: the views the reward reads. :param image_size: image side in pixels.
    :param first_frames: the first reset's ``cameras[0]`` images, one per env.
    """
    return _reward(LearnedGRM(cameras, cameras[0], image_size=image_size), cameras, first_frames)


def phi_reward(cameras: Sequence[str], image_size: int, first_frames: np.ndarray) -> DopamineReward:
    """The per-state progress head (START = the episode's own first frame); parameters as :func:`hop_reward`."""
    return _reward(LearnedProgressHead(cameras, cameras[0], image_size=image_size), cameras, first_frames)
