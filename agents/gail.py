"""Off-policy GAIL trainer: SB3 SAC or TD3 on the discriminator reward, relabelled at sample time.

Blondé, Strasser, Kalousis 2022 (arXiv 2006.16785), on top of DAC (Kostrikov et al. 2019). The pieces:

* the env is wrapped in :class:`~robo_reward.absorbing.AbsorbingStateWrapper` (DAC absorbing states) when
  ``absorbing`` is on, and in the core :class:`~robo_reward.sb3.RewardVecEnvWrapper` carrying
  :class:`~robo_reward.methods.gail.GAILReward` with ``extrinsic_weight=0`` (the env reward is only logged);
* the learner uses the core :class:`~robo_reward.sb3.RelabelingReplayBuffer`, which keeps the env reward and
  recomputes the discriminator reward of every sampled transition with the current ``D`` (historical patching);
* :class:`DiscriminatorCallback` trains ``D`` every ``d_every`` env steps on transitions sampled uniformly from the
  replay buffer against expert transitions (the paper's replay-vs-expert schedule);
* :class:`EvalCallback` measures the deterministic policy's *true* return on fresh envs every ``eval_every`` steps.

Where this small build departs from the reference setup (specs/lipschitz_gail.md): SB3's SAC/TD3 have no n-step
returns (the paper uses 10-step lookahead), exploration is SAC's entropy bonus or TD3's Gaussian action noise (not
parameter noise + OU), and the discriminator is updated in blocks (``d_steps`` steps every ``d_every`` env steps)
instead of one step per learner step, which keeps the CPU cost down at the same update ratio.

``reward="env"`` trains the same learner on the env's own reward (the "true reward" baseline of the benchmark).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from robo_reward.absorbing import AbsorbingStateWrapper
from robo_reward.methods.gail.reward import GAILReward
from robo_reward.protocol import TransitionBatch
from robo_reward.sb3 import (
    RelabelingDictReplayBuffer,
    RelabelingReplayBuffer,
    RewardCallback,
    RewardVecEnvWrapper,
)

ALGOS: dict[str, type[BaseAlgorithm]] = {"sac": SAC, "td3": TD3}


@dataclass
class GAILConfig:
    """One off-policy GAIL (or true-reward) run.

    :param env_id: Gymnasium id of a continuous-control task with flat Box observations.
    :param demos: demonstration source (Minari dataset id or folder, ``.npz``; :mod:`robo_reward.datasets`).
    :param max_demos: expert episodes used (the benchmark uses <= 10).
    :param reward: "gail" (discriminator reward) or "env" (the env's own reward, same learner).
    :param algo: "sac" or "td3".
    :param total_steps: env steps of training.
    :param absorbing: DAC absorbing states for early termination (GAIL only).
    :param d_every: env steps between discriminator updates.
    :param d_steps: discriminator gradient steps per update.
    :param d_batch: policy (and expert) rows per discriminator step.
    :param reward_kwargs: further :class:`GAILReward` arguments (penalty, reward_form, precondition, ...).
    :param agent_kwargs: SB3 constructor arguments (learning_rate, buffer_size, batch_size, ...).
    :param action_noise: std of TD3's Gaussian exploration noise, as a fraction of the action range.
    :param eval_every: env steps between evaluations of the deterministic policy on the true reward.
    :param eval_episodes: episodes per evaluation.
    :param seed: seeds the env, the learner and the reward.
    """

    env_id: str
    demos: str = ""
    max_demos: int | None = 10
    reward: Literal["gail", "env"] = "gail"
    algo: Literal["sac", "td3"] = "sac"
    total_steps: int = 20_000
    absorbing: bool = True
    d_every: int = 10
    d_steps: int = 5
    d_batch: int = 128
    reward_kwargs: dict[str, Any] = field(default_factory=dict)
    agent_kwargs: dict[str, Any] = field(default_factory=dict)
    action_noise: float = 0.1
    eval_every: int = 2_000
    eval_episodes: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.reward not in ("gail", "env"):
            raise ValueError(f"GAILConfig.reward must be 'gail' or 'env', got {self.reward!r}")
        if self.algo not in ALGOS:
            raise ValueError(f"GAILConfig.algo must be one of {sorted(ALGOS)}, got {self.algo!r}")
        if self.reward == "gail" and not self.demos:
            raise ValueError("GAILConfig.demos is empty; a GAIL run needs expert demonstrations (see robo_reward.datasets)")
        bad = {"update_every", "batch_size", "d_steps", "absorbing", "expert", "seed"} & set(self.reward_kwargs)
        if bad:
            raise ValueError(f"set {sorted(bad)} through GAILConfig (d_every, d_batch, d_steps, absorbing, demos, "
                             "seed), not reward_kwargs")


def sample_replay(buffer: ReplayBuffer, n: int, rng: np.random.Generator) -> TransitionBatch:
    """``n`` stored transitions drawn uniformly, as the env produced them (env-range actions, env reward)."""
    if not isinstance(buffer, (RelabelingReplayBuffer, RelabelingDictReplayBuffer)):
        raise TypeError(f"GAIL needs the core's relabelling replay buffer, got {type(buffer).__name__}")
    return buffer.sample_transitions(n, rng)


class DiscriminatorCallback(BaseCallback):
    """Every ``every`` env steps after ``learning_starts``: ``reward.update`` on ``steps * batch`` replay rows."""

    def __init__(self, reward: GAILReward, *, every: int, batch: int, steps: int, seed: int = 0) -> None:
        super().__init__()
        self.reward, self.every, self.batch, self.steps = reward, every, batch, steps
        self.rng = np.random.default_rng(seed)
        self.history: list[dict[str, float]] = []
        self._last = 0

    def _on_step(self) -> bool:
        model: Any = self.model
        if self.num_timesteps < model.learning_starts or self.num_timesteps - self._last < self.every:
            return True
        self._last = self.num_timesteps
        metrics = self.reward.update(sample_replay(model.replay_buffer, self.batch * self.steps, self.rng))
        for key, value in metrics.items():
            self.logger.record_mean(f"discriminator/{key}", value)
        self.history.append({"timestep": float(self.num_timesteps), **metrics})
        return True


def evaluate(model: BaseAlgorithm, env_id: str, *, episodes: int, seed: int, absorbing: bool) -> np.ndarray:
    """True return of ``episodes`` deterministic episodes, run in lockstep on a vector of envs."""
    venv = make_env(env_id, n_envs=episodes, seed=seed, absorbing=absorbing)
    obs = venv.reset()
    returns, done = np.zeros(episodes), np.zeros(episodes, dtype=bool)
    while not done.all():
        action, _ = model.predict(obs, deterministic=True)
        obs, reward, dones, _ = venv.step(action)
        returns += np.where(done, 0.0, reward)
        done |= dones
    venv.close()
    return returns


class EvalCallback(BaseCallback):
    """Records ``(env steps, mean true return)`` every ``every`` steps and at the end; ``on_eval`` sees each row."""

    def __init__(self, env_id: str, *, every: int, episodes: int, seed: int, absorbing: bool,
                 on_eval: Callable[[dict[str, float]], None] | None = None) -> None:
        super().__init__()
        self.env_id, self.every, self.episodes, self.seed, self.absorbing = env_id, every, episodes, seed, absorbing
        self.on_eval = on_eval
        self.curve: list[dict[str, float]] = []
        self._next = every

    def run(self) -> None:
        returns = evaluate(self.model, self.env_id, episodes=self.episodes, seed=self.seed, absorbing=self.absorbing)
        row = {"timestep": float(self.num_timesteps), "return": float(returns.mean()),
               "return_std": float(returns.std())}
        self.curve.append(row)
        if self.on_eval is not None:
            self.on_eval(row)

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next += self.every
            self.run()
        return True

    def _on_training_end(self) -> None:
        if not self.curve or self.curve[-1]["timestep"] < self.num_timesteps:
            self.run()


def make_env(env_id: str, *, n_envs: int = 1, seed: int = 0, absorbing: bool = False) -> VecEnv:
    """SB3 vector env (Monitor inside, absorbing-state wrapper outside it when asked)."""
    return make_vec_env(env_id, n_envs=n_envs, seed=seed, vec_env_cls=DummyVecEnv,
                        wrapper_class=AbsorbingStateWrapper if absorbing else None)


def build(cfg: GAILConfig) -> tuple[BaseAlgorithm, GAILReward | None, list[BaseCallback]]:
    """The learner, the reward (None for ``reward="env"``) and the training callbacks (without evaluation)."""
    absorbing = cfg.absorbing and cfg.reward == "gail"
    venv = make_env(cfg.env_id, seed=cfg.seed, absorbing=absorbing)
    kwargs: dict[str, Any] = {"learning_starts": 1000, "verbose": 0, **cfg.agent_kwargs}
    if cfg.algo == "td3" and "action_noise" not in kwargs:
        assert isinstance(venv.action_space, gym.spaces.Box)
        dim = venv.action_space.shape[0]
        span = (venv.action_space.high - venv.action_space.low) / 2
        kwargs["action_noise"] = NormalActionNoise(np.zeros(dim), cfg.action_noise * span * np.ones(dim))
    callbacks: list[BaseCallback] = []
    reward = None
    if cfg.reward == "gail":
        reward = GAILReward(expert=cfg.demos, max_expert_episodes=cfg.max_demos, absorbing=absorbing,
                            update_every=None, batch_size=cfg.d_batch, d_steps=cfg.d_steps, seed=cfg.seed,
                            **cfg.reward_kwargs)
        reward.spec = {"name": "gail", "kwargs": {"expert": cfg.demos, "max_expert_episodes": cfg.max_demos,
                                                  "absorbing": absorbing, **cfg.reward_kwargs}}
        venv = RewardVecEnvWrapper(venv, reward, extrinsic_weight=0.0)
        kwargs["replay_buffer_class"] = RelabelingReplayBuffer
        callbacks += [RewardCallback(), DiscriminatorCallback(reward, every=cfg.d_every, batch=cfg.d_batch,
                                                              steps=cfg.d_steps, seed=cfg.seed)]
    model = ALGOS[cfg.algo]("MlpPolicy", venv, seed=cfg.seed, **kwargs)
    return model, reward, callbacks


def train(cfg: GAILConfig, *, out_dir: str | Path | None = None,
          on_eval: Callable[[dict[str, float]], None] | None = None) -> dict[str, Any]:
    """Train one run; returns the evaluation curve, discriminator metrics and wall time, and saves the policy and
    reward to ``out_dir`` when given."""
    torch.set_num_threads(1)
    model, reward, callbacks = build(cfg)
    absorbing = cfg.absorbing and cfg.reward == "gail"
    evaluator = EvalCallback(cfg.env_id, every=cfg.eval_every, episodes=cfg.eval_episodes, seed=10_000 + cfg.seed,
                             absorbing=absorbing, on_eval=on_eval)
    start = time.perf_counter()
    model.learn(cfg.total_steps, callback=CallbackList([*callbacks, evaluator]))
    result: dict[str, Any] = {
        "config": asdict(cfg), "curve": evaluator.curve, "wall_s": time.perf_counter() - start,
        "discriminator": next((c.history for c in callbacks if isinstance(c, DiscriminatorCallback)), []),
    }
    if out_dir is not None:
        from robo_reward.checkpoint import save_reward

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        model.save(out / "agent.zip")
        if reward is not None:
            save_reward(reward, out / "reward.pt")
    return result


def config_from_mapping(data: Mapping[str, Any]) -> GAILConfig:
    """A :class:`GAILConfig` from plain data (YAML); unknown keys are an error naming the valid ones."""
    valid = set(GAILConfig.__dataclass_fields__)
    unknown = set(data) - valid
    if unknown:
        raise KeyError(f"unknown GAIL config keys {sorted(unknown)}; valid keys: {sorted(valid)}")
    return GAILConfig(**dict(data))
