"""Demonstrations written into an off-policy learner's replay buffer before RL (``agent.demo_buffer``).

A demo-prefilled buffer is the small-scale stand-in for offline-to-online RL from demos (RLPD, Ball et al.,
arXiv 2302.02948; KAGI uses Cal-QL, which SB3 lacks). Every demo episode is replayed through the reward design
as the adapters would drive it: ``reset`` once at its first observation, then ``evaluate`` on each transition.
A relabelling buffer then stores the env's reward and the reward's :meth:`~robo_reward.protocol.Reward.
transition_state` beside each demo slot, so demo transitions are relabelled at sample time exactly like the
agent's own; a plain buffer stores the designed reward ``extrinsic_weight * r_env + design`` computed now. An
episode-end reward (:class:`~robo_reward.episodic.EpisodicReward`, e.g. RAPL's OT matching) pays its per-step
rewards when the demo's last transition is evaluated; they are taken off its queue and stored with the demo, so
they never reach the agent's own episodes and the episodic buffer counts the demo slots as finished.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.buffers import ReplayBuffer

from robo_reward.episodic import find_episodic
from robo_reward.protocol import Obs, Reward, TransitionBatch, _concat
from robo_reward.sb3 import _Relabeling


def _rows(obs: Any, idx: np.ndarray | slice) -> Obs:
    if isinstance(obs, dict):
        return {k: np.asarray(v)[idx] for k, v in obs.items()}
    return np.asarray(obs)[idx]


def _tile(obs: Obs, n: int) -> Obs:
    if isinstance(obs, dict):
        return {k: np.repeat(v, n, axis=0) for k, v in obs.items()}
    return np.repeat(obs, n, axis=0)


def _policy_view(obs: Obs, key: str | None) -> np.ndarray | dict[str, np.ndarray]:
    if key is None:
        return obs
    if not isinstance(obs, dict) or key not in obs:
        have = sorted(obs) if isinstance(obs, dict) else "array observations"
        raise ValueError(f"demo observations have no key {key!r} ({have}); set agent.demo_buffer.obs_key to one "
                         "of them or record the demos in the env's observation mode")
    return obs[key]


def replay_through_reward(episode: Any, reward: Reward | None, num_envs: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The design's reward of every transition of one demo episode and the reward's transition state per step.

    The episode runs in env row 0 of a reward bound to ``num_envs`` envs (the other rows are left alone).
    Returns ``(rewards (T,), {key: (T, ...)})``; without a reward, zeros and no state. An episodic reward's
    per-step rewards of the episode are added (its queue for env row 0 is emptied).
    """
    length = len(episode.actions)
    if reward is None:
        return np.zeros(length), {}
    mask = np.zeros(num_envs, dtype=bool)
    mask[0] = True
    reward.reset(_tile(_rows(episode.observations, slice(0, 1)), num_envs), mask)
    values = np.zeros(length)
    states: dict[str, list[np.ndarray]] = {}
    env0 = np.zeros(1, dtype=np.int64)
    infos = episode.infos
    for t in range(length):
        info = {k: v[t + 1] for k, v in infos.items()} if reward.needs_infos else {}
        batch = TransitionBatch(
            obs=_rows(episode.observations, slice(t, t + 1)), action=episode.actions[t : t + 1],
            next_obs=_rows(episode.observations, slice(t + 1, t + 2)),
            reward=np.asarray(episode.rewards[t : t + 1], dtype=np.float64),
            terminated=np.asarray(episode.terminations[t : t + 1], dtype=bool),
            truncated=np.asarray(episode.truncations[t : t + 1], dtype=bool), infos=[info], env_ids=env0)
        values[t] = float(reward.evaluate(batch).total[0])
        for key, value in reward.transition_state().items():
            states.setdefault(key, []).append(np.asarray(value)[0])
    episodic = find_episodic(reward)
    if episodic is not None:
        paid = episodic.pop_finished(0)
        if paid is None or len(paid) != length or episodic.pop_finished(0) is not None:
            raise ValueError(f"episode-end reward '{episodic.name}' paid {0 if paid is None else len(paid)} rewards "
                             f"for a demo of {length} steps; a demo must end (terminated or truncated) at its last "
                             "step, and only there")
        values += paid
    return values, {k: np.stack(v) for k, v in states.items()}


def fill_replay_buffer(buffer: ReplayBuffer, episodes: Sequence[Any], *, reward: Reward | None,
                       extrinsic_weight: float = 1.0, num_envs: int = 1, obs_key: str | None = None,
                       scale_action: Callable[[np.ndarray], np.ndarray] | None = None) -> int:
    """Add every transition of ``episodes`` (:class:`robo_reward.datasets.Episode`) to ``buffer``; returns how many.

    Transitions fill the buffer's rows ``n_envs`` at a time (one per env column); a last, partial row is padded
    with the first transitions again. Truncated demo steps are stored as time-outs (bootstrapped), terminated
    ones as terminal.

    :param reward: the bound reward design (None: the env's own reward alone).
    :param extrinsic_weight: weight of the env's reward in what a plain buffer stores.
    :param num_envs: envs the reward is bound to (the demos run in row 0).
    :param obs_key: the dict-observation key the policy (and so the buffer) sees.
    :param scale_action: the policy's action scaling into [-1, 1] (SB3 stores scaled Box actions).
    """
    relabels = isinstance(buffer, _Relabeling)
    obs_l: list[Obs] = []
    next_l: list[Obs] = []
    act_l: list[np.ndarray] = []
    rew_l: list[np.ndarray] = []
    done_l: list[np.ndarray] = []
    info_l: list[dict[str, Any]] = []
    extras_l: dict[str, list[np.ndarray]] = {}
    for ep in episodes:
        designed, states = replay_through_reward(ep, reward, num_envs)
        length = len(ep.actions)
        obs = _policy_view(_rows(ep.observations, slice(0, length)), obs_key)
        nxt = _policy_view(_rows(ep.observations, slice(1, length + 1)), obs_key)
        env_r = np.asarray(ep.rewards, dtype=np.float64)
        term = np.asarray(ep.terminations, dtype=bool)
        trunc = np.asarray(ep.truncations, dtype=bool) & ~term
        stored = env_r if relabels or reward is None else extrinsic_weight * env_r + designed
        actions = np.asarray(ep.actions, dtype=np.float32)
        obs_l.append(obs)
        next_l.append(nxt)
        act_l.append(scale_action(actions) if scale_action is not None else actions)
        rew_l.append(stored)
        done_l.append(term | trunc)
        info_l.extend({"TimeLimit.truncated": bool(x)} for x in trunc)
        for key, value in states.items():
            extras_l.setdefault(key, []).append(value)
    if not act_l:
        raise ValueError("no demo episodes to add; check agent.demo_buffer.dataset, episodes and fraction")
    all_obs, all_next = _concat(obs_l), _concat(next_l)
    actions, rewards, dones = np.concatenate(act_l), np.concatenate(rew_l), np.concatenate(done_l)
    extras = {k: np.concatenate(v) for k, v in extras_l.items()}
    total, n = len(actions), buffer.n_envs
    expected = buffer.observation_space.shape
    if not isinstance(all_obs, dict) and expected is not None and all_obs.shape[1:] != expected:
        raise ValueError(f"demo observations have shape {all_obs.shape[1:]} but the replay buffer stores "
                         f"{expected}; record the demos on the training env's variant and observation mode")
    for start in range(0, total, n):
        idx = np.arange(start, start + n) % total
        kwargs = {"extras": {k: v[idx] for k, v in extras.items()}} if relabels else {}
        buffer.add(_rows(all_obs, idx), _rows(all_next, idx), actions[idx], rewards[idx],  # type: ignore[arg-type]
                   dones[idx], [info_l[i] for i in idx], **kwargs)
    return total
