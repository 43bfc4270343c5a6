"""MiniGrid DoorKey tasks that print messages: ONI's small-scale build (Zheng et al., arXiv 2410.23022;
:mod:`robo_reward.methods.oni`).

=====================================  ================================================================
id                                     task
=====================================  ================================================================
``robo_reward/TextDoorKey-v0``         8 x 8 DoorKey; each event prints one fixed message
``robo_reward/TextDoorKeyVariants-v0`` the same, each message prefixed with its turn (``Turn 17: ...``)
=====================================  ================================================================

Episodes end at MiniGrid's own limit (``10 * size**2`` = 640 steps), which the registered time limit repeats. The environment class is
:class:`robo_reward.envs.textgrid.env.TextDoorKeyEnv`; this module only registers ids, so registering does
not import MiniGrid.
"""

from __future__ import annotations

TASKS: dict[str, dict[str, object]] = {
    "TextDoorKey": {"size": 8},
    "TextDoorKeyVariants": {"size": 8, "variants": True},
}
"""Task name -> keyword arguments of :class:`~robo_reward.envs.textgrid.env.TextDoorKeyEnv`."""


def register() -> None:
    """Register the message DoorKey tasks under ``robo_reward/`` (string entry points)."""
    import gymnasium

    for name, kwargs in TASKS.items():
        env_id = f"robo_reward/{name}-v0"
        if env_id not in gymnasium.registry:
            size = int(kwargs["size"])  # type: ignore[call-overload]
            gymnasium.register(id=env_id, entry_point="robo_reward.envs.textgrid.env:TextDoorKeyEnv", kwargs=kwargs,
                               max_episode_steps=10 * size * size)
