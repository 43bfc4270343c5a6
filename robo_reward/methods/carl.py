"""CaRL: route-completion progress with multiplicative soft penalties (Jaeger, Dauner et al. 2025, "CaRL: Learning
Scalable Planning Policies with Simple Rewards", arXiv 2504.17838).

The agent is paid one thing, the step's route-completion increment ``delta`` in percent (a finished route sums
to 100). Soft infractions scale that step's ``delta`` by factors in [0, 1] and never add a negative term, so a
standstill earns exactly 0:

* outside the route lanes (opposite lane, sidewalk): ``x 0``;
* speeding: ``x max(0, 1 - overspeed / 2.23 m/s)``;
* a TTC violation (the env's constant-velocity box forecast overlaps an actor): ``x 0.5``, held ``ttc_hold``
  steps (500 ticks in the paper, 50 s at 10 Hz);
* comfort: six nuPlan metrics on a Savitzky-Golay-smoothed 15-frame history (longitudinal acceleration, lateral
  acceleration, jerk magnitude, longitudinal jerk, yaw rate, yaw acceleration), each violation held
  ``comfort_hold`` steps: ``x (1 - 0.5 * active / 6)``;
* lane-centre distance above 0.5 m outside junctions for more than ``lane_frames`` frames (3 s): ``x 0.5``; the
  counter counts down while the car is centred;
* optional (off by default, as in the paper): an action change above 0.25 in any component: ``x 0.5``.

Hard infractions end the episode in the env (terminated); the terminal reward is 0 and a termination hint of
``-hint`` (one percentage point of route completion) is added for a collision or a red light. Finishing the
route is the env's truncation and carries no bonus. ``variant="nuplan"`` is the paper's weighted nuPlan-style
reward ``(5 delta + 5 r_ttc + 4 r_speed + 2 r_comfort) / 16`` with each ``r_x = 100 / episode_steps`` when
compliant and 0 otherwise.

The reward reads the env's ``info`` (see :mod:`robo_reward.envs.driving`): ``route_completion`` (percent),
``speed``, ``speed_limit``, ``yaw``, ``dt``, ``lane_offset``, ``in_junction``, ``outside_route_lanes``,
``ttc_violation`` and the infraction flags (``collision``; ``red_light`` where the env has traffic lights).
Each factor goes into ``info`` as ``reward/carl/<factor>``.

Small-scale departures (reconstruction): route completion is the best completion so far (CARLA's never
decreases), so ``delta >= 0``; comfort metrics are evaluated at the newest frame of the smoothed window (nuPlan
scores whole trajectories) and only once the window is full; jerk magnitude is that of the body-frame
acceleration ``(a_lon, v * yaw_rate)``; the minimum-speed option is not built.

>>> from robo_reward.protocol import TransitionBatch
>>> r = CarlReward()
>>> r.bind(gym.spaces.Box(-1, 1, (2,)), gym.spaces.Box(-1, 1, (2,)), num_envs=2)
>>> r.reset(np.zeros((2, 2)), np.ones(2, bool))
>>> info = dict(route_completion=1.0, speed=10.0, speed_limit=10.0, yaw=0.0, dt=0.1, lane_offset=0.0)
>>> fast = dict(info, speed=11.115)
>>> b = TransitionBatch(np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((2, 2)), np.zeros(2), np.zeros(2, bool),
...                     np.zeros(2, bool), infos=[info, fast])
>>> r(b).round(3).tolist()
[1.0, 0.5]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from scipy.signal import savgol_coeffs

from robo_reward.protocol import Reward, RewardOutput, TransitionBatch

COMFORT_LIMITS: dict[str, tuple[float, float]] = {
    "lon_accel": (-4.05, 2.40), "lat_accel": (-4.89, 4.89), "jerk": (-8.37, 8.37), "lon_jerk": (-4.13, 4.13),
    "yaw_rate": (-0.95, 0.95), "yaw_accel": (-1.93, 1.93),
}
"""nuPlan's comfort limits (m/s^2, m/s^3, rad/s, rad/s^2)."""
FACTORS = ("route_lanes", "speed", "ttc", "comfort", "lane_centre", "action_change")
"""CaRL's soft factors, each reported as ``reward/carl/<factor>``."""


REQUIRED = ("route_completion", "speed", "speed_limit")
OPTIONAL = {"yaw": 0.0, "lane_offset": 0.0, "in_junction": 0.0, "outside_route_lanes": 0.0, "ttc_violation": 0.0}


def info_table(infos: Sequence[Mapping[str, Any]], extra: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """The step infos CaRL reads as one float array per key (one pass over the rows); ``extra`` keys
    (infraction flags) default to 0 where an env does not report them."""
    first = infos[0]
    missing = [k for k in REQUIRED if k not in first]
    if missing:
        raise KeyError(f"CaRL needs info{missing} from the env on every step; the env's info has {sorted(first)}. "
                       "Use a driving env from robo_reward.envs.driving or add the keys")
    keys = (*REQUIRED, *OPTIONAL, *extra)
    defaults = (*(None for _ in REQUIRED), *OPTIONAL.values(), *(0.0 for _ in extra))
    rows = [[info.get(k, d) for k, d in zip(keys, defaults, strict=True)] for info in infos]
    table = np.array(rows, dtype=np.float64).T
    return dict(zip(keys, table, strict=True))


class RouteProgress:
    """Route completion (percent) per env and the step's increment ``delta`` (best completion so far)."""

    def __init__(self, num_envs: int) -> None:
        self.best = np.zeros(num_envs)

    def reset(self, env_mask: np.ndarray) -> None:
        self.best[env_mask] = 0.0

    def delta(self, completion: np.ndarray, env_ids: np.ndarray | slice) -> np.ndarray:
        old = self.best[env_ids].copy()
        new = np.maximum(old, np.minimum(completion, 100.0))
        self.best[env_ids] = new
        return new - old


class InfractionMonitor:
    """The soft-penalty state of CaRL per env: TTC and comfort holds, the lane-centre counter, the comfort
    history and the previous action; :meth:`observe` updates it and returns each factor in [0, 1].

    Holds are kept as the frame number until which they last, so a step costs no per-hold countdown.

    :param num_envs: envs to track. :param ttc_hold: steps a TTC violation keeps halving progress.
    :param comfort_hold: steps a comfort violation stays active. :param comfort_window: smoothing window (frames).
    :param lane_offset_m: lane-centre distance counted as off-centre. :param lane_frames: off-centre frames
        tolerated before the lane factor halves progress. :param overspeed_scale: overspeed (m/s) that zeroes
        progress. :param action_change: threshold of the optional action-change penalty (None: off).
    """

    def __init__(self, num_envs: int, *, ttc_hold: int = 500, comfort_hold: int = 500, comfort_window: int = 15,
                 lane_offset_m: float = 0.5, lane_frames: int = 30, overspeed_scale: float = 2.23,
                 action_change: float | None = None, action_dim: int = 2) -> None:
        if ttc_hold < 1 or comfort_hold < 1 or lane_frames < 0 or comfort_window < 5 or overspeed_scale <= 0:
            raise ValueError("need ttc_hold >= 1, comfort_hold >= 1, lane_frames >= 0, comfort_window >= 5 and "
                             f"overspeed_scale > 0; got {ttc_hold}, {comfort_hold}, {lane_frames}, {comfort_window}, "
                             f"{overspeed_scale}")
        self.ttc_hold, self.comfort_hold, self.window = int(ttc_hold), int(comfort_hold), int(comfort_window)
        self.lane_offset_m, self.lane_frames = float(lane_offset_m), int(lane_frames)
        self.overspeed_scale, self.action_change = float(overspeed_scale), action_change
        self.num_envs = int(num_envs)
        self.frames = np.zeros(num_envs, dtype=np.int64)
        self.ttc_until = np.zeros(num_envs, dtype=np.int64)
        self.comfort_until = np.zeros((num_envs, len(COMFORT_LIMITS)), dtype=np.int64)
        self.lane_counter = np.zeros(num_envs, dtype=np.int64)
        self.history = np.zeros((num_envs, self.window, 2))  # (speed, yaw), oldest first
        self.prev_action = np.zeros((num_envs, action_dim))
        self._coeffs: dict[float, np.ndarray] = {}
        lo, hi = zip(*COMFORT_LIMITS.values(), strict=True)
        self._low, self._high = np.array(lo), np.array(hi)

    def reset(self, env_mask: np.ndarray) -> None:
        for state in (self.frames, self.ttc_until, self.comfort_until, self.lane_counter):
            state[env_mask] = 0

    def _savgol(self, dt: float) -> np.ndarray:
        """(window, 3) coefficients: smoothed value, first and second derivative at the newest frame."""
        if dt not in self._coeffs:
            self._coeffs[dt] = np.stack([savgol_coeffs(self.window, 2, deriv=k, delta=dt, pos=self.window - 1,
                                                       use="dot") for k in range(3)], axis=1)
        return self._coeffs[dt]

    def comfort_violations(self, speed: np.ndarray, yaw: np.ndarray, dt: float, frames: np.ndarray,
                           env_ids: np.ndarray | slice) -> np.ndarray:
        """Push the newest frame and return which of the six metrics it violates (False until the window fills);
        ``frames`` counts this episode's steps including this one."""
        hist = self.history[env_ids]
        hist[:, :-1] = hist[:, 1:]
        hist[:, -1, 0], hist[:, -1, 1] = speed, yaw
        fresh = frames == 1
        if fresh.any():
            hist[fresh] = hist[fresh, -1:, :]
        if isinstance(env_ids, np.ndarray):
            self.history[env_ids] = hist
        (v, _), (dv, w), (ddv, dw) = np.einsum("nwc,wk->kcn", hist, self._savgol(dt))
        metrics = np.stack([dv, v * w, np.hypot(ddv, dv * w + v * dw), ddv, w, dw], axis=1)
        bad = (metrics < self._low) | (metrics > self._high)
        bad &= (frames >= self.window)[:, None]
        return bad

    def observe(self, info: Mapping[str, np.ndarray], action: np.ndarray, env_ids: np.ndarray | slice,
                dt: float) -> dict[str, np.ndarray]:
        """Update the state with one step per row (``info``: :func:`info_table`) and return each soft factor
        (and the compliance flags of the nuPlan variant) per row."""
        frames = self.frames[env_ids] + 1
        self.frames[env_ids] = frames
        ttc_until = np.where(info["ttc_violation"] > 0, frames + self.ttc_hold, self.ttc_until[env_ids])
        self.ttc_until[env_ids] = ttc_until
        ttc_active = frames < ttc_until

        bad = self.comfort_violations(info["speed"], info["yaw"], dt, frames, env_ids)
        comfort_until = np.where(bad, (frames + self.comfort_hold)[:, None], self.comfort_until[env_ids])
        self.comfort_until[env_ids] = comfort_until
        comfort_active = (frames[:, None] < comfort_until).sum(axis=1)

        off_centre = (info["lane_offset"] > self.lane_offset_m) & (info["in_junction"] <= 0)
        counter = self.lane_counter[env_ids]
        counter = np.where(off_centre, np.minimum(counter + 1, self.lane_frames + 1), np.maximum(counter - 1, 0))
        self.lane_counter[env_ids] = counter

        overspeed = np.maximum(info["speed"] - info["speed_limit"], 0.0)
        factors = {
            "route_lanes": (info["outside_route_lanes"] <= 0).astype(np.float64),
            "speed": np.maximum(0.0, 1.0 - overspeed / self.overspeed_scale),
            "ttc": 1.0 - 0.5 * ttc_active,
            "comfort": 1.0 - (0.5 / len(COMFORT_LIMITS)) * comfort_active,
            "lane_centre": 1.0 - 0.5 * (counter > self.lane_frames),
        }
        if self.action_change is not None:
            a = np.asarray(action, dtype=np.float64).reshape(len(frames), -1)
            changed = np.abs(a - self.prev_action[env_ids]).max(axis=1) > self.action_change
            factors["action_change"] = 1.0 - 0.5 * (changed & (frames > 1))
            self.prev_action[env_ids] = a
        factors.update(ttc_compliant=(~ttc_active).astype(np.float64),
                       speed_compliant=(overspeed <= 0.0).astype(np.float64),
                       comfort_compliant=(comfort_active == 0).astype(np.float64))
        return factors

    def state_dict(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k).copy() for k in STATE_KEYS}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        for k, v in state.items():
            if k not in STATE_KEYS or getattr(self, k).shape != np.shape(v):
                raise ValueError(f"CaRL state {k!r} (shape {np.shape(v)}) does not fit this reward (state "
                                 f"{STATE_KEYS} for {self.num_envs} envs); load it into a reward bound to as many envs")
            getattr(self, k)[...] = v


STATE_KEYS = ("frames", "ttc_until", "comfort_until", "lane_counter", "history", "prev_action")


class CarlReward(Reward):
    """CaRL's reward (see the module docstring), batched over envs.

    :param variant: ``"single"`` (the paper's CARLA reward) or ``"nuplan"`` (the weighted nuPlan-style one).
    :param ttc_hold: steps a TTC violation halves progress (paper: 500 ticks at 10 Hz).
    :param comfort_hold: steps a comfort violation stays active (paper: 500).
    :param comfort_window: frames of the Savitzky-Golay comfort history (paper: 15).
    :param lane_offset_m: lane-centre distance that counts as off-centre (paper: 0.5 m).
    :param lane_frames: off-centre frames tolerated (paper: 30, i.e. 3 s at 10 Hz).
    :param overspeed_scale: overspeed in m/s that zeroes progress (paper: 2.23).
    :param hint: termination hint subtracted on a hint infraction (paper: 1.0, one point of completion).
    :param hint_infractions: info flags that earn the hint (paper: collision, red light; optionally too close).
    :param action_change: threshold of the optional action-change penalty (paper: 0.25 when on; None: off).
    :param episode_steps: the nuPlan variant's compliant term is ``100 / episode_steps`` (paper: 2000).
    """

    name = "carl"
    stateless = False
    needs_infos = True

    def __init__(self, *, variant: Literal["single", "nuplan"] = "single", ttc_hold: int = 500,
                 comfort_hold: int = 500, comfort_window: int = 15, lane_offset_m: float = 0.5, lane_frames: int = 30,
                 overspeed_scale: float = 2.23, hint: float = 1.0,
                 hint_infractions: Sequence[str] = ("collision", "red_light"), action_change: float | None = None,
                 episode_steps: int = 2000, label: str | None = None) -> None:
        if variant not in ("single", "nuplan"):
            raise ValueError(f"variant must be 'single' (CARLA) or 'nuplan' (weighted), got {variant!r}")
        if episode_steps < 1 or hint < 0:
            raise ValueError(f"episode_steps must be >= 1 and hint >= 0, got {episode_steps} and {hint}")
        self.variant, self.hint, self.hint_infractions = variant, float(hint), tuple(hint_infractions)
        self.episode_steps = int(episode_steps)
        self._monitor_kwargs = dict(ttc_hold=ttc_hold, comfort_hold=comfort_hold, comfort_window=comfort_window,
                                    lane_offset_m=lane_offset_m, lane_frames=lane_frames,
                                    overspeed_scale=overspeed_scale, action_change=action_change)
        InfractionMonitor(1, **self._monitor_kwargs)  # type: ignore[arg-type]  # validates the arguments now
        self.name = label or self.name

    def bind(self, observation_space: gym.Space, action_space: gym.Space, num_envs: int) -> None:
        super().bind(observation_space, action_space, num_envs)
        dim = int(np.prod(action_space.shape)) if action_space.shape else 1
        self.progress = RouteProgress(num_envs)
        self.monitor = InfractionMonitor(num_envs, action_dim=dim, **self._monitor_kwargs)  # type: ignore[arg-type]

    def reset(self, obs: Any, env_mask: np.ndarray) -> None:
        self.progress.reset(env_mask)
        self.monitor.reset(env_mask)

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        return self.evaluate(batch).total

    def evaluate(self, batch: TransitionBatch) -> RewardOutput:
        if not batch.infos:
            raise ValueError("CaRL reads the env's step infos (route completion, speed, infractions); the batch has "
                             "none. Use it through RewardVecEnvWrapper/RewardWrapper, not a replay buffer")
        full = len(batch.env_ids) == self.num_envs and np.array_equal(batch.env_ids, np.arange(self.num_envs))
        ids: np.ndarray | slice = slice(None) if full else batch.env_ids
        info = info_table(batch.infos, self.hint_infractions)
        dt = float(batch.infos[0].get("dt", 0.1))
        delta = self.progress.delta(info["route_completion"], ids)
        f = self.monitor.observe(info, batch.action, ids, dt)
        hinted = np.zeros(batch.num, dtype=bool)
        for key in self.hint_infractions:
            hinted |= info[key] > 0
        hint = -self.hint * hinted
        on_route = delta * f["route_lanes"]
        if self.variant == "nuplan":
            unit = 100.0 / self.episode_steps
            total = (5 * on_route + unit * (5 * f["ttc_compliant"] + 4 * f["speed_compliant"]
                                            + 2 * f["comfort_compliant"])) / 16 + hint
        else:
            factor = f["speed"] * f["ttc"] * f["comfort"] * f["lane_centre"]
            if "action_change" in f:
                factor = factor * f["action_change"]
            total = on_route * factor + hint
        terms = {self.name: total, f"{self.name}/progress": delta, f"{self.name}/hint": hint}
        terms.update({f"{self.name}/{k}": f[k] for k in FACTORS if k in f})
        return RewardOutput(total, terms)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.progress.best.copy(), "monitor": self.monitor.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if set(state) - {"best", "monitor"}:
            raise ValueError(f"CaRL state has unknown entries {sorted(set(state) - {'best', 'monitor'})}")
        if "best" in state:
            self.progress.best[...] = state["best"]
        self.monitor.load_state_dict(state.get("monitor", {}))
