"""BARFI trainer: REINFORCE on a learned reward blend, with the blend learned by implicit bi-level gradients.

Gupta, Chandak, Jordan, Thomas, da Silva, "Behavior Alignment via Reward Function Optimization", NeurIPS 2023.
The inner learner is REINFORCE with an entropy bonus on r_phi = r_p + phi1(s) + phi2(s) r_aux under
gamma_phi = sigmoid(psi) (returns with gamma_phi, no gamma^t on grad log pi, the loss a mean over the horizon);
the outer loop ascends the primary return J (gamma fixed) with :func:`~robo_reward.methods.barfi.implicit_hypergradient`.

Schedule (the paper's): every ``delta`` finished episodes the trainer optimises. Before ``first_mul`` episodes
(warm-up) that is one naive REINFORCE step on r_p + r_aux (the last episode). The first call after the warm-up is
a burst of ``delta * inner_mul + first_mul`` inner steps on r_phi; every later call is one outer step followed by
``delta * inner_mul`` inner steps. Inner steps use r_phi and gamma_phi detached, on ``batch_size`` episodes drawn
from the buffer of the last ``buffer_size`` episodes. The outer step takes v = grad_theta J on the last ``delta``
episodes with the primary reward only, and grad_theta J_phi (with its graph) on up to ``hess_mul * batch_size``
*older* episodes, so the two estimates never share episodes.

``outer="none"`` keeps the blend at its initial r_p + r_aux and the discount at ``gamma``: with ``aux_key: null``
this is the same REINFORCE learner on the venv's reward alone, which is how the baselines (naive, potential-based,
r_p only, given as reward terms) are trained. It behaves like an SB3 algorithm for :mod:`robo_reward.runner`
(``cls(policy, env, seed=...)``, ``learn``, ``save``, ``load``, ``predict``, callbacks).

Departures (specs/barfi.md): a linear softmax policy on fixed features (tabular for the gridworld) instead of a
learned basis; several envs may run in parallel (episodes that straddle an update mix two policies); the
reference's REINFORCE baseline steps once per episode, ours shares BARFI's schedule so that only the reward differs.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import VecEnv

from robo_reward.methods.barfi import BlendHead, Features, implicit_hypergradient

POLICIES = ("LinearSoftmax",)


class Batch(NamedTuple):
    """Episodes padded to the horizon: (B, H, F) features, (B, H) actions, r_p, r_aux and a validity mask."""

    feats: torch.Tensor
    actions: torch.Tensor
    r_p: torch.Tensor
    r_aux: torch.Tensor
    mask: torch.Tensor


class EpisodeBuffer:
    """The last ``capacity`` finished episodes, stored padded to ``horizon`` steps (a ring of tensors).

    :param capacity: episodes kept.
    :param horizon: the longest episode.
    :param dim: feature dims per step.
    """

    def __init__(self, capacity: int, horizon: int, dim: int) -> None:
        self.capacity, self.horizon = capacity, horizon
        self.feats = torch.zeros(capacity, horizon, dim)
        self.actions = torch.zeros(capacity, horizon, dtype=torch.long)
        self.r_p, self.r_aux, self.mask = (torch.zeros(capacity, horizon) for _ in range(3))
        self.terminated = torch.zeros(capacity, dtype=torch.bool)
        self.added = 0

    def __len__(self) -> int:
        return min(self.added, self.capacity)

    def add(self, feats: np.ndarray, actions: Sequence[int], r_p: Sequence[float], r_aux: Sequence[float],
            terminated: bool) -> None:
        t = len(actions)
        if t > self.horizon:
            raise ValueError(f"an episode of {t} steps exceeds the horizon {self.horizon}; set agent.kwargs.horizon")
        i = self.added % self.capacity
        self.feats[i].zero_()
        self.feats[i, :t] = torch.from_numpy(np.asarray(feats, dtype=np.float32))
        self.actions[i].zero_()
        self.actions[i, :t] = torch.as_tensor(actions)
        for store, values in ((self.r_p, r_p), (self.r_aux, r_aux)):
            store[i].zero_()
            store[i, :t] = torch.as_tensor(values, dtype=torch.float32)
        self.mask[i].zero_()
        self.mask[i, :t] = 1.0
        self.terminated[i] = terminated
        self.added += 1

    def order(self) -> np.ndarray:
        """Slot indices from the oldest episode to the newest."""
        n = len(self)
        return (np.arange(self.added - n, self.added) % self.capacity) if n else np.zeros(0, dtype=np.int64)

    def batch(self, idx: np.ndarray) -> Batch:
        index = torch.as_tensor(np.asarray(idx, dtype=np.int64))
        return Batch(self.feats[index], self.actions[index], self.r_p[index], self.r_aux[index], self.mask[index])

    def state(self) -> dict[str, Any]:
        return {k: getattr(self, k).clone() for k in ("feats", "actions", "r_p", "r_aux", "mask", "terminated")} | {
            "added": self.added}

    def load(self, state: Mapping[str, Any]) -> None:
        for k in ("feats", "actions", "r_p", "r_aux", "mask", "terminated"):
            getattr(self, k).copy_(state[k])
        self.added = int(state["added"])


def discount_weights(horizon: int, gamma: torch.Tensor | float) -> torch.Tensor:
    """W[t, k] = gamma^(k - t) for k >= t, else 0, so that returns = rewards @ W.T; differentiable in ``gamma``."""
    steps = torch.arange(horizon, dtype=torch.float32)
    lag = steps[None, :] - steps[:, None]
    gamma = torch.as_tensor(gamma, dtype=torch.float32)
    return torch.where(lag >= 0, gamma ** lag.clamp(min=0), torch.zeros(()))


def discounted_returns(rewards: torch.Tensor, gamma: torch.Tensor | float) -> torch.Tensor:
    """G_t = sum_k gamma^(k-t) r_k per row of a (B, H) batch; differentiable in ``gamma`` and ``rewards``."""
    return rewards @ discount_weights(rewards.shape[1], gamma).T


class BARFI:
    """BARFI (Gupta et al. 2023) with Neumann-series or first-order hypergradients, or plain REINFORCE.

    :param policy: ``LinearSoftmax`` (a softmax over actions, linear in the features).
    :param env: an SB3 VecEnv with a flat Box observation and Discrete actions.
    :param outer: ``neumann`` (implicit gradient), ``first_order`` (L = 0) or ``none`` (REINFORCE, fixed reward).
    :param aux_key: the info key holding r_aux; null treats r_aux as 0.
    :param features: :class:`~robo_reward.methods.barfi.Features` spec, e.g. ``{kind: grid, bins: 10}``.
    :param gamma: the primary (outer) discount; also the inner one when ``outer`` is none.
    :param actor_lr: RMSprop learning rate of the policy.
    :param actor_reg: entropy bonus weight of the inner objective.
    :param reward_lr: RMSprop learning rate of phi.
    :param gamma_lr: RMSprop learning rate of psi (0 keeps gamma_phi fixed).
    :param psi_init: initial psi (4.6: gamma_phi ~= 0.990).
    :param delta: episodes between optimisation calls; also v's episodes.
    :param inner_mul: inner steps per call are ``delta * inner_mul``.
    :param first_mul: warm-up episodes, and the extra inner steps of the first burst.
    :param hess_mul: the Hessian batch is ``hess_mul * batch_size`` older episodes.
    :param batch_size: episodes per inner step.
    :param buffer_size: episodes kept.
    :param neumann_alpha: the Neumann step alpha.
    :param neumann_loops: L, Hessian-vector products per outer step.
    :param reward_l2: L2 penalty on the phi head's parameters.
    :param gamma_l2: penalty on gamma_phi^2.
    :param horizon: steps the loss averages over (default: the env's time limit).
    :param seed: seeds the action sampling, the buffer draws and torch.
    """

    def __init__(self, policy: str, env: VecEnv, *, outer: Literal["neumann", "first_order", "none"] = "neumann",
                 aux_key: str | None = "aux_reward", features: Mapping[str, Any] | None = None, gamma: float = 0.99,
                 actor_lr: float = 5e-3, actor_reg: float = 0.25, reward_lr: float = 5e-3, gamma_lr: float = 5e-3,
                 psi_init: float = 4.6, delta: int = 3, inner_mul: int = 5, first_mul: int = 150, hess_mul: int = 15,
                 batch_size: int = 4, buffer_size: int = 100, neumann_alpha: float = 5e-4, neumann_loops: int = 5,
                 reward_l2: float = 0.0, gamma_l2: float = 0.0, horizon: int | None = None, seed: int | None = None,
                 verbose: int = 0, device: str = "cpu") -> None:
        if policy not in POLICIES:
            raise ValueError(f"BARFI policy {policy!r} is not supported; set agent.policy to one of {POLICIES}")
        if outer not in ("neumann", "first_order", "none"):
            raise ValueError(f"outer={outer!r}; use 'neumann', 'first_order' or 'none'")
        action_space = env.action_space
        if not hasattr(action_space, "n"):
            raise ValueError(f"BARFI's softmax policy needs Discrete actions, the env has {action_space}")
        for name, value in (("delta", delta), ("batch_size", batch_size), ("buffer_size", buffer_size)):
            if value < 1:
                raise ValueError(f"BARFI {name}={value} must be >= 1")
        if buffer_size <= delta:
            raise ValueError(f"buffer_size={buffer_size} must exceed delta={delta}: the Hessian batch is drawn from "
                             "the episodes older than the last delta")
        self._kwargs = {k: v for k, v in locals().items() if k not in ("self", "policy", "env", "seed", "verbose",
                                                                       "action_space", "name", "value")}
        self.policy_name, self.env, self.seed, self.verbose, self.device = policy, env, seed, verbose, device
        self.outer, self.aux_key, self.gamma = outer, aux_key, float(gamma)
        self.actor_reg, self.delta, self.inner_mul, self.first_mul = float(actor_reg), delta, inner_mul, first_mul
        self.hess_mul, self.batch_size, self.buffer_size = hess_mul, batch_size, buffer_size
        self.alpha, self.loops = float(neumann_alpha), int(neumann_loops) if outer == "neumann" else 0
        self.reward_l2, self.gamma_l2 = float(reward_l2), float(gamma_l2)
        self.horizon = horizon or self._env_horizon()
        self.n_actions = int(action_space.n)  # type: ignore[attr-defined]
        self.features = Features.for_space(env.observation_space, features or {"kind": "linear"})
        self.theta = torch.nn.Parameter(torch.zeros(self.n_actions, self.features.dim))
        self.head = BlendHead(self.features, psi=psi_init)
        self.actor_optim = torch.optim.RMSprop([self.theta], lr=actor_lr)
        groups = [{"params": self.head.reward_parameters(), "lr": reward_lr}]
        if gamma_lr > 0:
            groups.append({"params": [self.head.psi], "lr": gamma_lr})
        self.outer_optim = torch.optim.RMSprop(groups)
        self.buffer = EpisodeBuffer(buffer_size, self.horizon, self.features.dim)
        self._theta_np = self.theta.detach().numpy()
        self.num_timesteps = 0
        self.episodes = 0
        self.optimize_calls = self.outer_steps = self.inner_steps = 0
        self.first_burst_done = False
        self._since_optimize = 0
        self._logger: Logger | None = None
        self._weights_cache: dict[float, torch.Tensor] = {}
        self.set_random_seed(seed)

    # -- SB3-like surface -------------------------------------------------------------------------------------
    def _env_horizon(self) -> int:
        specs = self.env.get_attr("spec")
        steps = getattr(specs[0], "max_episode_steps", None) if specs else None
        if not steps:
            raise ValueError("the env has no time limit to average the loss over; set agent.kwargs.horizon")
        return int(steps)

    def get_env(self) -> VecEnv:
        return self.env

    @property
    def logger(self) -> Logger:
        if self._logger is None:
            self._logger = Logger(folder=None, output_formats=[])
        return self._logger

    def set_logger(self, logger: Logger) -> None:
        self._logger = logger

    def set_random_seed(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        if seed is not None:
            self.env.action_space.seed(seed)

    @property
    def gamma_phi(self) -> float:
        return float(self.head.gamma().detach()) if self.outer != "none" else self.gamma

    def _logits(self, feats: np.ndarray) -> np.ndarray:
        return feats @ self._theta_np.T

    def _act(self, feats: np.ndarray, deterministic: bool) -> np.ndarray:
        logits = self._logits(feats).astype(np.float64)
        if deterministic:
            return logits.argmax(axis=1)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        cdf = probs.cumsum(axis=1)
        return np.minimum((cdf < self.rng.random((len(cdf), 1)) * cdf[:, -1:]).sum(axis=1), self.n_actions - 1)

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[np.ndarray, None]:
        """Actions for a batch of observations (argmax when ``deterministic``)."""
        obs = np.asarray(observation)
        single = obs.ndim == 1
        actions = self._act(self.features.transform(obs[None] if single else obs), deterministic)
        return (actions[0] if single else actions), None

    # -- objectives ---------------------------------------------------------------------------------------------
    def policy_objective(self, batch: Batch, rewards: torch.Tensor, gamma: torch.Tensor | float,
                         entropy_weight: float) -> torch.Tensor:
        """REINFORCE objective: mean_b (1/H) sum_t log pi(a_t|s_t) G_t (gamma-dropped) + entropy_weight * H(pi)."""
        logp_all = torch.log_softmax(batch.feats @ self.theta.T, dim=-1)
        logp = logp_all.gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
        if isinstance(gamma, torch.Tensor) and gamma.requires_grad:
            weights = discount_weights(self.horizon, gamma)
        else:
            weights = self._constant_weights(float(gamma))
        returns = (rewards * batch.mask) @ weights.T
        objective = (batch.mask * logp * returns).sum(dim=1).div(self.horizon).mean()
        if entropy_weight:
            entropy = -(logp_all.exp() * logp_all).sum(-1)
            objective = objective + entropy_weight * (entropy * batch.mask).sum() / batch.mask.sum()
        return objective

    def _constant_weights(self, gamma: float) -> torch.Tensor:
        if gamma not in self._weights_cache:
            if len(self._weights_cache) > 3:
                self._weights_cache.clear()
            self._weights_cache[gamma] = discount_weights(self.horizon, gamma)
        return self._weights_cache[gamma]

    def blended(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(r_phi, gamma_phi) of a batch, with their graph to phi and psi."""
        if self.outer == "none":
            return batch.r_p + batch.r_aux, torch.tensor(self.gamma)
        return self.head.reward(batch.feats, batch.r_p, batch.r_aux), self.head.gamma()

    def _sample(self, pool: np.ndarray, n: int) -> Batch:
        return self.buffer.batch(self.rng.choice(pool, size=min(n, len(pool)), replace=False))

    def inner_step(self, batch: Batch, *, naive: bool = False) -> float:
        """One ascent step of the policy on the detached r_phi, gamma_phi (``naive``: r_p + r_aux)."""
        rewards, gamma = self.blended(batch) if not naive else (batch.r_p + batch.r_aux, self.head.gamma())
        if self.outer == "none":
            gamma = torch.tensor(self.gamma)
        objective = self.policy_objective(batch, rewards.detach(), gamma.detach(), self.actor_reg)
        self.actor_optim.zero_grad()
        (-objective).backward()
        self.actor_optim.step()
        self.inner_steps += 1
        return float(objective.detach())

    def hypergradient(self, recent: Batch, older: Batch) -> list[torch.Tensor]:
        """dJ/d(phi weight, phi bias, psi): v from ``recent`` (primary reward), the Hessian terms from ``older``."""
        outer_objective = self.policy_objective(recent, recent.r_p, self.gamma, 0.0)
        v = torch.autograd.grad(outer_objective, [self.theta])
        rewards, gamma = self.head.reward(older.feats, older.r_p, older.r_aux), self.head.gamma()
        inner_objective = self.policy_objective(older, rewards, gamma, self.actor_reg)
        g = torch.autograd.grad(inner_objective, [self.theta], create_graph=True)
        params = [*self.head.reward_parameters(), self.head.psi]
        return implicit_hypergradient(v, g, [self.theta], params, alpha=self.alpha, loops=self.loops)

    def outer_step(self) -> dict[str, float]:
        """One outer update of phi and psi (ascent on J minus the L2 penalties)."""
        order = self.buffer.order()
        recent = self.buffer.batch(order[-self.delta:])
        older = self._sample(order[:-self.delta], self.hess_mul * self.batch_size)
        grads = self.hypergradient(recent, older)
        params = [*self.head.reward_parameters(), self.head.psi]
        self.outer_optim.zero_grad()
        penalty = self.reward_l2 * sum((p**2).sum() for p in self.head.reward_parameters())
        penalty = penalty + self.gamma_l2 * self.head.gamma() ** 2
        if isinstance(penalty, torch.Tensor) and penalty.requires_grad:
            penalty.backward()
        for p, g in zip(params, grads, strict=True):
            p.grad = (p.grad if p.grad is not None else torch.zeros_like(p)) - g
        self.outer_optim.step()
        self.outer_steps += 1
        return {"hypergrad_norm": float(torch.sqrt(sum((g**2).sum() for g in grads)))}

    def optimize(self) -> None:
        """The paper's schedule: warm-up naive steps, then one large burst, then outer + inner steps."""
        self.optimize_calls += 1
        order = self.buffer.order()
        if self.episodes <= self.first_mul:
            self.inner_step(self.buffer.batch(order[-1:]), naive=True)
            return
        steps = self.delta * self.inner_mul
        if not self.first_burst_done:
            steps += self.first_mul
            self.first_burst_done = True
        elif self.outer != "none" and len(order) > self.delta:
            for key, value in self.outer_step().items():
                self.logger.record(f"barfi/{key}", value)
        for _ in range(steps):
            self.inner_step(self._sample(order, self.batch_size))

    # -- training loop ------------------------------------------------------------------------------------------
    def learn(self, total_timesteps: int, callback: BaseCallback | Sequence[BaseCallback] | None = None,
              log_interval: int = 20, reset_num_timesteps: bool = True, progress_bar: bool = False,
              tb_log_name: str = "BARFI") -> BARFI:
        """Collect episodes with the current policy and optimise on the paper's schedule."""
        if reset_num_timesteps:
            self.num_timesteps = 0
        if isinstance(callback, Sequence):
            callback = CallbackList(list(callback))
        if callback is not None:
            callback.init_callback(self)  # type: ignore[arg-type]
            callback.on_training_start(locals(), globals())
            callback.on_rollout_start()
        n = self.env.num_envs
        obs = self.env.reset()
        feats: list[list[np.ndarray]] = [[] for _ in range(n)]
        acts: list[list[int]] = [[] for _ in range(n)]
        rews: list[list[float]] = [[] for _ in range(n)]
        auxs: list[list[float]] = [[] for _ in range(n)]
        primary: deque[float] = deque(maxlen=log_interval)
        target = self.num_timesteps + total_timesteps if not reset_num_timesteps else total_timesteps
        while self.num_timesteps < target:
            f = self.features.transform(obs)
            actions = self._act(f, deterministic=False)
            obs, rewards, dones, infos = self.env.step(actions)
            self.num_timesteps += n
            for i in range(n):
                feats[i].append(f[i])
                acts[i].append(int(actions[i]))
                rews[i].append(float(rewards[i]))
                auxs[i].append(float(infos[i][self.aux_key]) if self.aux_key else 0.0)
            for i in np.flatnonzero(dones):
                truncated = bool(infos[i].get("TimeLimit.truncated", False))
                self.buffer.add(np.stack(feats[i]), acts[i], rews[i], auxs[i], not truncated)
                primary.append(float(infos[i]["episode"]["r"]) if "episode" in infos[i] else sum(rews[i]))
                feats[i], acts[i], rews[i], auxs[i] = [], [], [], []
                self.episodes += 1
                self._since_optimize += 1
                if self.episodes % log_interval == 0:
                    self._log(primary)
            if callback is not None:
                callback.update_locals(locals())
                if not callback.on_step():
                    break
            if self._since_optimize >= self.delta:
                self._since_optimize = 0
                self.optimize()
        if callback is not None:
            callback.on_rollout_end()
            callback.on_training_end()
        return self

    def _log(self, primary: Sequence[float]) -> None:
        with torch.no_grad():
            phi1, phi2 = self.head.bias.tolist()
        for key, value in {"rollout/episodes": self.episodes, "rollout/primary_return": float(np.mean(primary)),
                           "barfi/gamma_phi": self.gamma_phi, "barfi/phi1_bias": phi1, "barfi/phi2_bias": phi2,
                           "barfi/outer_steps": self.outer_steps, "time/total_timesteps": self.num_timesteps}.items():
            self.logger.record(key, value)
        self.logger.dump(self.num_timesteps)

    # -- persistence --------------------------------------------------------------------------------------------
    def export_blend(self, path: str | Path | None = None) -> dict[str, Any]:
        """The learned blend as plain data for :class:`~robo_reward.methods.barfi.BlendedReward` (saved if ``path``)."""
        blend = self.head.export()
        if path is not None:
            torch.save(blend, path)
        return blend

    def save(self, path: str | Path | io.BufferedIOBase) -> None:
        """Policy, blend, optimisers, buffer and counters in one torch file (``path`` keeps its name)."""
        torch.save({"policy": self.policy_name, "kwargs": self._kwargs, "theta": self.theta.detach().clone(),
                    "blend": self.export_blend(), "actor_optim": self.actor_optim.state_dict(),
                    "outer_optim": self.outer_optim.state_dict(), "buffer": self.buffer.state(),
                    "counters": {"num_timesteps": self.num_timesteps, "episodes": self.episodes,
                                 "optimize_calls": self.optimize_calls, "outer_steps": self.outer_steps,
                                 "inner_steps": self.inner_steps, "first_burst_done": self.first_burst_done},
                    "rng": self.rng.bit_generator.state}, path)

    @classmethod
    def load(cls, path: str | Path, env: VecEnv | None = None, device: str = "cpu", **_: Any) -> BARFI:
        """A trainer restored from :meth:`save`; ``env`` must be the same task."""
        if env is None:
            raise ValueError("BARFI.load needs the env (BARFI.load(path, env=venv))")
        data = torch.load(path, map_location="cpu", weights_only=False)
        model = cls(data["policy"], env, **data["kwargs"])
        with torch.no_grad():
            model.theta.copy_(data["theta"])
        model.head.load_state_dict(data["blend"]["state"])
        model.actor_optim.load_state_dict(data["actor_optim"])
        model.outer_optim.load_state_dict(data["outer_optim"])
        model.buffer.load(data["buffer"])
        counters = data["counters"]
        model.num_timesteps, model.episodes = int(counters["num_timesteps"]), int(counters["episodes"])
        model.optimize_calls, model.outer_steps = int(counters["optimize_calls"]), int(counters["outer_steps"])
        model.inner_steps, model.first_burst_done = int(counters["inner_steps"]), bool(counters["first_burst_done"])
        model.rng.bit_generator.state = data["rng"]
        return model
