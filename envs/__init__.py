"""Gymnasium tasks of robo_reward, registered under the ``robo_reward/`` namespace."""


def register_envs() -> None:
    """Register every task with Gymnasium (called by ``import robo_reward`` through its plugin entry point)."""
    from robo_reward.envs.noisy_tv import register as register_noisy_tv

    register_noisy_tv()
