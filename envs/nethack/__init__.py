"""NetHack tasks (NLE) that expose the game's message text to rewards, for ONI (:mod:`robo_reward.methods.oni`).

=====================================  ============================================================  =========
id                                     task                                                          max steps
=====================================  ============================================================  =========
``robo_reward/NetHackScore-v0``        in-game score delta (NLE's ``NetHackScore``)                    2000
``robo_reward/NetHackStaircase-v0``    reach the staircase down on level 1 (NLE's ``NetHackStaircase``)  1000
``robo_reward/NetHackOracle-v0``       stand next to the Oracle (NLE's ``NetHackOracle``)              5000
``robo_reward/NetHackStaircaseLvl3-v0``  reach dungeon level 3 (ONI's ``StaircaseLvl3``)               5000
``robo_reward/NetHackStaircaseLvl4-v0``  reach dungeon level 4 (ONI's ``StaircaseLvl4``)               5000
=====================================  ============================================================  =========

The environment class is :class:`robo_reward.envs.nethack.env.NetHackTextEnv`; this module only registers ids,
so registering does not import ``nle``.
"""

from __future__ import annotations

TASKS: dict[str, tuple[str, int]] = {
    "NetHackScore": ("score", 2000),
    "NetHackStaircase": ("staircase", 1000),
    "NetHackOracle": ("oracle", 5000),
    "NetHackStaircaseLvl3": ("staircase_lvl3", 5000),
    "NetHackStaircaseLvl4": ("staircase_lvl4", 5000),
}
"""Task name -> (the ``task`` of :class:`~robo_reward.envs.nethack.env.NetHackTextEnv`, max_episode_steps)."""


def register() -> None:
    """Register the NetHack tasks under ``robo_reward/`` (string entry points: ``nle`` is imported on make)."""
    import gymnasium

    for name, (task, max_steps) in TASKS.items():
        env_id = f"robo_reward/{name}-v0"
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point="robo_reward.envs.nethack.env:NetHackTextEnv",
                               kwargs={"task": task}, max_episode_steps=max_steps)
