"""In-house experts and demonstration datasets for imitation rewards (nothing is downloaded).

:func:`make_expert_dataset` trains SB3 SAC on an env's true reward, rolls out its deterministic policy for
``n_demos`` episodes, measures the random and expert reference returns, and writes the demos as a Minari dataset
(``ref_min_score`` = random, ``ref_max_score`` = expert, so ``minari.get_normalized_score`` and the benchmark's
expert-normalised score agree).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import SAC

from robo_reward.datasets import save_minari

Policy = Callable[[np.ndarray], np.ndarray]


def rollout(env_id: str, policy: Policy | None, *, episodes: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Episodes of ``policy`` (uniform random actions when None) in Minari's episode layout."""
    env = gym.make(env_id)
    env.action_space.seed(seed)
    out = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        observations, actions, rewards, terms, truncs = [obs], [], [], [], []
        while True:
            action = env.action_space.sample() if policy is None else policy(obs)
            obs, reward, terminated, truncated, _ = env.step(action)
            observations.append(obs)
            actions.append(np.asarray(action, dtype=np.float32))
            rewards.append(float(reward))
            terms.append(bool(terminated))
            truncs.append(bool(truncated))
            if terminated or truncated:
                break
        out.append({"observations": np.asarray(observations, dtype=np.float32), "actions": np.asarray(actions),
                    "rewards": np.asarray(rewards), "terminations": np.asarray(terms),
                    "truncations": np.asarray(truncs)})
    env.close()
    return out


def episode_returns(episodes: list[dict[str, np.ndarray]]) -> np.ndarray:
    return np.array([ep["rewards"].sum() for ep in episodes])


@dataclass
class ExpertReport:
    dataset_id: str
    expert_return: float
    random_return: float
    demo_returns: list[float]
    train_steps: int


def train_expert(env_id: str, *, steps: int, seed: int = 0, agent_kwargs: dict[str, Any] | None = None) -> SAC:
    """SB3 SAC trained on the env's own reward."""
    torch.set_num_threads(1)
    model = SAC("MlpPolicy", env_id, seed=seed, verbose=0, **(agent_kwargs or {}))
    model.learn(steps)
    return model


def make_expert_dataset(
    env_id: str,
    dataset_id: str,
    *,
    steps: int,
    n_demos: int = 10,
    seed: int = 0,
    reference_episodes: int = 20,
    agent_kwargs: dict[str, Any] | None = None,
) -> ExpertReport:
    """Train an expert, record ``n_demos`` demos into the Minari dataset ``dataset_id``; return the reference
    returns (random and expert means over ``reference_episodes`` episodes on seeds unseen by the demos)."""
    model = train_expert(env_id, steps=steps, seed=seed, agent_kwargs=agent_kwargs)

    def policy(obs: np.ndarray) -> np.ndarray:
        return model.predict(obs, deterministic=True)[0]

    demos = rollout(env_id, policy, episodes=n_demos, seed=seed + 1000)
    expert = float(episode_returns(rollout(env_id, policy, episodes=reference_episodes, seed=seed + 5000)).mean())
    rand = float(episode_returns(rollout(env_id, None, episodes=reference_episodes, seed=seed + 5000)).mean())
    save_minari(dataset_id, demos, env=gym.make(env_id), ref_min_score=rand, ref_max_score=expert,
                algorithm_name=f"SB3 SAC, {steps} steps, seed {seed}, deterministic policy")
    return ExpertReport(dataset_id, expert, rand, episode_returns(demos).tolist(), steps)
