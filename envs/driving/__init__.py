"""Route-driving tasks for driving rewards (CaRL, :mod:`robo_reward.methods.carl`).

==================================  ===============================================================  =========
id                                  task                                                             max steps
==================================  ===============================================================  =========
``robo_reward/DrivingRoute-v0``     kinematic-bicycle route on a curved 3-lane road with traffic     1000
``robo_reward/LineRoute-v0``        deterministic 1-D route with scripted infractions (unit tests)  1000
==================================  ===============================================================  =========

The classes are :class:`robo_reward.envs.driving.route.DrivingRouteEnv` and
:class:`robo_reward.envs.driving.line.LineRouteEnv`; registering imports neither.
"""

from __future__ import annotations

TASKS: dict[str, str] = {
    "DrivingRoute": "robo_reward.envs.driving.route:DrivingRouteEnv",
    "LineRoute": "robo_reward.envs.driving.line:LineRouteEnv",
}
"""Task name -> entry point."""


def register() -> None:
    """Register the driving tasks under ``robo_reward/`` (the route timeout ends episodes before the step cap)."""
    import gymnasium

    for name, entry_point in TASKS.items():
        env_id = f"robo_reward/{name}-v0"
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=entry_point, max_episode_steps=1000)
