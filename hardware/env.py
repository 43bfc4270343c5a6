"""A Gymnasium face for a robot: ``step`` publishes the action and returns at the next control tick.

Evaluation code written for a simulated env (``evaluate_policy``, a rollout loop, a reward wrapper) runs unchanged
on the robot. The same :class:`RobotBridge` as ``deploy`` stands between the caller and the robot, so every action
is clipped and rate-limited, and stale or malformed observations stop the robot.

Episode semantics on hardware:

* the robot never signals success or failure, so ``terminated`` is always False; ``max_episode_steps`` (or a
  ``TimeLimit`` wrapper) truncates;
* an e-stop during ``step`` (watchdog, malformed message, non-finite action) publishes the stop command and returns
  ``truncated=True`` with ``info["estop"]`` naming the cause; the observation is the last valid one;
* ``reset`` refuses to start while the e-stop is latched unless called with ``options={"clear_estop": True}``
  (the operator's explicit reset); it waits for every observation, then sends the stop command (hold);
* with a learned reward (a bound :class:`robo_reward.protocol.Reward`), ``reward`` is its total for
  ``(s, executed action, s')`` and ``info["reward/<term>"]`` holds each term; without one, reward is 0.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from robo_reward.hardware.bridge import Observation, RobotBridge, TickClock, observation_space
from robo_reward.hardware.convert import MessageError
from robo_reward.hardware.profile import RobotProfile, load_profile
from robo_reward.hardware.safety import SafetyViolation
from robo_reward.hardware.transport import Transport, make_transport
from robo_reward.protocol import Reward, TransitionBatch, check_finite


class EStopLatched(RuntimeError):
    """The robot's e-stop is latched; reset with ``env.reset(options={"clear_estop": True})``."""


def _batch1(obs: Observation) -> Any:
    if isinstance(obs, dict):
        return {k: np.asarray(v)[None] for k, v in obs.items()}
    return np.asarray(obs)[None]


class RosRobotEnv(gym.Env):
    """A robot behind a robot profile as a ``gymnasium.Env`` (see the module docstring).

    :param profile: a :class:`RobotProfile` or the path of its YAML.
    :param transport: an unstarted transport (default: one for ``middleware``).
    :param reward: a learned reward (unbound; it is bound to this env's spaces), or None.
    :param action_low: lower bound of the action space (the policy's units).
    :param action_high: upper bound of the action space.
    :param wait_ready: seconds ``reset`` waits for every observation.
    :param clock: a :class:`TickClock` (default: monotonic at the profile's rate).
    :param middleware: ``ros2`` (rclpy) or ``ros1`` (rospy), when no transport is given.
    """

    metadata = {"render_modes": []}  # noqa: RUF012 - gymnasium declares it an instance attribute

    def __init__(self, profile: RobotProfile | str | Path, *, transport: Transport | None = None,
                 reward: Reward | None = None, action_low: float = -1.0, action_high: float = 1.0,
                 wait_ready: float = 10.0, clock: TickClock | None = None, middleware: str = "ros2") -> None:
        self.profile = profile if isinstance(profile, RobotProfile) else load_profile(profile)
        self.observation_space = observation_space(self.profile)
        self.action_space = gym.spaces.Box(action_low, action_high, (self.profile.action_dim,), np.float32)
        if transport is None:
            transport = make_transport(middleware, node_name="robo_reward_env")
        self.transport = transport
        self.transport.start(self.profile)
        self.bridge = RobotBridge(self.profile, transport, self.action_space.low, self.action_space.high,
                                  clock=clock.clock if clock else time.monotonic)
        self.clock = clock or TickClock(self.profile.period)
        self.reward = reward
        if reward is not None:
            reward.bind(self.observation_space, self.action_space, 1)
        self.wait_ready = wait_ready
        self._obs: Observation | None = None
        self._closed = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[Observation, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        if self.bridge.estop.latched:
            if not options.get("clear_estop"):
                raise EStopLatched(f"e-stop latched ({self.bridge.estop.reason}); call "
                                   "reset(options={'clear_estop': True}) once the cause is fixed")
            refused = self.bridge.try_reset()
            if refused:
                raise EStopLatched(f"cannot clear the e-stop: {refused}")
        snap = self.bridge.wait_ready(self.wait_ready)
        assert snap is not None  # no should_stop given: returns a snapshot or raises
        self.bridge.hold()
        self.bridge.safety.reset()
        self.clock.start()
        self._obs = snap.obs
        if self.reward is not None:
            self.reward.reset(_batch1(snap.obs), np.ones(1, bool))
        return snap.obs, {"stamps": snap.stamps}

    def step(self, action: np.ndarray) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        if self._obs is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if self.bridge.estop.latched:
            raise EStopLatched(f"e-stop latched ({self.bridge.estop.reason}); reset the env")
        try:
            filtered = self.bridge.send(np.asarray(action, dtype=np.float64))
            now = self.clock.wait()
            snap = self.bridge.snapshot(now)
        except (SafetyViolation, MessageError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            self.bridge.stop(reason)
            return self._obs, 0.0, False, True, {"estop": reason}
        info: dict[str, Any] = {"stamps": snap.stamps, "command": filtered.values,
                                "executed_action": filtered.executed_action}
        reward = 0.0
        if self.reward is not None:
            batch = TransitionBatch(obs=_batch1(self._obs), action=filtered.executed_action[None],
                                    next_obs=_batch1(snap.obs), reward=np.zeros(1), terminated=np.zeros(1, bool),
                                    truncated=np.zeros(1, bool))
            out = self.reward.evaluate(batch)
            check_finite(out, " on the robot")
            reward = float(out.total[0])
            info.update({f"reward/{k}": float(v[0]) for k, v in out.terms.items()})
        self._obs = snap.obs
        return snap.obs, reward, False, False, info

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.bridge.hold()
        finally:
            self.transport.close()
