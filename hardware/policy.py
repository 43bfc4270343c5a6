"""Load what a training run saved: the SB3 policy and the learned reward, for inference on a robot.

Run folders are written by ``robo-reward train`` (robo_reward.cli). The policy is rebuilt from the SB3 zip alone
(policy class, its kwargs and the spaces are stored in it), so any SB3 or sb3-contrib algorithm loads without
knowing which one trained it and without the optimiser or replay buffer. The reward is rebuilt from its registry
spec and ``state_dict`` (``reward.pt``); it must speak the core protocol (:class:`robo_reward.protocol.Reward`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from robo_reward.protocol import Reward
from robo_reward.registry import build_reward

POLICY_FILES = ("agent.zip", "model.zip", "final_model.zip", "best_model.zip")
REWARD_FILE = "reward.pt"


class RunFolderError(FileNotFoundError):
    """A run folder lacks what deployment needs, or holds something that does not fit the robot profile."""


def find_policy_file(run_dir: Path) -> Path:
    """The SB3 zip of a run folder: one of :data:`POLICY_FILES`, else the only ``*.zip`` at its top level."""
    for name in POLICY_FILES:
        if (run_dir / name).is_file():
            return run_dir / name
    zips = sorted(run_dir.glob("*.zip"))
    if len(zips) == 1:
        return zips[0]
    raise RunFolderError(
        f"no policy checkpoint in {run_dir}: expected one of {list(POLICY_FILES)} (an SB3 model.save zip); "
        f"found {[p.name for p in zips] or 'no .zip files'}; pass --policy PATH to choose one"
    )


class SB3Policy:
    """A saved SB3 policy for inference: ``policy(obs) -> action`` (deterministic by default).

    :param path: the SB3 zip (``model.save``).
    :param deterministic: use the mean/argmax action (the usual choice on a robot).
    """

    def __init__(self, path: str | Path, *, deterministic: bool = True) -> None:
        import torch
        from stable_baselines3.common.save_util import load_from_zip_file

        data, params, _ = load_from_zip_file(path, device="cpu")
        if data is None or "policy_class" not in data or "policy" not in params:
            raise RunFolderError(f"{path} is not an SB3 model zip (no policy_class / policy parameters)")
        cls = data["policy_class"]
        kwargs = dict(data.get("policy_kwargs") or {})
        if "use_sde" in inspect.signature(cls).parameters and "use_sde" not in kwargs and "use_sde" in data:
            kwargs["use_sde"] = data["use_sde"]
        self.observation_space: gym.Space = data["observation_space"]
        self.action_space: gym.Space = data["action_space"]
        self.gamma: float | None = data.get("gamma")
        self.policy = cls(self.observation_space, self.action_space, lambda _: 0.0, **kwargs)
        self.policy.load_state_dict(params["policy"])
        self.policy.set_training_mode(False)
        self.policy.to(torch.device("cpu"))
        self.deterministic = deterministic
        self.path = Path(path)

    def __call__(self, obs: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        action, _ = self.policy.predict(obs, deterministic=self.deterministic)
        return np.asarray(action, dtype=np.float64).reshape(-1)


def check_policy_fits(policy_obs: gym.Space, robot_obs: gym.Space) -> None:
    """Raise :class:`RunFolderError` unless the robot's observations have the shapes the policy was trained on.

    Images may be channel-last on the robot and channel-first in the policy (SB3's VecTransposeImage), which
    SB3 transposes at predict time.
    """

    def shapes(space: gym.Space) -> dict[str, tuple[int, ...]]:
        if isinstance(space, gym.spaces.Dict):
            return {k: tuple(s.shape or ()) for k, s in space.spaces.items()}
        return {"<array>": tuple(space.shape or ())}

    want, have = shapes(policy_obs), shapes(robot_obs)
    if set(want) != set(have):
        raise RunFolderError(f"the policy observes keys {sorted(want)} but the robot profile gives {sorted(have)}; "
                             "name the profile's observations: entries after the policy's observation keys")
    for key, shape in want.items():
        other = have[key]
        transposed = len(other) == 3 and shape == (other[2], other[0], other[1])
        if shape != other and not transposed:
            raise RunFolderError(f"observation '{key}': the policy expects shape {shape}, the robot profile "
                                 f"gives {other}; fix the profile (joint list, image shape) or the run")


def load_reward_checkpoint(path: str | Path, spec: Mapping[str, Any] | None = None) -> Reward:
    """A learned reward from ``reward.pt``: ``{"spec": {"name": ..., "kwargs": ...}, "state_dict": ...}``.

    ``spec`` overrides the one stored in the file (e.g. the ``reward`` section of the run's config).
    """
    import torch

    blob = torch.load(Path(path), map_location="cpu", weights_only=False)
    if not isinstance(blob, Mapping) or "state_dict" not in blob:
        raise RunFolderError(f"{path} is not a reward checkpoint: expected a dict with 'spec' and 'state_dict'")
    spec = spec if spec is not None else blob.get("spec")
    if spec is None:
        raise RunFolderError(f"{path} stores no reward spec; pass the reward's registry spec explicitly")
    reward = build_reward(dict(spec))
    reward.load_state_dict(blob["state_dict"])
    return reward


def save_reward_checkpoint(reward: Reward, path: str | Path) -> None:
    """Write ``reward.pt`` in the format :func:`load_reward_checkpoint` reads (atomic: temp file, then rename)."""
    import torch

    if reward.spec is None:
        raise ValueError(f"{reward!r} has no registry spec; build it with robo_reward.make_reward so it can be "
                         "rebuilt at load time")
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"spec": dict(reward.spec), "state_dict": reward.state_dict()}, tmp)
    tmp.replace(path)
