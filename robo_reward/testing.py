"""Testing helpers shipped for users' own reward tests (as ``imitation.testing`` does).

* :class:`ChainEnv`: a tiny 1-D chain with a terminal goal and a time limit, so terminated and truncated both occur.
* :class:`CallCounter`: wraps a reward and counts batched calls and rows (to check batching).
* :func:`random_mdp`, :func:`value_iteration`: tabular MDPs with a known optimum, for invariance tests.
* :class:`InfoReward`: pays an info entry (a privileged oracle, its negation or noise: known audit answers).
* :func:`check_reward`: runs a reward through the SB3 adapter twice with one seed and checks it is finite,
  batched and deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from robo_reward.protocol import Reward, RewardError, RewardOutput, TransitionBatch


class ChainEnv(gym.Env):
    """Positions 0..length; action 1 moves right, 0 left (or a Box action whose sign says which).

    Reaching ``length`` terminates with reward 1; ``max_steps`` truncates. The observation is
    ``[position / length, steps / max_steps]``, so the final and the reset observations always differ.
    """

    metadata = {"render_modes": []}  # noqa: RUF012  (Gymnasium declares it an instance attribute)

    def __init__(self, length: int = 5, max_steps: int = 8, continuous: bool = False, slip: float = 0.0) -> None:
        self.length, self.max_steps, self.slip = length, max_steps, slip
        self.observation_space = gym.spaces.Box(0.0, 1.0, (2,), dtype=np.float32)
        self.action_space: gym.Space = (gym.spaces.Box(-1.0, 1.0, (1,), dtype=np.float32) if continuous
                                        else gym.spaces.Discrete(2))
        self.continuous = continuous
        self.pos = 0
        self.t = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.pos / self.length, self.t / self.max_steps], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.pos, self.t = 0, 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        right = float(np.asarray(action).reshape(-1)[0]) > 0 if self.continuous else int(action) == 1
        if self.slip and self.np_random.random() < self.slip:
            right = not right
        self.pos = int(np.clip(self.pos + (1 if right else -1), 0, self.length))
        self.t += 1
        terminated = self.pos == self.length
        truncated = not terminated and self.t >= self.max_steps
        return self._obs(), float(terminated), terminated, truncated, {"is_success": terminated}


class CallCounter(Reward):
    """Delegates to ``inner`` and counts how often it is called and on how many rows."""

    def __init__(self, inner: Reward) -> None:
        self.inner, self.name = inner, inner.name
        self.calls = 0
        self.rows = 0
        self.stateless = inner.stateless

    def children(self) -> list[Reward]:
        return [self.inner]

    def evaluate(self, batch: TransitionBatch) -> RewardOutput:
        self.calls += 1
        self.rows += batch.num
        return self.inner.evaluate(batch)

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        return self.evaluate(batch).total

    def relabel(self, batch: TransitionBatch) -> np.ndarray:
        self.calls += 1
        self.rows += batch.num
        return self.inner.relabel(batch)


def evaluate_in_order(reward: Reward, batches: list[TransitionBatch], term: str | None = None) -> np.ndarray:
    """Evaluate consecutive vector-step batches as the adapters do: ``reset`` with the first batch's ``obs`` for
    every env, then again for the envs whose episode ended (with the next batch's ``obs``). Returns the paid
    reward, or the term ``<reward name>/<term>``, stacked as ``(steps, envs)``; for testing stateful rewards
    (beliefs, queues, episode sums) without an env."""
    reward.reset(batches[0].obs, np.ones(batches[0].num, dtype=bool))
    out = []
    for i, b in enumerate(batches):
        result = reward.evaluate(b)
        out.append(result.total if term is None else result.terms[f"{reward.name}/{term}"])
        if b.done.any() and i + 1 < len(batches):
            reward.reset(batches[i + 1].obs, b.done)
    return np.stack(out)


def random_mdp(n_states: int, n_actions: int, rng: np.random.Generator,
               terminal: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Transition tensor P[s, a, s'] and rewards R[s, a, s']; ``terminal`` (if given) is absorbing with reward 0."""
    p = rng.dirichlet(np.ones(n_states), size=(n_states, n_actions))
    r = rng.normal(size=(n_states, n_actions, n_states))
    if terminal is not None:
        p[terminal] = 0.0
        p[terminal, :, terminal] = 1.0
        r[terminal] = 0.0
    return p, r


def value_iteration(p: np.ndarray, r: np.ndarray, gamma: float, tol: float = 1e-12,
                    terminal: np.ndarray | None = None) -> np.ndarray:
    """Optimal Q[s, a] for P[s, a, s'] and R[s, a, s']; next-state values of ``terminal`` states count as 0."""
    n_states = p.shape[0]
    alive = np.ones(n_states) if terminal is None else (~terminal).astype(float)
    q = np.zeros(p.shape[:2])
    for _ in range(100_000):
        v = q.max(axis=1) * alive
        q_new = np.einsum("sat,sat->sa", p, r + gamma * v[None, None, :])
        if np.abs(q_new - q).max() < tol:
            return q_new
        q = q_new
    raise RuntimeError("value iteration did not converge")


def check_reward(make_reward: Callable[[], Reward], make_env: Callable[[], gym.Env], *, n_envs: int = 2,
                 steps: int = 50, seed: int = 0, gamma: float = 0.99) -> np.ndarray:
    """Run a fresh reward twice through :class:`~robo_reward.sb3.RewardVecEnvWrapper` with one seed.

    Asserts one reward call per vector step, finite values and identical rewards across the two runs; returns
    the rewards, shape ``(steps, n_envs)``.
    """
    from stable_baselines3.common.vec_env import DummyVecEnv

    from robo_reward.sb3 import RewardVecEnvWrapper

    runs = []
    for _ in range(2):
        counter = CallCounter(make_reward())
        venv = RewardVecEnvWrapper(DummyVecEnv([make_env] * n_envs), counter)
        counter.set_discount(gamma)
        venv.seed(seed)
        venv.action_space.seed(seed)
        venv.reset()
        rewards = []
        for _ in range(steps):
            actions = np.stack([venv.action_space.sample() for _ in range(n_envs)])
            rewards.append(venv.step(actions)[1])
        venv.close()
        assert counter.calls == steps, f"expected one reward call per vector step, got {counter.calls} for {steps}"
        runs.append(np.asarray(rewards))
    assert np.isfinite(runs[0]).all(), "reward produced NaN or inf"
    np.testing.assert_array_equal(runs[0], runs[1], err_msg="same seed gave different rewards")
    return runs[0]



class InfoReward(Reward):
    """Pays ``scale * info[key] + noise * N(0, 1)``: a privileged oracle (or its negation, or pure noise).

    The known answers for :mod:`robo_reward.audit` and for tests of reward plumbing: with ``key="progress"`` its
    Spearman with true progress is 1 (``scale > 0``), -1 (``scale < 0``) or about 0 (``scale=0, noise=1``).

    >>> r = InfoReward("progress", scale=-2.0)
    >>> b = TransitionBatch(np.zeros((2, 1)), np.zeros((2, 1)), np.zeros((2, 1)), np.zeros(2), np.zeros(2, bool),
    ...                     np.zeros(2, bool), infos=[{"progress": 0.25}, {"progress": 1.0}])
    >>> r(b).tolist()
    [-0.5, -2.0]

    :param key: the ``info`` entry paid; a step whose info lacks it is an error naming the key.
    :param scale: multiplies the value.
    :param noise: standard deviation of Gaussian noise added per row (seeded).
    :param seed: seeds the noise.
    """

    name = "info_value"
    needs_infos = True

    def __init__(self, key: str = "progress", *, scale: float = 1.0, noise: float = 0.0, seed: int = 0,
                 label: str = "info_value") -> None:
        self.key, self.scale, self.noise, self.name = key, float(scale), float(noise), label
        self._rng = np.random.default_rng(seed)

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        try:
            values = np.array([float(info[self.key]) for info in batch.infos], dtype=np.float64)
        except KeyError:
            raise RewardError(f"reward '{self.name}' reads info[{self.key!r}], which this env's step info does not "
                              f"have; pick a key the env reports") from None
        if len(values) != batch.num:
            raise RewardError(f"reward '{self.name}' needs one info dict per row; got {len(values)} for {batch.num}")
        out = self.scale * values
        return out + self.noise * self._rng.standard_normal(batch.num) if self.noise else out
