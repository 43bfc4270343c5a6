"""BYOL-Explore and BYOL-Hindsight curiosity rewards for vector envs (networks in :mod:`.byol_model`).

BYOL-Explore (Guo et al., NeurIPS 2022) pays the error of a latent world model's open-loop predictions; pure
noise (a "noisy TV") stays unpredictable and keeps paying. BYOL-Hindsight (Jarrett et al., ICML 2023) lets the
predictions use a hindsight code Z inferred from the realised future but made independent of the past by a
min-max InfoNCE game, so purely stochastic outcomes become predictable and stop paying while novel, learnable
dynamics still do.

Intrinsic reward (the spec's reconstruction of the paper's form): the transition (o_t, a_t, o_{t+1}) is paid
r^i_t = sum_{q=1..K} l(t+1-q, q), the summed loss of every open-loop prediction that targeted o_{t+1} (starting
points inside the current episode only). For Hindsight each term is l_rec + inv_weight * l_inv, where l_inv is the
tuple's InfoNCE term against a bank of recent codes: a code that smuggles predictable information is charged.
The raw reward is normalised by EMA estimates of its mean and second moment and prioritised,
r~ = max((r - mu) / sigma, 0); the adapter pays r_ext + lambda * r~ (``coef`` = lambda) and logs each stream.

Per env, the reward keeps the closed-loop belief and a K-deep queue of open-loop states, so r^i_t is known at
step time. Beliefs restart in :meth:`reset` from the first observation; the transition that ends an episode is
scored with the true final observation and nothing crosses the boundary. Every ``update_every`` vector steps,
:meth:`update` trains on the transitions collected since the last update (split per env with ``env_ids``),
starting each env's sequence from the belief it had at step time (R2D2's stored state), recomputing beliefs
with the current weights and cutting the sequences into ``chunk_len`` windows for minibatch steps.

Departures from the papers (small CPU build): MLP encoders over one-hot MiniGrid codes (standardised by running
statistics, as RND does: without it the random encoder maps every view to nearly the same direction and BYOL's
embeddings collapse) instead of ResNets; embedding 32, GRU 64, K = 3, Adam 1e-3; the critic's form, the
representation trained by BYOL-Explore's loss under the hindsight heads, and max(L_inv, 0) in the world loss
(all explained in :mod:`.byol_model`); step-time l_inv uses codes kept from the last update as negatives; no
separate intrinsic value head or per-stream discount (PPO learns from the mixed reward). Per-env beliefs are not
checkpointed: a resumed run resets its envs.

>>> import gymnasium as gym, numpy as np
>>> from robo_reward.protocol import TransitionBatch
>>> r = BYOLExplore(hidden=32, embed=16, belief=16)
>>> r.bind(gym.spaces.Box(0, 3, (4,), dtype=np.uint8), gym.spaces.Discrete(2), num_envs=2)
>>> r.reset(np.zeros((2, 4), np.uint8), np.array([True, True]))
>>> b = TransitionBatch(np.zeros((2, 4), np.uint8), np.array([0, 1]), np.ones((2, 4), np.uint8), np.zeros(2),
...                     np.zeros(2, bool), np.zeros(2, bool))
>>> out = r.evaluate(b)
>>> sorted(out.terms), bool((out.terms["byol_explore/raw"] > 0).all())
(['byol_explore', 'byol_explore/normalized', 'byol_explore/raw'], True)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from robo_reward.methods.curiosity.base import (
    IntrinsicReward,
    ObsEncoder,
    RunningStandardizer,
    action_dim,
    action_features,
    split_by_env,
)
from robo_reward.methods.curiosity.byol_model import (
    Sequences,
    WorldModel,
    WorldModelTrainer,
    infonce,
    normalized_l2,
)
from robo_reward.protocol import Obs, RewardError, TransitionBatch, obs_len


class BYOLExplore(IntrinsicReward):
    """BYOL-Explore's intrinsic reward (Guo et al., NeurIPS 2022, arXiv 2206.08332).

    :param coef: lambda, the weight of the normalised intrinsic reward (the adapter adds r_ext).
    :param horizon: K, open-loop prediction depth.
    :param hidden, embed, belief: MLP width, embedding size, GRU belief size.
    :param lr: Adam learning rate. :param target_ema: alpha of the target encoder's EMA.
    :param update_every: vector steps between updates (match PPO's ``n_steps``).
    :param epochs: passes over the collected transitions per update. With PPO's 1024-transition rollouts, 2
        passes (16 gradient steps per update) left Hindsight's reconstructor undertrained on the rare TV frames:
        their error stayed 3-5x the rest and two of five seeds were captured (benchmarks/noisy_tv/published).
    :param chunk_len: scored rows per training window. :param chunk_batch: windows per gradient step.
    :param normalize: apply the EMA normaliser and max(., 0) prioritisation. :param norm_decay: its EMA decay.
    :param seed: seeds the weights, the training order and (Hindsight) the generator noise.
    """

    name = "byol_explore"
    hindsight = False

    def __init__(self, *, coef: float = 1.0, horizon: int = 3, hidden: int = 128, embed: int = 32,
                 belief: int = 64, lr: float = 1e-3, target_ema: float = 0.99, update_every: int = 128,
                 epochs: int = 4, chunk_len: int = 16, chunk_batch: int = 16, normalize: bool = True,
                 norm_decay: float = 0.99, max_onehot: int = 32, seed: int = 0, label: str | None = None) -> None:
        super().__init__(coef=coef, normalize=normalize, norm_decay=norm_decay, norm_mode="prioritized",
                         seed=seed, label=label or self.name)
        if update_every < 1 or epochs < 1 or chunk_len < 1 or chunk_batch < 1:
            raise ValueError("update_every, epochs, chunk_len and chunk_batch must all be >= 1")
        self.sizes = {"horizon": int(horizon), "hidden": int(hidden), "embed": int(embed), "belief": int(belief)}
        self.lr, self.target_ema, self.update_every = float(lr), float(target_ema), int(update_every)
        self.epochs, self.chunk_len, self.chunk_batch = int(epochs), int(chunk_len), int(chunk_batch)
        self.max_onehot = int(max_onehot)
        self.model: WorldModel | None = None
        self._trace: deque[tuple[np.ndarray, torch.Tensor]] = deque(maxlen=16 * self.update_every)

    # -- construction ---------------------------------------------------------------------------------------
    def _model_kwargs(self) -> dict[str, int]:
        return dict(self.sizes)

    def _trainer_kwargs(self) -> dict[str, Any]:
        return {}

    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        ObsEncoder(observation_space, max_onehot=self.max_onehot)
        action_dim(action_space)

    def bind(self, observation_space: gym.Space, action_space: gym.Space, num_envs: int) -> None:
        super().bind(observation_space, action_space, num_envs)
        if self.model is None:
            self.obs_encoder = ObsEncoder(observation_space, max_onehot=self.max_onehot)
            self.obs_stats = RunningStandardizer(self.obs_encoder.dim)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                self.model = WorldModel(self.obs_encoder.dim, action_dim(action_space), hindsight=self.hindsight,
                                        **self._model_kwargs())
            self.rng = torch.Generator().manual_seed(self.seed)
            self.trainer = WorldModelTrainer(self.model, lr=self.lr, target_ema=self.target_ema,
                                             generator=self.rng, **self._trainer_kwargs())
        h, k = self.sizes["belief"], self.sizes["horizon"]
        self._queue = torch.zeros(num_envs, k, h)
        self._queue_valid = torch.zeros(num_envs, k, dtype=torch.bool)
        self._needs_reset = np.ones(num_envs, dtype=bool)
        self._trace.clear()

    def _action_space(self) -> gym.Space:
        if self.action_space is None:
            raise RewardError(f"reward '{self.name}' is not bound to an env yet: wrap an env with it first")
        return self.action_space

    def _require_model(self) -> WorldModel:
        if self.model is None:
            raise RewardError(f"reward '{self.name}' is not bound to an env yet: wrap an env with it first")
        return self.model

    # -- per-env beliefs ------------------------------------------------------------------------------------
    def reset(self, obs: Obs, env_mask: np.ndarray) -> None:
        model = self._require_model()
        mask = np.asarray(env_mask, dtype=bool)
        if len(mask) != self.num_envs or obs_len(obs) != self.num_envs:
            raise RewardError(f"reward '{self.name}' is bound to {self.num_envs} envs but reset got a mask of "
                              f"{len(mask)} and {obs_len(obs)} observations; bind it to the env it resets")
        if not mask.any():
            return
        idx = torch.from_numpy(np.flatnonzero(mask))
        with torch.no_grad():
            x = self.obs_stats(self.obs_encoder(np.asarray(obs)[mask]))
            first = model.observe(None, model.encoder(x), None)
        self._queue[idx] = 0.0
        self._queue[idx, 0] = first
        self._queue_valid[idx] = False
        self._queue_valid[idx, 0] = True
        self._needs_reset[mask] = False

    def _step_terms(self, b: torch.Tensor, b_next: torch.Tensor, action: torch.Tensor,
                    target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-prediction reward terms at step time, (n*K,) each; Hindsight adds the invariance term."""
        return normalized_l2(self._require_model().predictor(b_next), target), {}

    def raw_reward(self, batch: TransitionBatch) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        model = self._require_model()
        ids = np.array(batch.env_ids)
        if self._needs_reset[ids].any():
            raise RewardError(f"reward '{self.name}' has no belief for envs {ids[self._needs_reset[ids]].tolist()}: "
                              "reset(obs, env_mask) must run when their episodes begin (the robo_reward adapters "
                              "do this)")
        n, k, h = len(ids), self.sizes["horizon"], self.sizes["belief"]
        tid = torch.from_numpy(ids)
        with torch.no_grad():
            x_next = self.obs_stats(self.obs_encoder(batch.next_obs))
            a = action_features(batch.action, self._action_space())
            queue, valid = self._queue[tid], self._queue_valid[tid]
            self._trace.append((ids.copy(), queue[:, 0].clone()))
            b = queue.reshape(n * k, h)
            a_rep = a.repeat_interleave(k, 0)
            b_next = model.open(a_rep, b)
            per, extra = self._step_terms(b, b_next, a_rep, model.target(x_next).repeat_interleave(k, 0))
            mask = valid.float()
            raw = (per.reshape(n, k) * mask).sum(1)
            parts = {name: (v.reshape(n, k) * mask).sum(1).numpy().astype(np.float64) for name, v in extra.items()}
            belief = model.observe(queue[:, 0], model.encoder(x_next), a)
        done = np.asarray(batch.done, dtype=bool)
        new_valid = torch.cat([torch.ones(n, 1, dtype=torch.bool), valid[:, :-1]], 1)
        new_valid[torch.from_numpy(done)] = False
        self._queue[tid] = torch.cat([belief[:, None], b_next.reshape(n, k, h)[:, :-1]], 1)
        self._queue_valid[tid] = new_valid
        self._needs_reset[ids[done]] = True
        return raw.numpy().astype(np.float64), parts

    # -- learning -------------------------------------------------------------------------------------------
    def _start_beliefs(self, env_ids: np.ndarray, lengths: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Each env's step-time belief at its first row in the update batch, where the trace still holds it."""
        start = torch.zeros(len(env_ids), self.sizes["belief"])
        has = torch.zeros(len(env_ids), dtype=torch.bool)
        if not self._trace:
            return start, has
        ids = np.concatenate([t[0] for t in self._trace])
        beliefs = torch.cat([t[1] for t in self._trace])
        counts = np.bincount(ids, minlength=int(max(env_ids.max(), ids.max())) + 1)
        order = np.argsort(ids, kind="stable")
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        seen = counts[env_ids]
        ok = seen >= lengths
        rows = order[(first[env_ids] + seen - lengths)[ok]]
        start[torch.from_numpy(ok)] = beliefs[torch.from_numpy(rows)]
        has[torch.from_numpy(ok)] = True
        return start, has

    def sequences(self, batch: TransitionBatch) -> Sequences:
        """The batch as padded per-env :class:`Sequences`, started from the step-time beliefs; the observation
        statistics first take in the batch's successor observations."""
        split = split_by_env(batch)
        next_obs = self.obs_encoder(batch.next_obs)
        self.obs_stats.observe(next_obs)
        index, valid = torch.from_numpy(split.index), torch.from_numpy(split.valid)
        start, has_start = self._start_beliefs(split.env_ids, split.valid.sum(1))
        return Sequences(
            obs=self.obs_stats(self.obs_encoder(batch.obs))[index], next_obs=self.obs_stats(next_obs)[index],
            action=action_features(batch.action, self._action_space())[index],
            done=torch.from_numpy(np.asarray(batch.done, dtype=bool))[index] & valid,
            valid=valid, score=valid, start=start, has_start=has_start,
        )

    def update(self, batch: TransitionBatch) -> dict[str, float]:
        """Train the world model on the transitions evaluated since the last update; returns mean losses."""
        model = self._require_model()
        if batch.num == 0:
            return {}
        seq = self.sequences(batch)
        self._trace.clear()
        with torch.no_grad():
            beliefs = model.beliefs(seq)
        chunks = seq.chunks(self.chunk_len, self.sizes["horizon"] - 1, beliefs)
        history: list[dict[str, float]] = []
        for _ in range(self.epochs):
            order = torch.randperm(len(chunks.valid), generator=self.rng)
            for part in order.split(self.chunk_batch):
                history.append(self.trainer.step(chunks.rows(part)))
        self._after_update(chunks)
        return {key: float(np.mean([m[key] for m in history])) for key in history[0]}

    def _after_update(self, chunks: Sequences) -> None:
        """Hook for Hindsight's code bank."""

    # -- persistence ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        model = self._require_model()
        return {"sizes": dict(self.sizes), "model": model.state_dict(), "trainer": self.trainer.state_dict(),
                "obs_stats": self.obs_stats.state_dict(), "normalizer": self.normalizer_state(),
                "rng": self.rng.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        model = self._require_model()
        if dict(state.get("sizes", {})) != self.sizes:
            raise RewardError(f"checkpoint for '{self.name}' has sizes {state.get('sizes')} but this reward has "
                              f"{self.sizes}; build the reward with the config it was saved from")
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise RewardError(f"checkpoint does not match reward '{self.name}': {exc}") from exc
        self.trainer.load_state_dict(state["trainer"])
        self.load_shared_state(state)


class BYOLHindsight(BYOLExplore):
    """BYOL-Hindsight's intrinsic reward (Jarrett et al., ICML 2023, arXiv 2211.10515).

    Takes BYOL-Explore's parameters plus:

    :param z_dim: size of the hindsight code Z (and of the generator's noise eps).
    :param inv_weight: lambda_inv, weight of the invariance term in the loss and in the reward.
    :param critic_lr: the critic's learning rate (default: ``lr``).
    :param critic_steps: critic ascent steps per world-model step (the critic leads the game).
    :param negatives: other tuples' codes scored against each tuple's context (InfoNCE negatives).
    :param bank: codes kept from the last update to serve as negatives for the step-time l_inv.
    """

    name = "byol_hindsight"
    hindsight = True

    def __init__(self, *, z_dim: int = 16, inv_weight: float = 1.0, critic_lr: float | None = None,
                 critic_steps: int = 1, negatives: int = 15, bank: int = 512, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if inv_weight < 0 or negatives < 1 or bank < negatives or critic_steps < 1:
            raise ValueError(f"need inv_weight >= 0, negatives >= 1, bank >= negatives and critic_steps >= 1; got "
                             f"{inv_weight}, {negatives}, {bank}, {critic_steps}")
        self.sizes.update(z_dim=int(z_dim))
        self.inv_weight, self.critic_lr, self.critic_steps = float(inv_weight), critic_lr, int(critic_steps)
        self.negatives, self.bank_size = int(negatives), int(bank)
        self.bank = torch.zeros(0, int(z_dim))

    def _trainer_kwargs(self) -> dict[str, Any]:
        return {"inv_weight": self.inv_weight, "critic_lr": self.critic_lr, "critic_steps": self.critic_steps,
                "negatives": self.negatives}

    def _step_terms(self, b: torch.Tensor, b_next: torch.Tensor, action: torch.Tensor,
                    target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model = self._require_model()
        z = model.hindsight_code(b, action, target, torch.randn(len(b), self.sizes["z_dim"], generator=self.rng))
        rec = normalized_l2(model.reconstruct(b_next, action, z), target)
        inv = torch.zeros_like(rec)
        if len(self.bank) >= self.negatives:
            pick = torch.randint(len(self.bank), (len(z), self.negatives), generator=self.rng)
            codes = torch.cat([z[:, None], self.bank[pick]], 1)
            inv = infonce(model.critic_scores(torch.cat([b_next, action], -1), codes))
        return rec + self.inv_weight * inv, {"rec": rec, "inv": inv}

    def _after_update(self, chunks: Sequences) -> None:
        model = self._require_model()
        with torch.no_grad():
            pick = torch.randperm(len(chunks.valid), generator=self.rng)[: 2 * self.chunk_batch]
            part = chunks.rows(pick)
            roll = model.rollout(part, model.beliefs(part), self.rng)
        if roll.z is not None and len(roll.z):
            self.bank = roll.z[torch.randperm(len(roll.z), generator=self.rng)[: self.bank_size]].clone()

    def state_dict(self) -> dict[str, Any]:
        return dict(super().state_dict(), bank=self.bank.clone())

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.bank = torch.as_tensor(state["bank"]).clone()
