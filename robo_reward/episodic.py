"""Episode-end rewards: paid when an episode ends and written back to its transitions before a learner uses them.

Some rewards exist only for a whole trajectory: RAPL's optimal-transport matching of a rollout against an expert
video, a return-level preference score. An :class:`EpisodicReward` pays 0 at every step, keeps what it needs of
each step (vectorised over envs, no python loop in the step path) and, when an env's episode ends, computes one
reward per step of that episode (:meth:`EpisodicReward.episode_rewards`) and queues it. The learner's buffer then
adds those rewards to the episode's stored slots:

* :class:`EpisodicReplayBuffer` / :class:`EpisodicDictReplayBuffer` (SAC, TD3) track each env's episode slots in
  the ``(buffer_size, n_envs)`` ring and rewrite them when the episode's last transition is added, across the
  ring's wrap-around; slots already overwritten (an episode longer than the buffer) are skipped, other episodes'
  slots are untouched. They sample only slots whose episode has ended, so no update sees a running episode's
  slots before its reward is in.
* :class:`EpisodicRolloutBuffer` (PPO) does the same in the rollout buffer, so the rewards are in place before
  ``compute_returns_and_advantage`` runs; advantages are never patched afterwards. An episode must not span a
  rollout boundary (its length must divide ``n_steps``): the buffer raises if one does.

The rewards are added to what was stored at step time (``extrinsic_weight * r_env`` plus any step-time terms, and
SB3's bootstrap of truncated episodes), never replacing it. Buffers get the reward from the env's
:class:`~robo_reward.sb3.RewardVecEnvWrapper` through :func:`attach_episodic` (the agents in
``robo_reward.agents.episodic`` call it when learning starts); without an episodic term in the env's reward they are
plain SB3 buffers, so the env's own reward trains through the same agent. Step-time adapters (the Gymnasium wrappers) pay only
the zeros: an episodic reward needs one of these buffers to reach a learner.
"""

from __future__ import annotations

import abc
import logging
from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer, RolloutBuffer

from robo_reward.protocol import Reward, RewardOutput, TransitionBatch

log = logging.getLogger(__name__)


class EpisodicReward(Reward):
    """Base class of rewards computed once per finished episode, one value per step.

    Subclasses implement :meth:`keep` (what to store per transition, batched) and :meth:`episode_rewards` (the
    per-step rewards of one finished episode from its kept rows). Each step pays 0; the term ``<name>_episode``
    (for logging only, not paid) carries the episode's summed reward on its last step.

    :param scale: multiplies every per-step reward.
    """

    stateless = False
    episodic = True

    def __init__(self, *, scale: float = 1.0) -> None:
        self.scale = float(scale)
        self.finished: list[deque[np.ndarray]] = []
        self._store: np.ndarray | None = None
        self._length = np.zeros(0, dtype=np.int64)

    def keep(self, batch: TransitionBatch) -> np.ndarray:
        """One array row per transition to keep for the episode (default: ``next_obs``, an array space)."""
        if isinstance(batch.next_obs, dict):
            raise TypeError(f"{type(self).__name__} must override keep() to pick from a dict observation")
        return np.asarray(batch.next_obs)

    @abc.abstractmethod
    def episode_rewards(self, kept: np.ndarray) -> np.ndarray:
        """Rewards (T,) for one finished episode from its T kept rows, in step order."""

    def bind(self, observation_space: gym.Space, action_space: gym.Space, num_envs: int) -> None:
        super().bind(observation_space, action_space, num_envs)
        self.finished = [deque() for _ in range(num_envs)]
        self._store, self._length = None, np.zeros(num_envs, dtype=np.int64)

    def reset(self, obs: Any, env_mask: np.ndarray) -> None:
        self._length[np.asarray(env_mask, bool)] = 0

    def _append(self, rows: np.ndarray, env_ids: np.ndarray) -> None:
        if self._store is None:
            self._store = np.zeros((self.num_envs, 64, *rows.shape[1:]), dtype=rows.dtype)
        need = int(self._length[env_ids].max()) + 1
        if need > self._store.shape[1]:
            grown = np.zeros((self.num_envs, 2 * need, *self._store.shape[2:]), dtype=self._store.dtype)
            grown[:, : self._store.shape[1]] = self._store
            self._store = grown
        self._store[env_ids, self._length[env_ids]] = rows
        self._length[env_ids] += 1

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        return self.evaluate(batch).total

    def evaluate(self, batch: TransitionBatch) -> RewardOutput:
        if not self.finished:
            raise RuntimeError(f"{type(self).__name__} is not bound; wrap an env with it first")
        self._append(self.keep(batch), batch.env_ids)
        episode_sum = np.zeros(batch.num)
        for row in np.flatnonzero(batch.done):
            env = int(batch.env_ids[row])
            assert self._store is not None
            rewards = self.scale * np.asarray(self.episode_rewards(self._store[env, : self._length[env]]),
                                              dtype=np.float64)
            if rewards.shape != (self._length[env],) or not np.isfinite(rewards).all():
                raise ValueError(f"{type(self).__name__}.episode_rewards returned {rewards.shape} values (finite: "
                                 f"{np.isfinite(rewards).all()}) for an episode of {self._length[env]} steps")
            self.finished[env].append(rewards)
            episode_sum[row] = rewards.sum()
            self._length[env] = 0
        zeros = np.zeros(batch.num)
        return RewardOutput(zeros, {self.name: zeros, f"{self.name}_episode": episode_sum})

    def pop_finished(self, env: int) -> np.ndarray | None:
        """The oldest queued per-step rewards of env ``env``'s finished episodes, or None."""
        queue = self.finished[env]
        return queue.popleft() if queue else None


def find_episodic(reward: Reward | None) -> EpisodicReward | None:
    """The episodic term of a reward design: the design itself, or None. Nested episodic terms are refused."""
    if reward is None:
        return None
    if isinstance(reward, EpisodicReward):
        return reward
    nested = [r for r in reward.walk() if isinstance(r, EpisodicReward)]
    if nested:
        raise ValueError(f"episodic reward '{nested[0].name}' sits inside '{reward.name}'; an episode-end reward "
                         "must be the only reward term (set its weight with its scale kwarg)")
    return None


class _EpisodicSlots:
    """Tracks each env's episode in a buffer and adds the episodic rewards to its slots at the episode's end."""

    buffer_size: int
    n_envs: int
    rewards: np.ndarray

    def _init_slots(self) -> None:
        self.reward: EpisodicReward | None = None
        self._count = 0
        self._start = np.zeros(self.n_envs, dtype=np.int64)

    def attach_reward(self, reward: EpisodicReward) -> None:
        """Relabel with ``reward``; a new reward starts every env's episode afresh (it has no earlier steps)."""
        if reward is not self.reward:
            self._start[:] = self._count
        self.reward = reward

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["reward"] = None
        return state

    def _relabel_ended(self, done: np.ndarray, *, ring: bool) -> None:
        """Called after the transition at absolute index ``self._count - 1`` was stored for every env."""
        last = self._count - 1
        if self.reward is None:
            return
        for env in np.flatnonzero(done):
            r = self.reward.pop_finished(int(env))
            if r is None:
                raise RuntimeError(f"env {env}'s episode ended but its reward computed no episode rewards; is the "
                                   "episodic reward the one wrapping this env?")
            length = last - int(self._start[env]) + 1
            if len(r) != length:
                raise ValueError(f"env {env}'s episode has {len(r)} rewards but {length} stored transitions; the "
                                 "buffer and the reward saw different steps")
            steps = np.arange(last - length + 1, last + 1)
            if ring:
                steps = steps[steps > last - self.buffer_size]
                r = r[len(r) - len(steps):]
                self.rewards[steps % self.buffer_size, env] += r
            else:
                self.rewards[steps, env] += r
            self._start[env] = last + 1


class _EpisodicReplay(_EpisodicSlots):
    """Replay-buffer side of the slots: after each ``add``, finished episodes get their rewards (ring-aware).

    ``sample`` draws only ring positions whose episode has ended in every env, so a running episode's slots, which
    hold the step-time payment without their episode-end reward yet, never reach an update. Until some position
    is settled (an update before the first episode ended: ``learning_starts`` below the episode length) it samples
    as SB3 does and warns once.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_slots()
        self._warned_unsettled = False

    def sample(self, batch_size: int, env: Any = None) -> Any:
        if self.reward is None or getattr(self, "optimize_memory_usage", False):
            return super().sample(batch_size, env=env)  # type: ignore[misc]
        oldest = max(0, self._count - self.buffer_size)
        settled = int(self._start.min())
        if settled <= oldest:
            if not self._warned_unsettled:
                log.warning("episodic replay: no stored episode has ended in every env yet, so this update samples "
                            "slots without their episode-end reward; set learning_starts above the episode length")
                self._warned_unsettled = True
            return super().sample(batch_size, env=env)  # type: ignore[misc]
        steps = np.random.randint(oldest, settled, size=batch_size)
        return self._get_samples(steps % self.buffer_size, env=env)  # type: ignore[attr-defined]

    def add(self, obs: Any, next_obs: Any, action: np.ndarray, reward: np.ndarray, done: np.ndarray,
            infos: list[dict[str, Any]]) -> None:
        super().add(obs, next_obs, action, reward, done, infos)  # type: ignore[misc]
        self._count += 1
        self._relabel_ended(np.asarray(done, bool), ring=True)


class EpisodicReplayBuffer(_EpisodicReplay, ReplayBuffer):
    """SB3 ``ReplayBuffer`` whose slots of a finished episode get the episode's rewards added when it ends."""


class EpisodicDictReplayBuffer(_EpisodicReplay, DictReplayBuffer):
    """The dict-observation twin of :class:`EpisodicReplayBuffer`."""


class EpisodicRolloutBuffer(_EpisodicSlots, RolloutBuffer):
    """SB3 ``RolloutBuffer`` that adds a finished episode's rewards to its slots before returns are computed.

    SB3 adds a transition before it knows whether the episode ended there, so an episode is relabelled when the
    reward has queued its rewards and the episode's last transition is in the buffer (the ``add`` after the done
    step's ``episode_start`` flags). ``compute_returns_and_advantage`` first settles the last step's episodes
    and refuses a rollout that ends inside an episode.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_slots()

    def reset(self) -> None:
        super().reset()
        self._count = 0
        if hasattr(self, "_start"):
            self._start[:] = 0

    def add(self, obs: Any, action: np.ndarray, reward: np.ndarray, episode_start: np.ndarray, value: Any,
            log_prob: Any) -> None:
        super().add(obs, action, reward, episode_start, value, log_prob)
        self._count += 1
        self._settle()

    def _settle(self) -> None:
        if self.reward is None:
            return
        pending = np.array([len(q) > 0 for q in self.reward.finished], dtype=bool)
        if pending.any():
            self._check_inside(pending)
            self._relabel_ended(pending, ring=False)

    def _check_inside(self, pending: np.ndarray) -> None:
        last = self._count - 1
        for env in np.flatnonzero(pending):
            assert self.reward is not None
            length = len(self.reward.finished[env][0])
            if length > last + 1 or int(self._start[env]) != last - length + 1:
                raise ValueError(f"an episode of env {env} ({length} steps) spans a rollout boundary, so its "
                                 "earlier steps were already trained on without its reward; make the episode "
                                 "length divide agent.kwargs.n_steps")

    def compute_returns_and_advantage(self, last_values: Any, dones: np.ndarray) -> None:
        self._settle()
        if self.reward is not None:
            open_envs = np.flatnonzero(self._start < self._count)
            if len(open_envs):
                raise ValueError(f"the rollout ended inside an episode of env(s) {open_envs.tolist()}, whose "
                                 "episode-end reward is not known yet; make the episode length divide "
                                 f"agent.kwargs.n_steps (now {self.buffer_size})")
        super().compute_returns_and_advantage(last_values, dones)


def attach_episodic(model: Any) -> EpisodicReward | None:
    """Give the episodic reward of ``model``'s env (its RewardVecEnvWrapper) to the model's episodic buffers."""
    from robo_reward.sb3 import find_reward_wrapper

    env = model.get_env()
    wrapper = find_reward_wrapper(env) if env is not None else None
    reward = find_episodic(wrapper.reward) if wrapper is not None else None
    buffers = [getattr(model, "replay_buffer", None), getattr(model, "rollout_buffer", None)]
    episodic = [b for b in buffers if isinstance(b, _EpisodicSlots)]
    if reward is None:
        return None
    if not episodic:
        raise ValueError(f"reward '{reward.name}' is paid at episode end and needs an episodic buffer; use agent.algo "
                         "EpisodicSAC or EpisodicPPO")
    for buffer in episodic:
        buffer.attach_reward(reward)
    return reward
