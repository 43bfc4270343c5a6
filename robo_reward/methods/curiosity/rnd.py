"""Random Network Distillation (Burda et al., ICLR 2019, arXiv 1810.12894): the standard novelty bonus that a
noisy TV defeats.

A fixed, randomly initialised target network f maps the successor observation to features; a predictor f^ is
trained to match them on the agent's data, and the bonus is the prediction error ||f^(o') - f(o')||^2. States
seen often are predicted well and stop paying; fresh noise is always new and keeps paying.

Small build: MLPs over one-hot MiniGrid codes; observations are standardised by running statistics and clipped to
[-5, 5] as in the paper; the bonus is divided by an EMA estimate of its standard deviation (the paper divides by
the running standard deviation of the intrinsic *return* and uses non-episodic intrinsic returns with their own
value head, which the package's PPO does not offer). The bonus depends on the transition alone, so the reward can
be recomputed for stored transitions (statistics are frozen then).

>>> import gymnasium as gym, numpy as np
>>> from robo_reward.protocol import TransitionBatch
>>> r = RND(hidden=32, features=8)
>>> r.bind(gym.spaces.Box(0, 3, (4,), dtype=np.uint8), gym.spaces.Discrete(2), num_envs=2)
>>> b = TransitionBatch(np.zeros((2, 4), np.uint8), np.array([0, 1]), np.ones((2, 4), np.uint8), np.zeros(2),
...                     np.zeros(2, bool), np.zeros(2, bool))
>>> before = r.evaluate(b).terms["rnd/raw"].mean()
>>> for _ in range(20): _ = r.update(b)
>>> bool(r.evaluate(b).terms["rnd/raw"].mean() < before)
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from robo_reward.methods.curiosity.base import IntrinsicReward, ObsEncoder, RunningStandardizer
from robo_reward.methods.curiosity.byol_model import mlp
from robo_reward.protocol import RewardError, TransitionBatch


class RND(IntrinsicReward):
    """RND's intrinsic reward ``coef * ||f^(o') - f(o')||^2 / sigma``.

    :param coef: lambda, the weight of the normalised bonus. :param hidden: MLP width.
    :param features: output size of the target and predictor networks. :param lr: Adam learning rate.
    :param update_every: vector steps between updates (match PPO's ``n_steps``).
    :param epochs: passes over the collected transitions per update. :param batch_size: minibatch size.
    :param normalize: divide by the EMA standard deviation of the bonus. :param seed: seeds both networks.
    """

    name = "rnd"
    stateless = True

    def __init__(self, *, coef: float = 1.0, hidden: int = 256, features: int = 64, lr: float = 3e-4,
                 update_every: int = 128, epochs: int = 4, batch_size: int = 256, normalize: bool = True,
                 norm_decay: float = 0.99, max_onehot: int = 32, seed: int = 0, label: str | None = None) -> None:
        super().__init__(coef=coef, normalize=normalize, norm_decay=norm_decay, norm_mode="scale", seed=seed,
                         label=label or self.name)
        if update_every < 1 or epochs < 1 or batch_size < 1:
            raise ValueError("update_every, epochs and batch_size must all be >= 1")
        self.hidden, self.features, self.lr = int(hidden), int(features), float(lr)
        self.update_every, self.epochs, self.batch_size = int(update_every), int(epochs), int(batch_size)
        self.max_onehot = int(max_onehot)
        self.target: torch.nn.Module | None = None

    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        ObsEncoder(observation_space, max_onehot=self.max_onehot)

    def bind(self, observation_space: gym.Space, action_space: gym.Space, num_envs: int) -> None:
        super().bind(observation_space, action_space, num_envs)
        if self.target is None:
            self.obs_encoder = ObsEncoder(observation_space, max_onehot=self.max_onehot)
            self.obs_stats = RunningStandardizer(self.obs_encoder.dim)
            sizes = [self.obs_encoder.dim, self.hidden, self.hidden, self.features]
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                self.target = mlp(sizes).requires_grad_(False)
                self.predictor = mlp(sizes)
            self.optimizer = torch.optim.Adam(self.predictor.parameters(), lr=self.lr)
            self.rng = torch.Generator().manual_seed(self.seed)

    def _errors(self, x: torch.Tensor) -> torch.Tensor:
        assert self.target is not None
        return (self.predictor(x) - self.target(x)).pow(2).sum(-1)

    def raw_reward(self, batch: TransitionBatch) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if self.target is None:
            raise RewardError(f"reward '{self.name}' is not bound to an env yet: wrap an env with it first")
        with torch.no_grad():
            x = self.obs_stats(self.obs_encoder(batch.next_obs))
            return self._errors(x).numpy().astype(np.float64), {}

    def relabel(self, batch: TransitionBatch) -> np.ndarray:
        raw, _ = self.raw_reward(batch)
        return self.coef * (raw if self.normalizer is None else self.normalizer.normalize(raw))

    def update(self, batch: TransitionBatch) -> dict[str, float]:
        """Fit the predictor to the target on the successor observations collected since the last update."""
        if self.target is None:
            raise RewardError(f"reward '{self.name}' is not bound to an env yet: wrap an env with it first")
        if batch.num == 0:
            return {}
        raw = self.obs_encoder(batch.next_obs)
        self.obs_stats.observe(raw)
        x = self.obs_stats(raw)
        losses = []
        for _ in range(self.epochs):
            for idx in torch.randperm(len(x), generator=self.rng).split(self.batch_size):
                loss = self._errors(x[idx]).mean()
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                losses.append(loss.item())
        return {"loss": float(np.mean(losses))}

    def state_dict(self) -> dict[str, Any]:
        if self.target is None:
            raise RewardError(f"reward '{self.name}' has no weights until it is bound to an env")
        return {"target": self.target.state_dict(), "predictor": self.predictor.state_dict(),
                "optimizer": self.optimizer.state_dict(), "obs_stats": self.obs_stats.state_dict(),
                "normalizer": self.normalizer_state(), "rng": self.rng.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if self.target is None:
            raise RewardError(f"bind reward '{self.name}' to an env before loading its weights")
        try:
            self.target.load_state_dict(state["target"])
            self.predictor.load_state_dict(state["predictor"])
        except RuntimeError as exc:
            raise RewardError(f"checkpoint does not match reward '{self.name}': {exc}") from exc
        self.optimizer.load_state_dict(state["optimizer"])
        self.load_shared_state(state)
