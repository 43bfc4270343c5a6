"""Noisy-TV exploration tasks on MiniGrid: curiosity traps that pure noise can spring.

==================================  ===============================================================
id                                  TV
==================================  ===============================================================
``robo_reward/NoisyTVOnDemand-v0``  the ``done`` action (6) fills the far rows of the view with fresh noise
``robo_reward/NoisyTVCell-v0``      a wall cell changes to a random colour every step while in view
``robo_reward/NoisyTVControl-v0``   no noise: same layout, the remote and the TV are dead
==================================  ===============================================================

The environment class is :class:`robo_reward.envs.noisy_tv.env.NoisyTVEnv`; this module only registers ids, so
registering imports neither MiniGrid nor pygame.
"""

from __future__ import annotations

TASKS: dict[str, str] = {"NoisyTVOnDemand": "on_demand", "NoisyTVCell": "cell", "NoisyTVControl": "none"}
"""Task name -> the ``tv`` mode of :class:`~robo_reward.envs.noisy_tv.env.NoisyTVEnv`."""


def register() -> None:
    """Register the noisy-TV tasks under ``robo_reward/`` (string entry points: nothing heavy is imported)."""
    import gymnasium

    for name, tv in TASKS.items():
        env_id = f"robo_reward/{name}-v0"
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point="robo_reward.envs.noisy_tv.env:NoisyTVEnv", kwargs={"tv": tv})
