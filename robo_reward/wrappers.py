"""Gymnasium adapters: a single-env wrapper and a vector-env wrapper that pay a robo_reward reward.

Both override ``step`` (``gymnasium.RewardWrapper.reward`` sees only the scalar, and every reward here needs
obs and action), keep terminated and truncated apart, put each term in ``info`` (``reward/extrinsic``,
``reward/<term>``) next to ``info["original_env_rew"]``, and refuse to wrap a second time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import RecordConstructorArgs
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper

from robo_reward.evaluator import RewardEvaluator, reward_record
from robo_reward.protocol import Obs, Reward, TransitionBatch


def _batch1(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: np.asarray(v)[None] for k, v in x.items()}
    return np.asarray(x)[None]


def _copy(obs: Obs) -> Obs:
    return {k: v.copy() for k, v in obs.items()} if isinstance(obs, dict) else obs.copy()


class RewardWrapper(gym.Wrapper, RecordConstructorArgs):
    """Pays ``extrinsic_weight * r_env + reward(s, a, s')`` in a single Gymnasium env.

    Constructor arguments are recorded, so ``gym.make(env.spec)`` rebuilds the stack when the reward is given as
    plain data (a registry name or spec mapping, plus an optional ``checkpoint`` path).

    >>> import robo_reward
    >>> env = RewardWrapper(gym.make("Pendulum-v1"), {"name": "goal_distance", "delta": [2]},
    ...                     extrinsic_weight=0.0)
    >>> obs, _ = env.reset(seed=0)
    >>> obs, r, terminated, truncated, info = env.step(env.action_space.sample())
    >>> bool(np.isclose(r, -abs(obs[2]))), sorted(k for k in info if k.startswith("reward/"))
    (True, ['reward/extrinsic', 'reward/goal_distance'])
    """

    def __init__(self, env: gym.Env, reward: Reward | str | Mapping[str, Any], *, extrinsic_weight: float = 1.0,
                 checkpoint: str | None = None, gamma: float | None = None) -> None:
        RecordConstructorArgs.__init__(self, reward=reward_record(reward), extrinsic_weight=extrinsic_weight,
                                       checkpoint=checkpoint, gamma=gamma)
        _refuse_rewrap(env)
        gym.Wrapper.__init__(self, env)
        self.evaluator = RewardEvaluator(reward, extrinsic_weight=extrinsic_weight, checkpoint=checkpoint)
        self.evaluator.bind(env.observation_space, env.action_space, 1)
        if gamma is not None:
            self.reward.set_discount(gamma)
        self._obs: Any = None
        self._needs_reset = True

    @property
    def reward(self) -> Reward:
        return self.evaluator.reward

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        self.evaluator.reset(_batch1(obs), np.ones(1, dtype=bool))
        self._obs, self._needs_reset = obs, False
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError("RewardWrapper.step() called before reset(): call env.reset() first")
        obs, r, terminated, truncated, info = self.env.step(action)
        batch = TransitionBatch(
            obs=_batch1(self._obs), action=_batch1(action), next_obs=_batch1(obs), reward=np.array([float(r)]),
            terminated=np.array([terminated]), truncated=np.array([truncated]), infos=(info,),
        )
        out = self.evaluator.step(batch)
        if self.evaluator.update_due:
            self.evaluator.run_update()
        info = dict(info, original_env_rew=r)
        info.update({f"reward/{k}": float(v[0]) for k, v in out.terms.items()})
        self._obs = obs
        self._needs_reset = bool(terminated or truncated)
        return obs, float(out.total[0]), terminated, truncated, info


def _refuse_rewrap(env: gym.Env) -> None:
    inner: Any = env
    while isinstance(inner, gym.Wrapper):
        if isinstance(inner, RewardWrapper):
            raise ValueError("this env is already wrapped by a RewardWrapper; combine rewards in one wrapper "
                             "(e.g. robo_reward.shaping.WeightedSum) instead of stacking two")
        inner = inner.env


def _rows_from_vector_info(infos: dict[str, Any], n: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [{} for _ in range(n)]
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get(f"_{key}", np.ones(n, dtype=bool))
        for i in np.flatnonzero(mask):
            rows[i][key] = value[i]
    return rows


class RewardVectorWrapper(VectorWrapper):
    """Pays a robo_reward reward in a Gymnasium ``VectorEnv``, honouring its ``autoreset_mode``.

    * NEXT_STEP (Gymnasium's default): the step after an episode ends is a reset step with a dummy action. It is
      not a transition: it is paid 0, no reward or model sees it (a step where every env resets calls no reward
      at all, though it still counts toward the update schedule), and per-env reward state restarts from its
      observation.
    * SAME_STEP: s' of a finished episode comes from ``info["final_obs"]``; reward state restarts from the
      returned (reset) observation.
    * DISABLED: the caller resets finished envs with ``reset(options={"reset_mask": mask})``.

    Each learned term updates every ``update_every`` vector steps of its own, wherever it sits in the reward
    (``auto_update=False`` leaves it to the caller through :meth:`update_reward`).
    """

    def __init__(self, env: VectorEnv, reward: Reward | str | Mapping[str, Any], *, extrinsic_weight: float = 1.0,
                 checkpoint: str | None = None, gamma: float | None = None, auto_update: bool = True) -> None:
        super().__init__(env)
        inner: Any = env
        while isinstance(inner, VectorWrapper):
            if isinstance(inner, RewardVectorWrapper):
                raise ValueError("this vector env already has a RewardVectorWrapper; combine rewards in one")
            inner = inner.env
        self.autoreset_mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        self.evaluator = RewardEvaluator(reward, extrinsic_weight=extrinsic_weight, checkpoint=checkpoint)
        self.evaluator.bind(env.single_observation_space, env.single_action_space, env.num_envs)
        if gamma is not None:
            self.reward.set_discount(gamma)
        self.auto_update = auto_update
        self._term_keys: list[str] = []
        self._obs: Any = None
        self._autoreset = np.zeros(env.num_envs, dtype=bool)

    @property
    def reward(self) -> Reward:
        return self.evaluator.reward

    def reset(self, *, seed: int | list[int] | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, infos = self.env.reset(seed=seed, options=options)  # type: ignore[arg-type]
        mask = np.asarray((options or {}).get("reset_mask", np.ones(self.num_envs, dtype=bool)), dtype=bool)
        self.evaluator.reset(obs, mask)
        self._obs = _copy(obs)
        self._autoreset[mask] = False
        return obs, infos

    def _final_next_obs(self, obs: Obs, infos: dict[str, Any], done: np.ndarray) -> Obs:
        rows = np.flatnonzero(done)
        if rows.size == 0:
            return obs
        if "final_obs" not in infos:
            raise RuntimeError("SAME_STEP autoreset returned a finished episode without info['final_obs']")
        finals = infos["final_obs"]
        next_obs = _copy(obs)
        if isinstance(next_obs, dict):
            for key in next_obs:
                next_obs[key][rows] = np.stack([finals[i][key] for i in rows])
        else:
            next_obs[rows] = np.stack([finals[i] for i in rows])
        return next_obs

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:  # type: ignore[override]
        obs, r, terminated, truncated, infos = self.env.step(actions)
        n = self.num_envs
        done = np.logical_or(terminated, truncated)
        valid = ~self._autoreset if self.autoreset_mode == AutoresetMode.NEXT_STEP else np.ones(n, dtype=bool)
        next_obs = self._final_next_obs(obs, infos, done) if self.autoreset_mode == AutoresetMode.SAME_STEP else obs
        batch = TransitionBatch(
            obs=self._obs, action=np.asarray(actions), next_obs=next_obs, reward=np.asarray(r, dtype=np.float64),
            terminated=np.asarray(terminated), truncated=np.asarray(truncated),
            infos=_rows_from_vector_info(infos, n) if self.reward.needs_infos else (),
        )
        all_valid = bool(valid.all())
        if valid.any():
            out = self.evaluator.step(batch if all_valid else batch.select(valid))
            self._term_keys = list(out.terms)
        else:
            out = self.evaluator.skip_step(self._term_keys)
        if self.auto_update and self.evaluator.update_due:
            self.evaluator.run_update()
        total = self._scatter(out.total, valid, all_valid)
        infos = dict(infos, original_env_rew=np.asarray(r), _original_env_rew=np.ones(n, dtype=bool))
        for key, value in out.terms.items():
            infos[f"reward/{key}"] = self._scatter(value, valid, all_valid)
            infos[f"_reward/{key}"] = valid
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            if self._autoreset.any():
                self.evaluator.reset(obs, self._autoreset)
            self._autoreset = done
        elif self.autoreset_mode == AutoresetMode.SAME_STEP and done.any():
            self.evaluator.reset(obs, done)
        self._obs = _copy(obs)
        return obs, total, terminated, truncated, infos

    @staticmethod
    def _scatter(values: np.ndarray, valid: np.ndarray, all_valid: bool) -> np.ndarray:
        if all_valid:
            return values
        full = np.zeros(len(valid))
        full[valid] = values
        return full

    def update_reward(self) -> dict[str, float]:
        """Update every learned term of the reward on the transitions queued for it so far."""
        return self.evaluator.run_update(all_pending=True)
