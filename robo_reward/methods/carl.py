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

Cost: the reward is one compiled (numba) loop over the batch's rows that updates the per-env state in place and
writes every term, after one ``itemgetter`` per env reads the infos into a table. At 8 envs it costs 2.1% of
this package's driving-env step; the numpy version it replaces (~35 calls on ``n``-row arrays, dominated by
their fixed dispatch cost) cost 10.2%, with the same values to 1e-12 (``benchmarks/carl/NOTE.md``, "Speed").

Small-scale departures (reconstruction): route completion is the best completion so far (CARLA's never
decreases), so ``delta >= 0``; comfort metrics are evaluated at the newest frame of the smoothed window (nuPlan
scores whole trajectories) and only once the window is full; jerk magnitude is that of the body-frame
acceleration ``(a_lon, v * yaw_rate)``; the minimum-speed option is not built. The spec's ``RouteProgress`` and
``InfractionMonitor`` are one :class:`CarlState` and one compiled step here: the per-factor numpy version was
dominated by fixed per-call dispatch.

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

import math
import operator
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any, Literal

import gymnasium as gym
import numba
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
    lack a key the first row had fall back to a per-key read with the defaults. The values go straight from the
    getters into the array (``np.fromiter``), with no list of tuples between.

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
        self._width = len(present)
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
            flat = chain.from_iterable(map(self._getter, infos))
            rows = np.fromiter(flat, np.float64, count=len(infos) * self._width).reshape(len(infos), self._width)
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


OUT = ("total", "progress", "hint", *FACTORS)
"""Rows of the kernel's output: the reward, ``delta``, the hint and each factor."""
STATE_KEYS = ("frames", "ttc_until", "comfort_until", "lane_counter", "history", "prev_action")
"""What :meth:`CarlState.state_dict` saves (comfort holds in :data:`COMFORT_LIMITS` order, history as
``(n, window, 2)`` speed and yaw, oldest frame first)."""


def _jit(fn: Any) -> Any:
    """``numba.njit``, cached on disk where the package or the user cache (``NUMBA_CACHE_DIR``) is writable, else
    compiled once per process."""
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:
        return numba.njit(nogil=True)(fn)


@_jit
def _carl_step(table: np.ndarray, action: np.ndarray, ids: np.ndarray, coeffs: np.ndarray, low: np.ndarray,
               high: np.ndarray, holds: np.ndarray, lane_offset_m: float, lane_frames: int, overspeed_scale: float,
               action_change: float, hint: float, nuplan_unit: float, best: np.ndarray, frames: np.ndarray,
               until: np.ndarray, lane_counter: np.ndarray, hist: np.ndarray, prev_action: np.ndarray,
               out: np.ndarray) -> None:  # pragma: no cover  (compiled; covered through CarlReward)
    """One CaRL step for each row of ``table`` into ``out``, updating the per-env state in place; rows of one env
    are taken in order, as its consecutive steps (the per-env time order of ``TransitionBatch.concat``). A row with
    a non-finite input (a speed limit may be +inf) gets NaN everywhere and leaves its env's state untouched, so the
    evaluator's finiteness check names the term.

    :param table: :class:`InfoReader`'s ``(rows, 8 + hints)`` table. :param action: ``(rows, dim)`` actions (read
        only when ``action_change >= 0``). :param ids: each row's env. :param coeffs: :meth:`CarlReward._savgol`'s
        ``(3, window)`` weights. :param low: comfort lower limits. :param high: comfort upper limits.
    :param holds: hold lengths (six comfort metrics, then TTC). :param lane_offset_m: off-centre distance.
    :param lane_frames: off-centre frames tolerated. :param overspeed_scale: overspeed that zeroes progress.
    :param action_change: the action-change threshold, < 0 when off. :param hint: the termination hint.
    :param nuplan_unit: ``100 / episode_steps`` for the nuPlan variant, 0 for CaRL's single reward.
    :param best: per-env best completion. :param frames: per-env step count. :param until: per-env hold ends.
    :param lane_counter: per-env off-centre counter. :param hist: per-env ``(2, window)`` speed/yaw history.
    :param prev_action: per-env previous action. :param out: :data:`OUT` rows x batch rows, written here.
    """
    window = hist.shape[2]
    n_cols = table.shape[1]
    n_hints = n_cols - TTC - 1
    for r in range(table.shape[0]):
        e = ids[r]
        if e < 0 or e >= best.shape[0]:
            raise IndexError("CaRL: a batch row's env id is outside the envs this reward is bound to")
        finite = True
        for k in range(n_cols):
            x = table[r, k]
            if not np.isfinite(x) and not (k == LIMIT and x == np.inf):
                finite = False
        if action_change >= 0.0:
            for k in range(action.shape[1]):
                finite = finite and np.isfinite(action[r, k])
        if not finite:
            out[:, r] = np.nan
            continue
        rc, speed, limit, yaw = table[r, RC], table[r, SPEED], table[r, LIMIT], table[r, YAW]
        new = max(best[e], min(rc, 100.0))
        delta = new - best[e]
        best[e] = new
        frames[e] += 1
        f = frames[e]
        if f == 1:
            hist[e, 0, :] = speed
            hist[e, 1, :] = yaw
        else:
            for k in range(window - 1):
                hist[e, 0, k] = hist[e, 0, k + 1]
                hist[e, 1, k] = hist[e, 1, k + 1]
            hist[e, 0, window - 1] = speed
            hist[e, 1, window - 1] = yaw
        comfort_active = 0
        if f >= window:
            v = dv = ddv = w = dw = 0.0
            for k in range(window):
                s, y = hist[e, 0, k], hist[e, 1, k]
                v += coeffs[0, k] * s
                dv += coeffs[1, k] * s
                ddv += coeffs[2, k] * s
                w += coeffs[1, k] * y
                dw += coeffs[2, k] * y
            lat_jerk = dv * w + v * dw
            metrics = (dv, v * w, np.sqrt(ddv * ddv + lat_jerk * lat_jerk), ddv, w, dw)
            for k in range(6):
                if metrics[k] < low[k] or metrics[k] > high[k]:
                    until[e, k] = f + holds[k]
        for k in range(6):
            if f < until[e, k]:
                comfort_active += 1
        if table[r, TTC] > 0.0:
            until[e, 6] = f + holds[6]
        ttc_active = f < until[e, 6]
        counter = lane_counter[e]
        counter += 1 if table[r, LANE] > lane_offset_m and table[r, JUNCTION] <= 0.0 else -1
        counter = min(max(counter, 0), lane_frames + 1)
        lane_counter[e] = counter
        hinted = False
        for k in range(n_hints):
            hinted = hinted or table[r, TTC + 1 + k] > 0.0
        on_route = delta if table[r, OUTSIDE] <= 0.0 else 0.0
        overspeed = max(speed - limit, 0.0)
        speed_f = max(0.0, 1.0 - overspeed / overspeed_scale)
        ttc_f = 0.5 if ttc_active else 1.0
        comfort_f = 1.0 - 0.5 / 6.0 * comfort_active
        lane_f = 0.5 if counter > lane_frames else 1.0
        out[1, r], out[2, r] = delta, -hint if hinted else 0.0
        out[3, r] = 1.0 if table[r, OUTSIDE] <= 0.0 else 0.0
        out[4, r], out[5, r], out[6, r], out[7, r] = speed_f, ttc_f, comfort_f, lane_f
        product = speed_f * ttc_f * comfort_f * lane_f
        if action_change >= 0.0:
            changed = False
            for k in range(action.shape[1]):
                changed = changed or abs(action[r, k] - prev_action[e, k]) > action_change
                prev_action[e, k] = action[r, k]
            out[8, r] = 0.5 if changed and f > 1 else 1.0
            product *= out[8, r]
        if nuplan_unit > 0.0:
            compliant = 5.0 * (not ttc_active) + 4.0 * (overspeed <= 0.0) + 2.0 * (comfort_active == 0)
            out[0, r] = (5.0 * on_route + nuplan_unit * compliant) / 16.0 + out[2, r]
        else:
            out[0, r] = on_route * product + out[2, r]


class CarlState:
    """CaRL's per-env state: best route completion, frame count, holds (six comfort metrics and TTC, each the
    frame until which it lasts, so a step costs no countdown), lane-centre counter, comfort history and the
    previous action. :meth:`state_dict` holds all but ``best``, which :class:`CarlReward` saves beside it (the
    layout of checkpoints written before the kernel).

    :param num_envs: envs to track.
    :param window: comfort history length.
    :param action_dim: flat action size.
    """

    def __init__(self, num_envs: int, window: int, action_dim: int) -> None:
        self.num_envs = int(num_envs)
        self.best = np.zeros(num_envs)
        self.frames = np.zeros(num_envs, dtype=np.int64)
        self.until = np.zeros((num_envs, 7), dtype=np.int64)
        self.lane_counter = np.zeros(num_envs, dtype=np.int64)
        self.hist = np.zeros((num_envs, 2, window))
        self.prev_action = np.zeros((num_envs, action_dim))

    def reset(self, env_mask: np.ndarray) -> None:
        """Start a new episode in the masked envs (the history refills from their first frame)."""
        for state in (self.best, self.frames, self.until, self.lane_counter):
            state[env_mask] = 0

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the state but ``best``, keyed by :data:`STATE_KEYS`."""
        return {"frames": self.frames.copy(), "ttc_until": self.until[:, 6].copy(),
                "comfort_until": self.until[:, :6].copy(), "lane_counter": self.lane_counter.copy(),
                "history": self.hist.transpose(0, 2, 1).copy(), "prev_action": self.prev_action.copy()}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Load :meth:`state_dict`'s entries (any subset), in place; a key or shape that does not fit is an
        error."""
        current = self.state_dict()
        for k, v in state.items():
            if k not in STATE_KEYS or current[k].shape != np.shape(v):
                raise ValueError(f"CaRL state {k!r} (shape {np.shape(v)}) does not fit this reward (state "
                                 f"{STATE_KEYS} for {self.num_envs} envs); load it into a reward bound to as many envs")
        for k, v in state.items():
            if k == "ttc_until":
                self.until[:, 6] = v
            elif k == "comfort_until":
                self.until[:, :6] = v
            elif k == "history":
                self.hist[...] = np.asarray(v).transpose(0, 2, 1)
            else:
                getattr(self, k)[...] = v


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
        if ttc_hold < 1 or comfort_hold < 1 or lane_frames < 0 or comfort_window < 5 or overspeed_scale <= 0:
            raise ValueError("need ttc_hold >= 1, comfort_hold >= 1, lane_frames >= 0, comfort_window >= 5 and "
                             f"overspeed_scale > 0; got {ttc_hold}, {comfort_hold}, {lane_frames}, {comfort_window}, "
                             f"{overspeed_scale}")
        if action_change is not None and action_change < 0:
            raise ValueError(f"action_change must be >= 0 (or None: off), got {action_change}")
        self.window, self.lane_offset_m, self.lane_frames = int(comfort_window), float(lane_offset_m), int(lane_frames)
        self.overspeed_scale, self.action_change = float(overspeed_scale), action_change
        self._holds = np.array([comfort_hold] * len(COMFORT_LIMITS) + [ttc_hold], dtype=np.int64)
        self._low = np.array([lo for lo, _ in COMFORT_LIMITS.values()])
        self._high = np.array([hi for _, hi in COMFORT_LIMITS.values()])
        self._coeffs: dict[float, np.ndarray] = {}
        self.name = label or self.name

    def bind(self, observation_space: gym.Space, action_space: gym.Space, num_envs: int) -> None:
        super().bind(observation_space, action_space, num_envs)
        dim = int(np.prod(action_space.shape)) if action_space.shape else 1
        self.state = CarlState(num_envs, self.window, dim)
        self.reader = InfoReader(self.hint_infractions)
        self._rows = len(OUT) if self.action_change is not None else len(OUT) - 1
        self._no_action = np.zeros((0, dim))
        self._keys = (self.name, *(f"{self.name}/{k}" for k in OUT[1:self._rows]))
        self._all_ids = np.arange(num_envs, dtype=np.int64)
        self._full_ids: np.ndarray | None = None
        st = self.state
        self._fixed = (self._low, self._high, self._holds, self.lane_offset_m, self.lane_frames, self.overspeed_scale,
                       -1.0 if self.action_change is None else float(self.action_change), self.hint,
                       100.0 / self.episode_steps if self.variant == "nuplan" else 0.0, st.best, st.frames, st.until,
                       st.lane_counter, st.hist, st.prev_action)

    def reset(self, obs: Any, env_mask: np.ndarray) -> None:
        self.state.reset(env_mask)

    def _savgol(self, dt: float) -> np.ndarray:
        """``(3, window)`` Savitzky-Golay (order 2) weights of the value and its first two derivatives at the
        newest frame of a history sampled every ``dt`` seconds."""
        if dt not in self._coeffs:
            if not (math.isfinite(dt) and dt > 0):
                raise ValueError(f"CaRL needs a finite info['dt'] > 0 (seconds per step); got {dt}")
            if len(self._coeffs) >= 64:
                self._coeffs.clear()
            w = self.state.hist.shape[2]
            self._coeffs[dt] = np.stack([savgol_coeffs(w, 2, deriv=k, delta=dt, pos=w - 1, use="dot")
                                         for k in range(3)])
        return self._coeffs[dt]

    def _env_ids(self, ids: np.ndarray, n: int) -> np.ndarray:
        """The batch's env ids as a writable int64 array, checked against the bound envs (once for the protocol's
        shared read-only ``arange`` of a full batch, for which this reward's own is handed back)."""
        if ids is self._full_ids:
            return self._all_ids
        if len(ids) != n:
            raise ValueError(f"CaRL got {n} infos for {len(ids)} transitions; pass one info per row")
        if ids.dtype.kind not in "iu" or (n and (ids.min() < 0 or ids.max() >= self.num_envs)):
            raise ValueError(f"CaRL is bound to {self.num_envs} envs; the batch's env_ids {ids.tolist()} are not "
                             f"integers in [0, {self.num_envs})")
        if n == self.num_envs and not ids.flags.writeable and np.array_equal(ids, self._all_ids):
            self._full_ids = ids
            return self._all_ids
        return np.array(ids, dtype=np.int64)

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        return self.evaluate(batch).total

    def evaluate(self, batch: TransitionBatch) -> RewardOutput:
        if not batch.infos:
            raise ValueError("CaRL reads the env's step infos (route completion, speed, infractions); the batch has "
                             "none. Use it through RewardVecEnvWrapper/RewardWrapper, not a replay buffer")
        table = self.reader(batch.infos)
        n = len(table)
        ids = self._env_ids(batch.env_ids, n)
        action = self._no_action
        if self._rows == len(OUT):
            action = np.array(batch.action, dtype=np.float64).reshape(n, -1)
            if action.shape[1] != self.state.prev_action.shape[1]:
                raise ValueError(f"CaRL's action-change penalty was bound to {self.state.prev_action.shape[1]} action "
                                 f"dims; the batch has {action.shape[1]}")
        out = np.empty((self._rows, n))
        _carl_step(table, action, ids, self._savgol(float(batch.infos[0].get("dt", 0.1))), *self._fixed, out)
        return RewardOutput(out[0], dict(zip(self._keys, out, strict=True)))

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.state.best.copy(), "monitor": self.state.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if set(state) - {"best", "monitor"}:
            raise ValueError(f"CaRL state has unknown entries {sorted(set(state) - {'best', 'monitor'})}")
        if "best" in state:
            self.state.best[...] = state["best"]
        self.state.load_state_dict(state.get("monitor", {}))
