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

Cost: one batched call is ~35 numpy calls on ``n``-row arrays (~39 us for 8 envs on the 2-core CPU used here,
nearly independent of ``n`` up to tens of envs) plus one ``itemgetter`` per env to read the infos; the per-factor
state is preallocated and updated in place (``benchmarks/carl/NOTE.md``, "Speed").

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

import operator
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


REQUIRED = ("route_completion", "speed_limit", "speed")
OPTIONAL = {"yaw": 0.0, "lane_offset": 0.0, "in_junction": 0.0, "outside_route_lanes": 0.0, "ttc_violation": 0.0}
RC, LIMIT, SPEED, YAW, LANE, JUNCTION, OUTSIDE, TTC = range(8)
"""Columns of :class:`InfoReader`'s table (hint flags follow from column 8 on)."""


class InfoReader:
    """Reads the step infos CaRL needs into one ``(n, 8 + hints)`` float table (columns :data:`RC` ...
    :data:`TTC`, then the hint flags the env reports).

    The keys an env reports are found on the first call (and again when a missing one appears); each call then
    costs one C-level ``itemgetter`` per info and one array conversion. Optional keys the env never reports
    keep their defaults (:data:`OPTIONAL`); hint flags it never reports are left out (they are 0). Rows that
    lack a key the first row had fall back to a per-key read with the defaults.

    :param hints: info flags that earn the termination hint.
    """

    def __init__(self, hints: Sequence[str] = ()) -> None:
        self.hints = tuple(hints)
        self.core = (*REQUIRED, *OPTIONAL)
        self._getter: Any = None
        self._absent: tuple[str, ...] = ()
        self._template: np.ndarray | None = None
        self._cols: list[int] = []
        self.hint_keys: tuple[str, ...] = ()

    def _build(self, first: Mapping[str, Any]) -> None:
        missing = [k for k in REQUIRED if k not in first]
        if missing:
            raise KeyError(f"CaRL needs info{missing} from the env on every step; the env's info has "
                           f"{sorted(first)}. Use a driving env from robo_reward.envs.driving or add the keys")
        self.hint_keys = tuple(k for k in self.hints if k in first)
        present = [k for k in self.core if k in first] + list(self.hint_keys)
        self._absent = tuple(k for k in (*self.core, *self.hints) if k not in first)
        self._getter = operator.itemgetter(*present)
        self._cols = [i for i, k in enumerate(self.core) if k in first] + list(
            range(len(self.core), len(self.core) + len(self.hint_keys)))
        full = len(self._cols) == len(self.core) + len(self.hint_keys)
        self._template = None if full else np.array(
            [0.0, 0.0, 0.0, *OPTIONAL.values(), *(0.0 for _ in self.hint_keys)])

    def __call__(self, infos: Sequence[Mapping[str, Any]]) -> np.ndarray:
        first = infos[0]
        if self._getter is None:
            self._build(first)
        for k in self._absent:
            if k in first:
                self._build(first)
                break
        try:
            rows = np.array(list(map(self._getter, infos)), dtype=np.float64)
        except KeyError:
            return self._slow(infos)
        if self._template is None:
            return rows
        table = np.repeat(self._template[None], len(infos), axis=0)
        table[:, self._cols] = rows
        return table

    def _slow(self, infos: Sequence[Mapping[str, Any]]) -> np.ndarray:
        keys = (*self.core, *self.hint_keys)
        defaults = (*(None for _ in REQUIRED), *OPTIONAL.values(), *(0.0 for _ in self.hint_keys))
        rows = [[info.get(k, d) for k, d in zip(keys, defaults, strict=True)] for info in infos]
        return np.array(rows, dtype=np.float64)


class RouteProgress:
    """Route completion (percent) per env and the step's increment ``delta`` (best completion so far)."""

    def __init__(self, num_envs: int) -> None:
        self.best = np.zeros(num_envs)

    def reset(self, env_mask: np.ndarray) -> None:
        self.best[env_mask] = 0.0

    def delta(self, completion: np.ndarray, env_ids: np.ndarray | slice) -> np.ndarray:
        old = self.best[env_ids]
        new = np.minimum(completion, 100.0)
        np.maximum(old, new, out=new)
        delta = new - old
        self.best[env_ids] = new
        return delta


COMFORT_COLS = (0, 9, 10, 6, 3, 4)
"""Columns of :data:`COMFORT_LIMITS`' metrics (in that order) in the monitor's per-step metric table; column 11
is the TTC flag and the others are intermediate values that never count as violations."""
_NO = np.inf


class _Scratch:
    """Work arrays of one batch size, reused across calls (nothing here is handed out)."""

    def __init__(self, n: int) -> None:
        self.metrics = np.zeros((n, 12))
        m = self.metrics
        self.lin, self.left, self.right, self.products = m[:, :7], m[:, 0:3], m[:, 3:6], m[:, 7:10]
        self.ddv, self.jerk_inner, self.v_dw, self.jerk, self.ttc = m[:, 6], m[:, 7], m[:, 8], m[:, 10], m[:, 11]
        self.bad = np.zeros((n, 12), dtype=bool)
        self.bad_hi = np.zeros((n, 12), dtype=bool)
        self.bad_comfort = self.bad[:, :11]
        self.active = np.zeros((n, 12), dtype=bool)
        self.active_comfort, self.active_ttc = self.active[:, :11], self.active[:, 11]
        self.until_new = np.zeros((n, 12), dtype=np.int64)
        self.counts = np.zeros((n, 3), dtype=np.int64)
        self.c_ttc, self.c_comfort, self.c_lane = (self.counts[:, k] for k in range(3))


class InfractionMonitor:
    """The soft-penalty state of CaRL per env: TTC and comfort holds, the lane-centre counter, the comfort
    history and the previous action; :meth:`observe` updates it and returns each factor in [0, 1].

    Holds are kept as the frame number until which they last, so a step costs no per-hold countdown. The six
    comfort metrics, the intermediate values they are made of and the TTC flag sit side by side in one
    ``(n, 12)`` table (:data:`COMFORT_COLS`; limits of +-inf on the intermediates), so one comparison finds every
    violation and one ``copyto`` starts every hold; the state lives in preallocated arrays that a full batch
    updates in place.

    :param num_envs: envs to track. :param ttc_hold: steps a TTC violation keeps halving progress.
    :param comfort_hold: steps a comfort violation stays active. :param comfort_window: smoothing window (frames).
    :param lane_offset_m: lane-centre distance counted as off-centre. :param lane_frames: off-centre frames
        tolerated before the lane factor halves progress. :param overspeed_scale: overspeed (m/s) that zeroes
        progress. :param action_change: threshold of the optional action-change penalty (None: off).
    :param action_dim: size of the flat action (for the action-change penalty).
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
        self.until = np.zeros((num_envs, 12), dtype=np.int64)
        self.lane_counter = np.zeros(num_envs, dtype=np.int64)
        self.hist = np.zeros((num_envs, 2, self.window))  # (speed, yaw) x frames, oldest first
        self.prev_action = np.zeros((num_envs, action_dim))
        self.holds = np.full(12, self.comfort_hold, dtype=np.int64)
        self.holds[11] = self.ttc_hold
        self.scales = np.array([0.5, 0.5 / len(COMFORT_LIMITS), 0.5])
        self._low, self._high = np.full(12, -_NO), np.full(12, _NO)
        for col, (lo, hi) in zip(COMFORT_COLS, COMFORT_LIMITS.values(), strict=True):
            self._low[col], self._high[col] = lo, hi
        self._high[11] = 0.0
        self._coeffs: dict[float, np.ndarray] = {}
        self._scratch: dict[int, _Scratch] = {}
        self._fresh = True  # some env may be on its first frame (its history still to fill)
        self._warm = 0  # every env has at least this many frames (full-batch steps since the last reset)

    @property
    def ttc_until(self) -> np.ndarray:
        """Frame until which each env's TTC hold lasts (a copy)."""
        return self.until[:, 11].copy()

    @property
    def comfort_until(self) -> np.ndarray:
        """Frame until which each env's comfort holds last, in :data:`COMFORT_LIMITS` order (a copy)."""
        return self.until[:, list(COMFORT_COLS)]

    @property
    def history(self) -> np.ndarray:
        """The comfort history as ``(n, window, 2)`` (speed, yaw), oldest frame first (a copy)."""
        return self.hist.transpose(0, 2, 1).copy()

    def reset(self, env_mask: np.ndarray) -> None:
        for state in (self.frames, self.until, self.lane_counter):
            state[env_mask] = 0
        self._fresh, self._warm = True, 0

    def _savgol(self, dt: float) -> np.ndarray:
        """``(2 * window, 7)`` map from the flat history to the first 7 metric columns (lon accel, speed, speed,
        yaw rate, yaw accel, yaw rate, lon jerk) at the newest frame: Savitzky-Golay (order 2) smoothing and
        derivatives of speed and yaw."""
        if dt not in self._coeffs:
            w = self.window
            v, dv, ddv = (savgol_coeffs(w, 2, deriv=k, delta=dt, pos=w - 1, use="dot") for k in range(3))
            m = np.zeros((2 * w, 7))
            m[:w, 0], m[:w, 1], m[:w, 2], m[:w, 6] = dv, v, v, ddv
            m[w:, 3], m[w:, 4], m[w:, 5] = dv, ddv, dv
            self._coeffs[dt] = m
        return self._coeffs[dt]

    def _buffers(self, n: int) -> _Scratch:
        if n not in self._scratch:
            self._scratch[n] = _Scratch(n)
        return self._scratch[n]

    def comfort_metrics(self, speed_yaw: np.ndarray, dt: float, frames: np.ndarray,
                        env_ids: np.ndarray | slice) -> np.ndarray:
        """Push the newest frame (``speed_yaw``: ``(n, 2)``) and return the metric table at it (``(n, 12)``,
        :data:`COMFORT_COLS`; column 11 still to fill); ``frames`` counts this episode's steps including this one
        (an env on its first frame starts its history filled with that frame)."""
        full = isinstance(env_ids, slice)
        hist = self.hist[env_ids]
        hist[:, :, :-1] = hist[:, :, 1:]
        hist[:, :, -1] = speed_yaw
        if self._fresh:
            fresh = frames == 1
            if fresh.any():
                hist[fresh] = hist[fresh][:, :, -1:]
            if full:
                self._fresh = False
        if not full:
            self.hist[env_ids] = hist
        s = self._buffers(len(frames))
        np.matmul(hist.reshape(len(frames), -1), self._savgol(dt), out=s.lin)
        np.multiply(s.left, s.right, out=s.products)  # dv * w, v * dw, v * w (lateral acceleration)
        np.add(s.jerk_inner, s.v_dw, out=s.jerk_inner)
        np.hypot(s.ddv, s.jerk_inner, out=s.jerk)
        return s.metrics

    def observe(self, table: np.ndarray, action: np.ndarray, env_ids: np.ndarray | slice,
                dt: float) -> dict[str, np.ndarray]:
        """Update the state with one step per row (``table``: :class:`InfoReader`'s) and return ``factors``:
        ``route_lanes``, ``speed``, ``ttc``, ``comfort``, ``lane_centre`` (and ``action_change`` when on) as the
        columns of one fresh ``(n, 5)`` (or ``(n, 6)``) array; ``counts``: TTC active, comfort metrics active
        and lane factor on, per row; ``overspeed`` in m/s (the nuPlan variant's compliance flags)."""
        full = isinstance(env_ids, slice)
        n = len(table)
        s = self._buffers(n)
        frames = self.frames[env_ids]
        frames += 1
        if not full:
            self.frames[env_ids] = frames
        elif self._warm < self.window:
            self._warm += 1
        m = self.comfort_metrics(table[:, SPEED:YAW + 1], dt, frames, env_ids)
        s.ttc[:] = table[:, TTC]
        bad = s.bad
        np.less(m, self._low, out=bad)
        np.greater(m, self._high, out=s.bad_hi)
        bad |= s.bad_hi
        if not full or self._warm < self.window:
            s.bad_comfort &= (frames >= self.window)[:, None]
        fr = frames[:, None]
        until = self.until[env_ids]
        np.add(fr, self.holds, out=s.until_new)
        np.copyto(until, s.until_new, where=bad)
        if not full:
            self.until[env_ids] = until
        np.less(fr, until, out=s.active)

        counter = self.lane_counter[env_ids]
        off = (table[:, LANE] > self.lane_offset_m) & (table[:, JUNCTION] <= 0.0)
        counter += np.where(off, 1, -1)
        np.minimum(counter, self.lane_frames + 1, out=counter)
        np.maximum(counter, 0, out=counter)
        if not full:
            self.lane_counter[env_ids] = counter

        counts = s.counts
        s.c_ttc[:] = s.active_ttc
        np.add.reduce(s.active_comfort, axis=1, out=s.c_comfort)
        np.greater(counter, self.lane_frames, out=s.c_lane)

        factors = np.empty((n, 5 if self.action_change is None else 6))
        np.less_equal(table[:, OUTSIDE], 0.0, out=factors[:, 0])
        overspeed = table[:, SPEED] - table[:, LIMIT]
        np.maximum(overspeed, 0.0, out=overspeed)
        speed = np.divide(overspeed, self.overspeed_scale, out=factors[:, 1])
        np.subtract(1.0, speed, out=speed)
        np.maximum(0.0, speed, out=speed)
        hold = factors[:, 2:5]
        np.multiply(self.scales, counts, out=hold)
        np.subtract(1.0, hold, out=hold)
        if self.action_change is not None:
            a = np.asarray(action, dtype=np.float64).reshape(n, -1)
            changed = np.abs(a - self.prev_action[env_ids]).max(axis=1) > self.action_change
            factors[:, 5] = 1.0 - 0.5 * (changed & (frames > 1))
            self.prev_action[env_ids] = a
        return {"factors": factors, "counts": counts, "overspeed": overspeed}

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"frames": self.frames.copy(), "ttc_until": self.ttc_until, "comfort_until": self.comfort_until,
                "lane_counter": self.lane_counter.copy(), "history": self.history,
                "prev_action": self.prev_action.copy()}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        current = self.state_dict()
        for k, v in state.items():
            if k not in STATE_KEYS or current[k].shape != np.shape(v):
                raise ValueError(f"CaRL state {k!r} (shape {np.shape(v)}) does not fit this reward (state "
                                 f"{STATE_KEYS} for {self.num_envs} envs); load it into a reward bound to as many envs")
        for k, v in state.items():
            if k == "ttc_until":
                self.until[:, 11] = v
            elif k == "comfort_until":
                self.until[:, list(COMFORT_COLS)] = v
            elif k == "history":
                self.hist[...] = np.asarray(v).transpose(0, 2, 1)
            else:
                getattr(self, k)[...] = v
        self._fresh, self._warm = True, 0


STATE_KEYS = ("frames", "ttc_until", "comfort_until", "lane_counter", "history", "prev_action")
"""What :meth:`InfractionMonitor.state_dict` saves (comfort holds and history in :data:`COMFORT_LIMITS` order and
``(n, window, 2)``, as before the holds were fused)."""


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
        self.reader = InfoReader(self.hint_infractions)
        self._all_ids = np.arange(num_envs)
        self._full_ids: np.ndarray | None = None
        factors = FACTORS if self._monitor_kwargs["action_change"] is not None else FACTORS[:-1]
        self._keys = (self.name, f"{self.name}/progress", f"{self.name}/hint",
                      *(f"{self.name}/{k}" for k in factors))

    def reset(self, obs: Any, env_mask: np.ndarray) -> None:
        self.progress.reset(env_mask)
        self.monitor.reset(env_mask)

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        return self.evaluate(batch).total

    def evaluate(self, batch: TransitionBatch) -> RewardOutput:
        if not batch.infos:
            raise ValueError("CaRL reads the env's step infos (route completion, speed, infractions); the batch has "
                             "none. Use it through RewardVecEnvWrapper/RewardWrapper, not a replay buffer")
        ids = batch.env_ids
        env_ids: np.ndarray | slice = ids
        if ids is self._full_ids or (len(ids) == self.num_envs and np.array_equal(ids, self._all_ids)):
            self._full_ids, env_ids = ids, slice(None)
        table = self.reader(batch.infos)
        dt = float(batch.infos[0].get("dt", 0.1))
        delta = self.progress.delta(table[:, RC], env_ids)
        out = self.monitor.observe(table, batch.action, env_ids, dt)
        f, counts = out["factors"], out["counts"]
        hints = len(self.reader.hint_keys)
        hinted: np.ndarray = np.zeros(len(table), dtype=bool)
        if hints == 1:
            hinted = table[:, TTC + 1] > 0
        elif hints:
            hinted = np.logical_or.reduce(table[:, TTC + 1:] > 0, axis=1)
        hint = np.multiply(hinted, -self.hint)
        on_route = delta * f[:, 0]
        if self.variant == "nuplan":
            unit = 100.0 / self.episode_steps
            compliant = 5 * (counts[:, 0] == 0) + 4 * (out["overspeed"] <= 0.0) + 2 * (counts[:, 1] == 0)
            total = (5 * on_route + unit * compliant) / 16 + hint
        else:
            total = on_route * np.multiply.reduce(f[:, 1:], axis=1)
            total += hint
        terms = dict(zip(self._keys, (total, delta, hint, *f.T), strict=True))
        return RewardOutput(total, terms)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.progress.best.copy(), "monitor": self.monitor.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if set(state) - {"best", "monitor"}:
            raise ValueError(f"CaRL state has unknown entries {sorted(set(state) - {'best', 'monitor'})}")
        if "best" in state:
            self.progress.best[...] = state["best"]
        self.monitor.load_state_dict(state.get("monitor", {}))
