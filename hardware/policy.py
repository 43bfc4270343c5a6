"""Load what a training run saved: the SB3 policy and the learned reward, for inference on a robot.

Run folders are written by ``robo-reward train`` (robo_reward.cli). The policy is rebuilt from the SB3 zip alone
(policy class, its kwargs and the spaces are stored in it), so any SB3 or sb3-contrib algorithm loads without
knowing which one trained it and without the optimiser or replay buffer. The reward is rebuilt from the run's config and
``reward.pt`` with the core's own helpers (:func:`load_run_reward`).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path

import gymnasium as gym
import numpy as np

from robo_reward.protocol import Reward

POLICY_FILES = ("agent.zip", "model.zip", "final_model.zip", "best_model.zip")
REWARD_FILE = "reward.pt"


class RunFolderError(FileNotFoundError):
    """A run folder lacks what deployment needs, or holds something that does not fit the robot profile."""


def checkpoint_folder(run_dir: Path) -> Path:
    """The folder holding the agent and reward to deploy.

    A ``robo-reward train`` run keeps them in ``checkpoints/step_N/``, with ``checkpoints/latest`` naming the newest
    complete one; a folder that holds an agent zip itself (a checkpoint folder, or a hand-made one) is used as is.
    """
    pointer = run_dir / "checkpoints" / "latest"
    if pointer.is_file():
        folder = run_dir / "checkpoints" / pointer.read_text().strip()
        if not folder.is_dir():
            raise RunFolderError(f"{pointer} names {folder.name}, which does not exist; the run folder is damaged")
        return folder
    return run_dir


def find_policy_file(run_dir: Path) -> Path:
    """The SB3 zip of a run: one of :data:`POLICY_FILES` in :func:`checkpoint_folder`, else its only ``*.zip``."""
    folder = checkpoint_folder(run_dir)
    for name in POLICY_FILES:
        if (folder / name).is_file():
            return folder / name
    zips = sorted(folder.glob("*.zip"))
    if len(zips) == 1:
        return zips[0]
    raise RunFolderError(
        f"no policy checkpoint in {folder}: expected checkpoints/latest (a robo-reward train run) or one of "
        f"{list(POLICY_FILES)} (an SB3 model.save zip); found {[p.name for p in zips] or 'no .zip files'}; "
        "pass --policy PATH to choose one"
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


def find_reward_file(run_dir: Path) -> Path | None:
    """``reward.pt`` beside the deployed agent (written by the core's :func:`robo_reward.checkpoint.save_reward`)."""
    path = checkpoint_folder(run_dir) / REWARD_FILE
    return path if path.is_file() else None


def load_run_reward(run_dir: Path, reward_path: Path, observation_space: gym.Space, action_space: gym.Space,
                    gamma: float | None, overrides: Sequence[str] = ()) -> Reward:
    """The learned reward of a run, bound to the robot's spaces, with its saved state.

    A ``robo-reward train`` run rebuilds its reward design from ``config.yaml`` (as the core does on resume) and
    loads ``reward.pt`` into it; a checkpoint written by :func:`robo_reward.checkpoint.save_reward` with a registry
    spec loads on its own. Binding refuses a reward trained on other observation shapes. On a robot the env's
    own reward is unknown, so a design's ``extrinsic`` term pays 0. ``overrides`` (``key.sub=value``, as
    ``--set``) change the run's config before the reward is rebuilt.
    """
    from robo_reward.checkpoint import load_reward, load_reward_state

    config = run_dir / "config.yaml"
    if config.is_file():
        from robo_reward.config import load_config
        from robo_reward.runner import build_design

        reward = build_design(load_config(config, overrides).reward)
        if reward is None:
            raise RunFolderError(f"{config} configures no reward terms, yet {reward_path} exists; pass "
                                 "--reward none to deploy without a learned reward")
        reward.bind(observation_space, action_space, 1)
        if gamma is not None:
            reward.set_discount(gamma)
        load_reward_state(reward, reward_path)
        return reward
    reward = load_reward(reward_path)
    reward.bind(observation_space, action_space, 1)
    if gamma is not None:
        reward.set_discount(gamma)
    return reward
