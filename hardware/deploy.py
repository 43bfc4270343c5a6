"""Run a trained policy and its learned reward on a robot: the fixed-rate control loop.

Every tick, on the monotonic clock (never on message arrival):

1. an operator's reset request clears a latched e-stop, if every required observation is fresh and valid;
2. while the e-stop is latched the stop command (zero velocity, or hold position) is re-sent and nothing else runs;
3. observations are snapshotted and checked (watchdog, converters); the policy runs; the safety layer filters its
   action; the command is published;
4. the learned reward of the transition that just completed, ``(s_{t-1}, a_{t-1}, s_t)``, is computed through the
   core protocol (``Reward.evaluate``) and published with its terms. ``a_{t-1}`` is the action *executed*
   (after clipping and rate limiting, mapped back to action units), since that is what the robot did. Episodes
   begin at start-up and after each e-stop reset (``Reward.reset``); the robot never terminates by itself, so
   terminated and truncated are False.

Any exception in a tick (a malformed message, a stale observation, a NaN from the policy or the reward) latches the
e-stop, publishes the stop command and a status line naming the cause; SIGINT/SIGTERM end the loop, and the stop
command is always sent on the way out.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from robo_reward.hardware.bridge import RobotBridge, Snapshot, TickClock
from robo_reward.protocol import Obs, Reward, TransitionBatch, check_finite

Policy = Callable[[Any], np.ndarray]


def _batch1(obs: Obs) -> Obs:
    if isinstance(obs, dict):
        return {k: np.asarray(v)[None] for k, v in obs.items()}
    return np.asarray(obs)[None]


@dataclass
class DeploySummary:
    """What a deployment did: ticks run and skipped, e-stops, the reward published, the clock's lateness."""

    ticks: int = 0
    commands: int = 0
    skipped_ticks: int = 0
    estops: list[str] = field(default_factory=list)
    rewards: int = 0
    lateness_ms: dict[str, float] = field(default_factory=dict)
    stopped_by: str = ""


class DeployLog:
    """One JSON line per tick (observation vectors, message stamps, actions, command, reward, status).

    Images are not written, only their message stamps. Lines are flushed as they are written so a log survives a
    crash of the process.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] = self.path.open("w")

    def write(self, record: dict[str, Any]) -> None:
        def plain(v: Any) -> Any:
            if isinstance(v, np.ndarray):
                return v.tolist()
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            if isinstance(v, list | tuple):
                return [plain(x) for x in v]
            if isinstance(v, np.generic):
                return v.item()
            return v

        self._fh.write(json.dumps(plain(record)) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class Deployment:
    """The control loop (see the module docstring).

    :param bridge: the robot (observations, safety, e-stop) over a started transport.
    :param policy: ``policy(obs) -> action`` (e.g. :class:`robo_reward.hardware.policy.SB3Policy`).
    :param reward: a bound learned reward to compute and publish online, or None.
    :param clock: the tick clock (its period is the control period).
    :param log: a :class:`DeployLog` to write every tick to, or None.
    """

    def __init__(self, bridge: RobotBridge, policy: Policy, reward: Reward | None = None,
                 clock: TickClock | None = None, log: DeployLog | None = None) -> None:
        self.bridge, self.policy, self.reward, self.log = bridge, policy, reward, log
        self.clock = clock or TickClock(bridge.profile.period)
        self.summary = DeploySummary()
        self._previous: tuple[Obs, np.ndarray] | None = None
        self._episode_start = True
        self._stop_requested: str | None = None

    # -- stopping ------------------------------------------------------------------------------------------
    def request_stop(self, why: str = "requested") -> None:
        """End the loop after the current tick (thread- and signal-safe)."""
        self._stop_requested = why

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        old: dict[int, Any] = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, lambda s, _f: self.request_stop(signal.Signals(s).name))
        return old

    # -- one tick ------------------------------------------------------------------------------------------
    def tick(self, now: float) -> dict[str, Any]:
        """Run one control tick at time ``now``; returns the record it logs."""
        bridge = self.bridge
        record: dict[str, Any] = {"tick": self.clock.index, "t": now, "t_wake": time.monotonic()}
        if bridge.transport.take_reset_request():
            refused = bridge.try_reset() if bridge.estop.latched else None
            record["reset"] = refused or "ok"
            if refused:
                bridge.transport.publish_status(f"ESTOP: reset refused: {refused}")
            else:
                self._episode_start, self._previous = True, None
        published: list[np.ndarray] = []
        record["published"] = published
        if bridge.estop.latched:
            held = bridge.hold()
            published.extend([] if held is None else [held])
            record.update(status="estop", reason=bridge.estop.reason)
            return record
        try:
            snap = bridge.snapshot()  # ages measured now, not at the scheduled tick time
            action = np.asarray(self.policy(snap.obs), dtype=np.float64)
            filtered = bridge.send(action)
            record["t_sent"] = time.monotonic()
            published.append(filtered.values)
            self.summary.commands += 1
            record.update(status="running", stamps=snap.stamps, action=action,
                          executed_action=filtered.executed_action,
                          obs={k: v for k, v in (snap.obs.items() if isinstance(snap.obs, dict) else
                                                 [("obs", snap.obs)]) if v.ndim == 1})
            self._reward(snap, filtered.executed_action, record)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            stop = bridge.stop(reason)
            published.extend([] if stop is None else [stop])
            record.update(status="estop", reason=reason)
            self.summary.estops.append(reason)
            self._previous, self._episode_start = None, True
        return record

    def _reward(self, snap: Snapshot, executed: np.ndarray, record: dict[str, Any]) -> None:
        if self.reward is None:
            return
        if self._episode_start:
            self.reward.reset(_batch1(snap.obs), np.ones(1, bool))
            self._episode_start = False
            record["episode_start"] = True
        elif self._previous is not None:
            prev_obs, prev_action = self._previous
            batch = TransitionBatch(
                obs=_batch1(prev_obs), action=prev_action[None], next_obs=_batch1(snap.obs), reward=np.zeros(1),
                terminated=np.zeros(1, bool), truncated=np.zeros(1, bool),
            )
            out = self.reward.evaluate(batch)
            check_finite(out, " on the robot")
            terms = {k: float(v[0]) for k, v in out.terms.items()}
            self.bridge.transport.publish_reward(self.clock.index, float(out.total[0]), terms)
            self.summary.rewards += 1
            record.update(reward=float(out.total[0]), terms=terms)
        self._previous = (snap.obs, executed)

    # -- the loop ------------------------------------------------------------------------------------------
    def run(self, max_ticks: int | None = None, duration: float | None = None,
            wait_ready: float = 10.0) -> DeploySummary:
        """Tick until SIGINT/SIGTERM, :meth:`request_stop`, ``max_ticks`` or ``duration`` seconds.

        The loop starts once every observation has arrived (at most ``wait_ready`` seconds, else TimeoutError).
        """
        old_handlers = self._install_signal_handlers()
        try:
            first = self.bridge.wait_ready(wait_ready, should_stop=lambda: self._stop_requested is not None)
            if first is None:
                self.summary.stopped_by = f"{self._stop_requested} (before the robot was ready)"
                return self.summary
            self._warm_up(first)
            self.bridge.transport.publish_status("running: deployment started")
            self._loop(max_ticks, duration)
        finally:
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
        return self.summary

    def _loop(self, max_ticks: int | None, duration: float | None) -> None:
        start = self.clock.start()
        try:
            while self._stop_requested is None:
                now = self.clock.wait()
                record = self.tick(now)
                self.summary.ticks += 1
                if self.log is not None:
                    self.log.write(record)
                if max_ticks is not None and self.summary.ticks >= max_ticks:
                    self.request_stop("max_ticks")
                if duration is not None and now - start >= duration:
                    self.request_stop("duration")
        except BaseException as exc:
            self._stop_requested = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self.summary.stopped_by = self._stop_requested or ""
            self._shutdown()

    def _warm_up(self, snap: Snapshot) -> None:
        """Run the policy and the reward once before the first tick (lazy initialisation in torch and SB3 takes
        tens of milliseconds on the first call, which would make the first ticks late). Nothing is published."""
        action = np.asarray(self.policy(snap.obs), dtype=np.float64).reshape(-1)
        if self.reward is not None:
            obs = _batch1(snap.obs)
            self.reward.reset(obs, np.ones(1, bool))
            batch = TransitionBatch(obs=obs, action=action[None], next_obs=obs, reward=np.zeros(1),
                                    terminated=np.zeros(1, bool), truncated=np.zeros(1, bool))
            self.reward.evaluate(batch)

    def _shutdown(self) -> None:
        try:
            self.bridge.hold()
            self.bridge.transport.publish_status(f"stopped: {self.summary.stopped_by}")
            time.sleep(min(0.05, self.bridge.profile.period))  # let the last messages leave before close
        finally:
            lateness = np.asarray(self.clock.lateness) * 1e3
            if lateness.size:
                self.summary.lateness_ms = {"median": float(np.median(lateness)),
                                            "p99": float(np.percentile(lateness, 99)),
                                            "max": float(lateness.max())}
            self.summary.skipped_ticks = self.clock.skipped
            if self.log is not None:
                self.log.close()
