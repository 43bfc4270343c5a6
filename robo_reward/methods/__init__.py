"""Reward methods, one module each; resolved by name through :mod:`robo_reward.registry`."""
