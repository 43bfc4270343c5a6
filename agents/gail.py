"""Off-policy GAIL pieces for users who drive SB3 themselves: the paper's replay-vs-expert discriminator schedule.

Blondé, Strasser, Kalousis 2022 (arXiv 2006.16785), on top of DAC (Kostrikov et al. 2019). GAIL runs from the
command line are ordinary experiment configs (``configs/gail/``, ``robo-reward train``): a ``gail`` reward term
(:class:`~robo_reward.methods.gail.GAILReward`, ``extrinsic_weight: 0``), SAC with the core relabelling replay
buffer (historical patching) and :class:`~robo_reward.absorbing.AbsorbingStateWrapper` in ``env.wrappers``. There
the core updates ``D`` every ``update_every`` env steps on the transitions collected since its last update.

The paper instead trains ``D`` on pairs sampled uniformly from the learner's whole replay buffer.
:class:`DiscriminatorCallback` does that for a hand-built SB3 learner: give the reward ``update_every=None`` (so
the core never updates it) and pass the callback to ``model.learn`` beside :class:`~robo_reward.sb3.RewardCallback`.

Where this small build departs from the reference setup (specs/lipschitz_gail.md): SB3's SAC/TD3 have no n-step
returns (the paper uses 10-step lookahead), exploration is SAC's entropy bonus or TD3's Gaussian action noise (not
parameter noise + OU), and the discriminator is updated in blocks (``d_steps`` steps every ``d_every`` env steps)
instead of one step per learner step, which keeps the CPU cost down at the same update ratio.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback

from robo_reward.methods.gail.reward import GAILReward
from robo_reward.protocol import TransitionBatch
from robo_reward.sb3 import RelabelingDictReplayBuffer, RelabelingReplayBuffer


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
