"""A 2D push task with a hidden preference (RAPL's X-Magical "Avoiding" stand-in, reconstructed in numpy).

``robo_reward/Push2D-v0``: an agent disc pushes a block into a green goal region; a red zone lies on the direct
path. The task reward ignores the zone; the privileged preference return (task reward minus a zone penalty) and
the zone metrics are in ``info``. ``robo_reward/Push2DSquare-v0`` is the second embodiment (a larger square
agent) for transfer tests. Both render 64x64 RGB frames with numpy (no GL) and run a fixed horizon of 50 steps
(truncation only), so an episode length divides PPO's ``n_steps``.

:mod:`~robo_reward.envs.push2d.env` has the env, :mod:`~robo_reward.envs.push2d.expert` the scripted pusher
whose detour around the zone is a knob (the rollouts the preference oracle ranks).
"""

from __future__ import annotations

HORIZON = 50


def register() -> None:
    """Register both embodiments (string entry points: nothing is imported)."""
    import gymnasium

    for env_id, kwargs in (("robo_reward/Push2D-v0", {}), ("robo_reward/Push2DSquare-v0", {"embodiment": "square"})):
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point="robo_reward.envs.push2d.env:Push2DEnv",
                               max_episode_steps=HORIZON, kwargs=kwargs)
