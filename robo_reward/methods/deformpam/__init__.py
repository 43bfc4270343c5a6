"""DeformPAM: preference-aligned primitive diffusion with reward-guided action selection.

Chen, Xue, Zhou, Fang, Lu, ICRA 2025, arXiv 2410.11584. Stage 1 fits a state-conditioned primitive diffusion
model to a few hundred annotated states (:mod:`.diffusion`); Stage 2 fine-tunes a copy with Diffusion-DPO on
win/lose labels against the frozen Stage-1 model (:mod:`.alignment`); Stage 3 samples K candidates from the
*Stage-1* model and executes the one with the highest implicit reward (:mod:`.selection`). The trainer that runs
all three from a config is :mod:`robo_reward.agents.deformpam`; the granular task, its annotator and its oracle
are in :mod:`robo_reward.envs.granular`.
"""

from robo_reward.methods.deformpam.alignment import (
    RewardHead,
    dpo_loss,
    implicit_reward,
    train_dpo,
    train_reward_head,
)
from robo_reward.methods.deformpam.diffusion import PrimitiveDiffusion, train_sft
from robo_reward.methods.deformpam.selection import (
    ExplicitRewardScorer,
    ImplicitRewardScorer,
    PrimitivePolicy,
    RandomScorer,
)

__all__ = [
    "ExplicitRewardScorer",
    "ImplicitRewardScorer",
    "PrimitiveDiffusion",
    "PrimitivePolicy",
    "RandomScorer",
    "RewardHead",
    "dpo_loss",
    "implicit_reward",
    "train_dpo",
    "train_reward_head",
    "train_sft",
]
