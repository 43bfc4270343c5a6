"""Tasks with a primary reward and a designer's auxiliary reward in ``info["aux_reward"]`` (BARFI, Gupta et al. 2023).

The env's own reward is the primary reward r_p; the auxiliary heuristic r_aux is never paid by the env, only
reported, so a reward design (``aux_reward``, ``aux_potential``) or the BARFI trainer decides what to do with it.

======================================  ============================================================  =========
id                                      r_p / r_aux                                                   max steps
======================================  ============================================================  =========
``robo_reward/GridWorldGoodAux-v0``     -0.1 per step, +100 at the goal / -squared distance to goal   50
``robo_reward/GridWorldBadAux-v0``      same r_p / +50 per step inside the centre square (a trap)     50
``robo_reward/CartPolePDAux-v0``        +1 per step / +1 when the action agrees with a PD controller  200
``robo_reward/CartPoleBadPDAux-v0``     +1 per step / -5+U(0,5) on agreement, else 1+U(0,1)           200
``robo_reward/MountainCarBangAux-v0``   +1 at the flag / +5 if the push follows the velocity, else -5 2000
======================================  ============================================================  =========

The environment classes live in :mod:`robo_reward.envs.barfi.tasks`; registering imports nothing heavy.
"""

from __future__ import annotations

TASKS: dict[str, tuple[str, dict[str, object], int]] = {
    "GridWorldGoodAux": ("robo_reward.envs.barfi.tasks:ContinuousGridWorld", {"aux": "good"}, 50),
    "GridWorldBadAux": ("robo_reward.envs.barfi.tasks:ContinuousGridWorld", {"aux": "bad"}, 50),
    "CartPolePDAux": ("robo_reward.envs.barfi.tasks:CartPoleAux", {"aux": "good"}, 200),
    "CartPoleBadPDAux": ("robo_reward.envs.barfi.tasks:CartPoleAux", {"aux": "bad"}, 200),
    "MountainCarBangAux": ("robo_reward.envs.barfi.tasks:MountainCarBangAux", {}, 2000),
}
"""Task name -> (entry point, kwargs, max_episode_steps)."""


def register() -> None:
    """Register the BARFI tasks under ``robo_reward/``."""
    import gymnasium

    for name, (entry_point, kwargs, max_steps) in TASKS.items():
        env_id = f"robo_reward/{name}-v0"
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=entry_point, kwargs=dict(kwargs), max_episode_steps=max_steps)
