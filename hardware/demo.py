"""A demo run folder for the fake robot: an SB3 policy and a small learned reward with the robot's spaces.

``make_demo_run`` writes what a ``robo-reward train`` checkpoint holds (an SB3 zip and ``reward.pt``), so the
deployment path can be exercised end to end on the fake robot without training: the policy's weights are its seeded
initialisation with a gain on the action head, so its actions are large and state-dependent (which exercises the
safety layer's clipping and rate limiting), and the reward is a seeded MLP. Nothing here is a trained result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from robo_reward.checkpoint import save_reward
from robo_reward.hardware.bridge import observation_space
from robo_reward.hardware.profile import RobotProfile
from robo_reward.protocol import Obs, Reward, RewardOutput, SpaceMismatchError, TransitionBatch
from robo_reward.registry import make_reward


class FakeRobotDemoReward(Reward):
    """A learned reward over joint positions and a camera image: ``progress`` = f(s') - f(s) for an MLP f over
    the joints and a 12x12 grey thumbnail, plus ``action_cost`` = -c * ||a||^2.

    :param joint_key: observation key of the joint positions.
    :param image_key: observation key of the camera image (None: joints only).
    :param hidden: MLP width.
    :param action_cost: c.
    :param seed: initialises the MLP (the demo ships no trained weights; load a ``state_dict`` for real ones).
    """

    name = "fake_robot_demo"

    def __init__(self, *, joint_key: str = "joint_pos", image_key: str | None = "image", hidden: int = 32,
                 action_cost: float = 0.01, seed: int = 0) -> None:
        import torch

        self.joint_key, self.image_key, self.hidden, self.action_cost = joint_key, image_key, hidden, action_cost
        self.seed = seed
        self._torch = torch
        self.net: Any = None

    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        if not isinstance(observation_space, gym.spaces.Dict) or self.joint_key not in observation_space.spaces:
            raise SpaceMismatchError(f"FakeRobotDemoReward reads Dict observations with key '{self.joint_key}', "
                                     f"got {observation_space}")
        if self.image_key is not None and self.image_key not in observation_space.spaces:
            raise SpaceMismatchError(f"FakeRobotDemoReward: no image key '{self.image_key}' in {observation_space}")

    def bind(self, observation_space: gym.Space, action_space: gym.Space, num_envs: int) -> None:
        super().bind(observation_space, action_space, num_envs)
        if self.net is None:
            self._build(int(observation_space[self.joint_key].shape[0]))  # type: ignore[index]

    def _build(self, n_joints: int) -> None:
        torch = self._torch
        gen = torch.Generator().manual_seed(self.seed)
        size = n_joints + (144 if self.image_key else 0)
        self.net = torch.nn.Sequential(torch.nn.Linear(size, self.hidden), torch.nn.Tanh(),
                                       torch.nn.Linear(self.hidden, 1)).double()
        with torch.no_grad():
            for p in self.net.parameters():
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.3)

    def _features(self, obs: Obs) -> np.ndarray:
        assert isinstance(obs, dict)
        parts = [np.asarray(obs[self.joint_key], np.float64)]
        if self.image_key is not None:
            img = np.asarray(obs[self.image_key], np.float64)
            grey = img.mean(axis=-1)
            n, h, w = grey.shape
            thumb = grey[:, : h - h % 12, : w - w % 12].reshape(n, 12, h // 12, 12, w // 12).mean(axis=(2, 4))
            parts.append(thumb.reshape(n, -1) / 255.0)
        return np.concatenate(parts, axis=1)

    def potential(self, obs: Obs) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            return self.net(torch.from_numpy(self._features(obs))).numpy()[:, 0]

    def evaluate(self, batch: TransitionBatch) -> RewardOutput:
        if self.net is None:
            raise RuntimeError("FakeRobotDemoReward must be bound to the observation space before use")
        progress = self.potential(batch.next_obs) - self.potential(batch.obs)
        cost = -self.action_cost * np.square(np.asarray(batch.action, np.float64)).sum(axis=1)
        return RewardOutput(progress + cost, {"progress": progress, "action_cost": cost})

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        return self.evaluate(batch).total

    def state_dict(self) -> dict[str, Any]:
        return {"net": {k: v.clone() for k, v in self.net.state_dict().items()}} if self.net is not None else {}

    def load_state_dict(self, state: Any) -> None:
        if "net" not in state:
            raise ValueError(f"FakeRobotDemoReward checkpoint has keys {sorted(state)}, expected ['net']")
        n_in = int(state["net"]["0.weight"].shape[1]) - (144 if self.image_key else 0)
        self._build(n_in)
        self.net.load_state_dict(state["net"])


class _SpacesEnv(gym.Env):
    """Only carries spaces so SB3 can build a model; never stepped."""

    def __init__(self, obs_space: gym.Space, act_space: gym.Space) -> None:
        self.observation_space, self.action_space = obs_space, act_space

    def reset(self, *, seed: int | None = None, options: dict | None = None):  # type: ignore[no-untyped-def]
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):  # type: ignore[no-untyped-def]
        return self.observation_space.sample(), 0.0, False, False, {}


def make_demo_run(run_dir: str | Path, profile: RobotProfile, *, seed: int = 0, action_gain: float = 300.0,
                  with_reward: bool = True) -> Path:
    """Write ``agent.zip`` (PPO, seeded init, action head scaled by ``action_gain``) and ``reward.pt``."""
    import torch
    from stable_baselines3 import PPO

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    obs_space = observation_space(profile)
    act_space = gym.spaces.Box(-1.0, 1.0, (profile.action_dim,), np.float32)
    policy = "MultiInputPolicy" if isinstance(obs_space, gym.spaces.Dict) else "MlpPolicy"
    model = PPO(policy, _SpacesEnv(obs_space, act_space), seed=seed, device="cpu", n_steps=8, batch_size=8,
                policy_kwargs={"net_arch": [32, 32]})
    with torch.no_grad():
        model.policy.action_net.weight.mul_(action_gain)  # type: ignore[operator]
    model.save(run_dir / "agent.zip")
    if with_reward:
        keys = list(obs_space.spaces) if isinstance(obs_space, gym.spaces.Dict) else []
        joint_key = next(k for k, o in profile.observations.items() if o.source == "joint_state")
        image_key = next((k for k, o in profile.observations.items() if o.source == "image"), None)
        if not keys:
            raise ValueError("the demo reward reads Dict observations; use observation_layout: dict")
        reward = make_reward("fake_robot_demo", joint_key=joint_key, image_key=image_key, seed=seed)
        reward.bind(obs_space, act_space, 1)
        save_reward(reward, run_dir / "reward.pt")
    return run_dir
