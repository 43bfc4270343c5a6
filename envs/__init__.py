"""Gymnasium tasks of robo_reward, registered under the ``robo_reward/`` namespace."""


def register_envs() -> None:
    """Register every task with Gymnasium (called by ``import robo_reward`` through its plugin entry point)."""
