"""Lipschitz-regularised off-policy GAIL: the reward, its discriminator and the pessimistic forward model."""

from robo_reward.methods.gail.reward import GAILReward, reward_from_logits

__all__ = ["GAILReward", "reward_from_logits"]
