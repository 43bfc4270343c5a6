"""Stable-Baselines3 adapters: a reward ``VecEnvWrapper``, relabelling replay buffers and a logging callback.

* :class:`RewardVecEnvWrapper` pays the reward at step time, once per vector step for all envs. SB3 resets a
  finished sub-env at once, so s' of a finished episode is ``info["terminal_observation"]`` and
  ``info["TimeLimit.truncated"]`` tells truncation from termination.
* :class:`RelabelingReplayBuffer` / :class:`RelabelingDictReplayBuffer` (SAC, TD3, DQN) store the env's own reward
  untouched and recompute the designed reward of every sampled transition with the current model ("historical
  patching", Blonde et al., arXiv 2006.16785), so rewards learned online are never stale. Beside each slot they
  store the arrays the reward exposes through ``Reward.transition_state()`` at ``add`` time (per-episode state
  such as proposed keypoints) and hand them back in ``batch.extras``, so such rewards relabel from the stored
  rows without recomputing that state.
* :class:`RewardCallback` hands the learner's gamma to the reward, logs each term's per-episode sum, and runs
  each learned term's online ``update`` on its own ``update_every``.

Rewards are never added to PPO's advantages in a callback: SB3 computes returns and advantages before
``on_rollout_end`` and never recomputes them.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, cast

import gymnasium as gym
import numpy as np
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import DictReplayBufferSamples, ReplayBufferSamples
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecNormalize

from robo_reward.evaluator import EXTRINSIC, RewardEvaluator
from robo_reward.protocol import Obs, Reward, TransitionBatch

ORIGINAL_REWARD = "original_env_rew"


class RewardVecEnvWrapper(VecEnvWrapper):
    """Pays ``extrinsic_weight * r_env + reward(s, a, s')`` in an SB3 ``VecEnv``.

    Reward models must see raw observations, so a ``VecNormalize`` below this wrapper is refused: put
    ``VecNormalize`` (an inference-side transform) outside it. Each term also goes to ``info["reward/<term>"]``;
    after a step, :attr:`last_terms` holds the same values as one array per term.

    >>> from stable_baselines3.common.env_util import make_vec_env
    >>> venv = RewardVecEnvWrapper(make_vec_env("Pendulum-v1", n_envs=2, seed=0),
    ...                            {"name": "goal_distance", "delta": [2]}, extrinsic_weight=0.0)
    >>> obs = venv.reset()
    >>> obs, rewards, dones, infos = venv.step(np.zeros((2, 1)))
    >>> bool(np.allclose(rewards, -np.abs(obs[:, 2]))), "reward/goal_distance" in infos[0]
    (True, True)
    """

    def __init__(self, venv: VecEnv, reward: Reward | str | Mapping[str, Any], *, extrinsic_weight: float = 1.0,
                 checkpoint: str | None = None) -> None:
        inner: Any = venv
        while isinstance(inner, VecEnvWrapper):
            if isinstance(inner, RewardVecEnvWrapper):
                raise ValueError("this VecEnv already has a RewardVecEnvWrapper; combine rewards in one "
                                 "(e.g. robo_reward.shaping.WeightedSum) instead of stacking two")
            if isinstance(inner, VecNormalize):
                raise ValueError("VecNormalize sits below RewardVecEnvWrapper, so the reward would see normalised "
                                 "observations and rewards; wrap the reward first, then VecNormalize outside it")
            inner = inner.venv
        super().__init__(venv)
        self.evaluator = RewardEvaluator(reward, extrinsic_weight=extrinsic_weight, checkpoint=checkpoint)
        self.evaluator.bind(venv.observation_space, venv.action_space, venv.num_envs)
        self._obs: Obs | None = None
        self._actions: np.ndarray | None = None
        self._no_flags = np.zeros(venv.num_envs, dtype=bool)
        self._no_flags.flags.writeable = False
        self._info_keys: dict[str, str] = {}
        self._checked = False
        self.last_terms: dict[str, np.ndarray] = {}

    @property
    def reward(self) -> Reward:
        return self.evaluator.reward

    def reset(self) -> Obs:
        obs = _dict_or_array(self.venv.reset())
        self.evaluator.reset(obs, np.ones(self.num_envs, dtype=bool))
        self._obs = obs
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions
        self.venv.step_async(actions)

    def step_wait(self) -> tuple[Obs, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        step_obs, rewards, dones, infos = self.venv.step_wait()
        obs = cast(Obs, step_obs)  # a tuple observation is rejected by the first step's check below
        if self._obs is None or self._actions is None:
            raise RuntimeError("RewardVecEnvWrapper.step() called before reset()")
        any_done = np.count_nonzero(dones) > 0
        if any_done:
            terminated, truncated, next_obs = self._episode_ends(obs, dones, infos)
        else:
            terminated = truncated = self._no_flags
            next_obs = obs
        extrinsic = rewards.astype(np.float64)
        if self._checked:
            batch = TransitionBatch.trusted(self._obs, self._actions, next_obs, extrinsic, terminated, truncated,
                                            infos)
        else:
            _dict_or_array(obs)
            batch = TransitionBatch(self._obs, self._actions, next_obs, extrinsic, terminated, truncated, infos)
            self._checked = True
        out = self.evaluator.step(batch)
        self._write_infos(infos, out.terms)
        self.last_terms = out.terms
        if any_done:
            self.evaluator.reset(obs, dones.astype(bool))
        self._obs = obs
        return obs, out.total.astype(np.float32), dones, infos

    def _episode_ends(self, obs: Obs, dones: np.ndarray,
                      infos: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, Obs]:
        """Terminated and truncated flags and s' with each finished env's row from ``terminal_observation``."""
        ended = np.flatnonzero(dones)
        truncated = np.zeros(self.num_envs, dtype=bool)
        truncated[ended] = [infos[i].get("TimeLimit.truncated", False) for i in ended]
        terminated = dones & ~truncated
        return terminated, truncated, _with_rows(obs, ended, [infos[i]["terminal_observation"] for i in ended])

    def _write_infos(self, infos: list[dict[str, Any]], terms: dict[str, np.ndarray]) -> None:
        """``info["reward/<term>"]`` for every term (``extrinsic`` too) and ``info["original_env_rew"]``."""
        keys = self._info_keys
        for term, values in terms.items():
            key = keys.get(term) or keys.setdefault(term, f"reward/{term}")
            for info, value in zip(infos, values.tolist(), strict=True):
                info[key] = value
        for info, value in zip(infos, terms[EXTRINSIC].tolist(), strict=True):
            info[ORIGINAL_REWARD] = value


class VecObservationKey(VecEnvWrapper):
    """Shows the agent one entry of a dict observation; reward wrappers below it still see every entry.

    Rewards that read camera images can then train a state-based policy without the policy's network (or the
    replay buffer) ever holding the images.
    """

    def __init__(self, venv: VecEnv, key: str) -> None:
        space = venv.observation_space
        if not isinstance(space, gym.spaces.Dict) or key not in space.spaces:
            keys = list(space.spaces) if isinstance(space, gym.spaces.Dict) else "not a Dict space"
            raise ValueError(f"policy observation key {key!r} is not in the env's observations ({keys})")
        super().__init__(venv, observation_space=space[key])
        self.key = key

    def reset(self) -> np.ndarray:
        obs = self.venv.reset()
        assert isinstance(obs, dict)
        return obs[self.key]

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        obs, rewards, dones, infos = self.venv.step_wait()
        assert isinstance(obs, dict)
        for i in np.flatnonzero(dones):
            if "terminal_observation" in infos[i]:
                infos[i]["terminal_observation"] = infos[i]["terminal_observation"][self.key]
        return obs[self.key], rewards, dones, infos


def _dict_or_array(obs: Any) -> Obs:
    if isinstance(obs, tuple):
        raise TypeError("tuple observation spaces are not supported by the reward adapters; use a Dict space")
    return obs


def _with_rows(obs: Obs, rows: np.ndarray, values: list[Any]) -> Obs:
    if isinstance(obs, dict):
        out = {k: v.copy() for k, v in obs.items()}
        for key in out:
            out[key][rows] = np.stack([v[key] for v in values])
        return out
    out_arr = obs.copy()
    out_arr[rows] = np.stack(values)
    return out_arr


def find_reward_wrapper(venv: VecEnv) -> RewardVecEnvWrapper | None:
    """The :class:`RewardVecEnvWrapper` in a VecEnv stack, or None."""
    inner: Any = venv
    while isinstance(inner, VecEnvWrapper):
        if isinstance(inner, RewardVecEnvWrapper):
            return inner
        inner = inner.venv
    return None


class _Relabeling(abc.ABC):
    """Shared by both relabelling buffers: keeps r_env in the buffer and recomputes the design at sample time."""

    action_space: gym.Space
    n_envs: int
    buffer_size: int
    pos: int
    full: bool
    reward: Reward | None
    extrinsic_weight: float
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    timeouts: np.ndarray

    def attach_reward(self, reward: Reward, extrinsic_weight: float = 1.0) -> None:
        """Use ``reward`` (typically the env wrapper's) for every sampled transition."""
        self.reward, self.extrinsic_weight = reward, float(extrinsic_weight)

    def _store_extras(self, extras: Mapping[str, np.ndarray] | None) -> None:
        """Write one row per env of reward state into the slot ``add`` is about to fill (``self.pos``).

        ``extras`` defaults to the attached reward's :meth:`~robo_reward.protocol.Reward.transition_state`;
        arrays are allocated at the first add that carries a key (``(buffer_size, n_envs, *shape)``).
        """
        if extras is None:
            extras = self.reward.transition_state() if self.reward is not None else {}
        store: dict[str, np.ndarray] = self.__dict__.setdefault("extras", {})
        if store and set(extras) != set(store):
            raise ValueError(f"reward transition state keys changed from {sorted(store)} to {sorted(extras)}; "
                             "a reward must expose the same transition_state() keys at every add")
        for key, value in extras.items():
            value = np.asarray(value)
            if len(value) != self.n_envs:
                raise ValueError(f"transition state {key!r} has {len(value)} rows; the buffer has {self.n_envs} envs")
            if key not in store:
                store[key] = np.zeros((self.buffer_size, *value.shape), dtype=value.dtype)
            store[key][self.pos] = value

    def __getstate__(self) -> dict[str, Any]:
        """Pickle (SB3's ``save_replay_buffer``) without the reward: it is saved with its own checkpoint, may not
        pickle (torch parametrizations such as spectral norm refuse), and RewardCallback re-attaches it."""
        state = self.__dict__.copy()
        state["reward"] = None
        return state

    @staticmethod
    def extrinsic(reward: np.ndarray, infos: list[dict[str, Any]]) -> np.ndarray:
        return np.array([info.get(ORIGINAL_REWARD, r) for r, info in zip(reward, infos, strict=True)])

    def env_actions(self, actions: np.ndarray) -> np.ndarray:
        """SB3 stores Box actions rescaled to [-1, 1]; the reward saw the env's actions, so undo the scaling."""
        if isinstance(self.action_space, gym.spaces.Box):
            low, high = self.action_space.low, self.action_space.high
            return low + 0.5 * (actions + 1.0) * (high - low)
        return actions

    @abc.abstractmethod
    def _observations(self, batch_inds: np.ndarray, env_indices: np.ndarray) -> tuple[Obs, Obs]:
        """Raw (s, s') of the stored rows, in the buffer's own layout."""

    def stored(self, batch_inds: np.ndarray, env_indices: np.ndarray) -> TransitionBatch:
        """Stored transitions as the env produced them: raw observations, env-range actions, the env's reward."""
        obs, next_obs = self._observations(batch_inds, env_indices)
        done = self.dones[batch_inds, env_indices].astype(bool)
        timeout = self.timeouts[batch_inds, env_indices].astype(bool)
        extras = {k: v[batch_inds, env_indices] for k, v in self.__dict__.get("extras", {}).items()}
        return TransitionBatch(obs=obs, action=self.env_actions(self.actions[batch_inds, env_indices]),
                               next_obs=next_obs, reward=self.rewards[batch_inds, env_indices].astype(np.float64),
                               terminated=done & ~timeout, truncated=done & timeout, env_ids=env_indices,
                               extras=extras)

    def sample_transitions(self, n: int, rng: np.random.Generator) -> TransitionBatch:
        """``n`` stored transitions drawn uniformly (e.g. a discriminator's policy batch)."""
        upper = self.buffer_size if self.full else self.pos
        if upper == 0:
            raise RuntimeError("the replay buffer is empty; sample after learning_starts")
        return self.stored(rng.integers(0, upper, n), rng.integers(0, self.n_envs, n))

    def designed_rewards(self, batch: TransitionBatch) -> np.ndarray:
        if self.reward is None:
            raise RuntimeError("relabelling buffer has no reward: train with RewardCallback (it attaches the "
                               "RewardVecEnvWrapper's reward) or call buffer.attach_reward(reward)")
        return self.extrinsic_weight * batch.reward + self.reward.relabel(batch)


class RelabelingReplayBuffer(_Relabeling, ReplayBuffer):
    """SB3 ``ReplayBuffer`` whose sampled rewards are recomputed with the current reward model.

    Pass it as ``SAC(..., replay_buffer_class=RelabelingReplayBuffer)``; :class:`RewardCallback` attaches the
    env wrapper's reward. ``self.rewards`` keeps the env's own reward.
    """

    def __init__(self, *args: Any, reward: Reward | None = None, extrinsic_weight: float = 1.0,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reward, self.extrinsic_weight = reward, float(extrinsic_weight)

    def add(self, obs: np.ndarray, next_obs: np.ndarray, action: np.ndarray, reward: np.ndarray,
            done: np.ndarray, infos: list[dict[str, Any]], extras: Mapping[str, np.ndarray] | None = None) -> None:
        self._store_extras(extras)
        super().add(obs, next_obs, action, self.extrinsic(reward, infos), done, infos)

    def _observations(self, batch_inds: np.ndarray, env_indices: np.ndarray) -> tuple[Obs, Obs]:
        if self.optimize_memory_usage:
            next_obs = self.observations[(batch_inds + 1) % self.buffer_size, env_indices]
        else:
            next_obs = self.next_observations[batch_inds, env_indices]
        return self.observations[batch_inds, env_indices], next_obs

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> ReplayBufferSamples:
        env_indices = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        batch = self.stored(batch_inds, env_indices)
        rewards = self.designed_rewards(batch)
        data = (
            self._normalize_obs(batch.obs, env), self.actions[batch_inds, env_indices],
            self._normalize_obs(batch.next_obs, env), batch.terminated.astype(np.float32).reshape(-1, 1),
            self._normalize_reward(rewards.reshape(-1, 1).astype(np.float32), env),
        )
        return ReplayBufferSamples(*tuple(map(self.to_torch, data)))


class RelabelingDictReplayBuffer(_Relabeling, DictReplayBuffer):
    """The dict-observation twin of :class:`RelabelingReplayBuffer` (MultiInputPolicy)."""

    def __init__(self, *args: Any, reward: Reward | None = None, extrinsic_weight: float = 1.0,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reward, self.extrinsic_weight = reward, float(extrinsic_weight)

    def add(self, obs: dict[str, np.ndarray], next_obs: dict[str, np.ndarray],  # type: ignore[override]
            action: np.ndarray, reward: np.ndarray, done: np.ndarray, infos: list[dict[str, Any]],
            extras: Mapping[str, np.ndarray] | None = None) -> None:
        self._store_extras(extras)
        super().add(obs, next_obs, action, self.extrinsic(reward, infos), done, infos)

    def _observations(self, batch_inds: np.ndarray, env_indices: np.ndarray) -> tuple[Obs, Obs]:
        return ({k: v[batch_inds, env_indices] for k, v in self.observations.items()},
                {k: v[batch_inds, env_indices] for k, v in self.next_observations.items()})

    def _get_samples(self, batch_inds: np.ndarray,  # type: ignore[override]
                     env: VecNormalize | None = None) -> DictReplayBufferSamples:
        env_indices = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        batch = self.stored(batch_inds, env_indices)
        rewards = self.designed_rewards(batch)
        obs_n, next_n = self._normalize_obs(batch.obs, env), self._normalize_obs(batch.next_obs, env)
        return DictReplayBufferSamples(
            observations={k: self.to_torch(v) for k, v in obs_n.items()},  # type: ignore[union-attr]
            actions=self.to_torch(self.actions[batch_inds, env_indices]),
            next_observations={k: self.to_torch(v) for k, v in next_n.items()},  # type: ignore[union-attr]
            dones=self.to_torch(batch.terminated.astype(np.float32)).reshape(-1, 1),
            rewards=self.to_torch(self._normalize_reward(rewards.reshape(-1, 1).astype(np.float32), env)),
        )


class RewardCallback(BaseCallback):
    """Connects the reward to an SB3 learner.

    On training start it passes ``model.gamma`` to the reward (a shaping term configured with another gamma
    raises) and attaches the reward to a relabelling replay buffer. Every step it sums each ``reward/<term>`` per
    episode (from the wrapper's :attr:`~RewardVecEnvWrapper.last_terms`, one array per term, not per env); at each episode end it records the sums (``reward/<term>`` means in the SB3 logger) and appends them
    to :attr:`episodes`, with the env's ``is_success`` and ``progress`` at the last step where it reports them.
    Each term that learns online (alone or inside a composite) is updated every ``update_every`` steps of its
    own; the metrics go to ``reward_update/`` (``reward_update/<term>/<metric>`` for a nested term).
    """

    def __init__(self, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.episodes: list[dict[str, float]] = []
        self.wrapper: RewardVecEnvWrapper | None = None
        self._sums: dict[str, np.ndarray] = {}
        self._lengths = np.zeros(0)

    def _on_training_start(self) -> None:
        self.wrapper = find_reward_wrapper(self.training_env)
        if self.wrapper is None:
            raise ValueError("RewardCallback found no RewardVecEnvWrapper in the training env; wrap it with "
                             "robo_reward.RewardVecEnvWrapper(venv, reward)")
        self.wrapper.reward.set_discount(float(self.model.gamma))  # type: ignore[attr-defined]
        buffer = getattr(self.model, "replay_buffer", None)
        if isinstance(buffer, _Relabeling) and buffer.reward is None:
            buffer.attach_reward(self.wrapper.reward, self.wrapper.evaluator.extrinsic_weight)
        if not self._sums:
            self._lengths = np.zeros(self.training_env.num_envs)

    def _on_step(self) -> bool:
        assert self.wrapper is not None
        dones = np.asarray(self.locals["dones"], dtype=bool)
        keys = self.wrapper._info_keys
        for term, values in self.wrapper.last_terms.items():
            key = keys[term]
            sums = self._sums.get(key)
            if sums is None:
                sums = self._sums[key] = np.zeros(len(values))
            sums += values
        self._lengths += 1
        if np.count_nonzero(dones):
            self._end_episodes(np.flatnonzero(dones), self.locals["infos"])
        if self.wrapper.evaluator.update_due:
            for key, value in self.wrapper.evaluator.run_update().items():
                self.logger.record(f"reward_update/{key}", value)
        return True

    def _end_episodes(self, ended: np.ndarray, infos: list[dict[str, Any]]) -> None:
        for i in ended:
            episode = {"timestep": float(self.num_timesteps), "env": float(i), "length": float(self._lengths[i])}
            for key, sums in self._sums.items():
                episode[key] = float(sums[i])
                self.logger.record_mean(key, float(sums[i]))
                sums[i] = 0.0
            for key in ("is_success", "progress"):
                if key in infos[i]:
                    episode[key] = float(infos[i][key])
            self.episodes.append(episode)
            self._lengths[i] = 0
