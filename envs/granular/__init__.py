"""Granular pile shaping with sweep primitives (DeformPAM's granular task, reconstructed in numpy).

``robo_reward/GranularSweep-v0``: sweep a round pile of 300 particles into a 'T' in ``horizon`` (default 10)
primitives; the env truncates its episodes itself, so no Gymnasium time limit is registered.

:mod:`~robo_reward.envs.granular.sweep` has the batched physics and scores, :mod:`~robo_reward.envs.granular.env`
the Gymnasium env, :mod:`~robo_reward.envs.granular.annotator` the greedy annotator and the preference oracle.
"""

from __future__ import annotations


def register() -> None:
    """Register ``robo_reward/GranularSweep-v0`` (string entry point: nothing is imported)."""
    import gymnasium

    if "robo_reward/GranularSweep-v0" not in gymnasium.registry:
        gymnasium.register(id="robo_reward/GranularSweep-v0",
                           entry_point="robo_reward.envs.granular.env:GranularSweepEnv")
