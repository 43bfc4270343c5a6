"""Gymnasium tasks of robo_reward, registered under the ``robo_reward/`` namespace.

MuJoCo tabletop manipulation with a two-finger gripper, several cameras, sparse success rewards and privileged
phase/progress information for reward research:

============================  ==========================================  ===================
id                            task                                        max_episode_steps
============================  ==========================================  ===================
``robo_reward/Reach-v0``      move the grip point to a goal in the air    50
``robo_reward/Push-v0``       push a cube into a goal region              100
``robo_reward/PickPlace-v0``  pick a cube, place it on a raised target    100
============================  ==========================================  ===================

MiniGrid exploration tasks with a noisy TV (``robo_reward/NoisyTVOnDemand-v0``, ``NoisyTVCell-v0``,
``NoisyTVControl-v0``) for curiosity research: see :mod:`robo_reward.envs.noisy_tv`.

MiniGrid DoorKey tasks that print messages, ONI's small-scale build (``robo_reward/TextDoorKey-v0``,
``TextDoorKeyVariants-v0``): see :mod:`robo_reward.envs.textgrid`.

NetHack tasks that expose message text for ONI (``robo_reward/NetHackScore-v0``, ``NetHackStaircase-v0``,
``NetHackOracle-v0``, ``NetHackStaircaseLvl3-v0``, ``NetHackStaircaseLvl4-v0``): see :mod:`robo_reward.envs.nethack`.

A 2D push task with a hidden preference (an off-limits red zone) for RAPL (``robo_reward/Push2D-v0`` and its
second embodiment ``robo_reward/Push2DSquare-v0``): see :mod:`robo_reward.envs.push2d`.

Route-driving tasks for CaRL (``robo_reward/DrivingRoute-v0``, ``LineRoute-v0``): see
:mod:`robo_reward.envs.driving`.

Headless rendering: MuJoCo picks its GL backend from ``MUJOCO_GL`` when ``mujoco`` is first imported. This
module sets ``MUJOCO_GL=egl`` if it is unset and MuJoCo is not yet loaded (EGL renders offscreen without a
display; ``MUJOCO_GL=osmesa`` also works where Debian's ``libosmesa6`` is installed). Import ``robo_reward``
(or set the variable yourself) before anything imports ``mujoco``.
"""

from __future__ import annotations

import os
import sys

if "mujoco" not in sys.modules:
    os.environ.setdefault("MUJOCO_GL", "egl")

TASKS: dict[str, tuple[str, int]] = {
    "Reach": ("robo_reward.envs.tasks:ReachEnv", 50),
    "Push": ("robo_reward.envs.tasks:PushEnv", 100),
    "PickPlace": ("robo_reward.envs.tasks:PickPlaceEnv", 100),
}
"""Task name -> (entry point, max_episode_steps)."""


def register_envs() -> None:
    """Register every task with Gymnasium (called by ``import robo_reward`` through its plugin entry point)."""
    import gymnasium

    from robo_reward.envs.barfi import register as register_barfi
    from robo_reward.envs.driving import register as register_driving
    from robo_reward.envs.granular import register as register_granular
    from robo_reward.envs.nethack import register as register_nethack
    from robo_reward.envs.noisy_tv import register as register_noisy_tv
    from robo_reward.envs.push2d import register as register_push2d
    from robo_reward.envs.textgrid import register as register_textgrid

    for name, (entry_point, max_steps) in TASKS.items():
        env_id = f"robo_reward/{name}-v0"
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=entry_point, max_episode_steps=max_steps)
    register_noisy_tv()
    register_driving()
    register_barfi()
    register_nethack()
    register_granular()
    register_push2d()
    register_textgrid()
