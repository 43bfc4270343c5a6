"""A kinematic-bicycle route-driving task in numpy: lanes, a route with a speed limit, traffic, infractions.

A small stand-in for the CARLA / nuPlan routes of CaRL (Jaeger et al. 2025). The road is a curved three-lane
road (two route lanes, one opposite lane) given by a piecewise-constant curvature profile; the ego is simulated
in the road's Frenet frame ``(s, d, psi)`` with a kinematic bicycle model at 10 Hz, the paper's simulator rate.
Same-direction traffic follows the Intelligent Driver Model (IDM, reacting to each other and to the ego);
oncoming traffic drives the opposite lane at constant speed.

Why not highway-env: ``highway-env==1.12.1`` resolves beside the pinned packages, but ``highway-fast-v0`` with
continuous actions measured ~59 ms of CPU per policy step here, while this env steps in ~0.1-0.15 ms
(``benchmarks/carl/NOTE.md``), which is what makes the 20-run minibatch benchmark fit on 2 shared CPU cores; and route completion, lane-relative offsets and the CaRL infractions come out of a Frenet model
directly. The geometry is a reconstruction: boxes are compared in Frenet coordinates (exact on a straight road,
a small error on the gentle curves used), and there are no junctions, traffic lights or stop signs.

Actions ``[-1, 1]^2``: steering (times ``max_steer``) and acceleration (positive: up to ``max_accel``,
negative: braking up to ``max_brake``). Observations: a flat kinematic vector (:data:`OBS_NAMES`).

Episode ends:

* **terminated** (hard infractions): ``collision`` with any vehicle, ``off_road`` (more than 95% of the ego's
  lateral extent outside the road), ``wrong_way`` (heading more than 90 degrees from the route), ``blocked``
  (standing still for ``blocked_s``), ``timeout`` (route not finished within ``timeout_s``, the paper's
  route timeout);
* **truncated**: the route is finished (route completion reaches 100%), as CaRL requires.

The env's own reward is the additive multi-term reward that CaRL compares against (:func:`additive_reward`).
Every step's ``info`` carries what a reward needs (``route_completion`` in percent, ``speed``,
``speed_limit``, ``yaw``, ``dt``, ``lane_offset``, ``in_junction``, ``outside_route_lanes``,
``off_road_fraction``, ``ttc_violation``, the hard-infraction flags) and per-episode metrics that are final at
the episode's last step: ``progress`` (completion as a fraction), ``driving_score`` (completion times the
infraction penalty: 0.60 for a collision, 0.65 for leaving the road, as the CARLA leaderboard weighs them),
``collided``, ``left_road`` and ``is_success`` (route finished without a collision).

>>> import gymnasium as gym, robo_reward
>>> env = gym.make("robo_reward/DrivingRoute-v0")
>>> obs, info = env.reset(seed=0)
>>> obs.shape, info["route_completion"]
((25,), 0.0)
>>> obs, r, terminated, truncated, info = env.step(np.array([0.0, 1.0]))
>>> info["route_completion"] > 0, terminated, truncated
(True, False, False)
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

LANE_WIDTH = 3.5
LANE_CENTRES_F = (0.0, LANE_WIDTH, 2 * LANE_WIDTH)  # route lane 0 (right), route lane 1, opposite lane
ROAD_RIGHT, ROAD_LEFT = -LANE_WIDTH / 2, 2.5 * LANE_WIDTH
ROUTE_LEFT = 1.5 * LANE_WIDTH
HALF_LENGTH, HALF_WIDTH = 2.25, 1.0
WHEELBASE = 2.7
SEGMENT = 50.0
OBS_NAMES = (
    "speed", "speed_limit", "overspeed", "lane_offset", "lateral", "sin_heading", "cos_heading", "prev_steer",
    "prev_accel", "curv_0", "curv_10", "curv_25", "curv_50", "route_left", "time_left",
    "gap_lane0", "dv_lane0", "gap_lane1", "dv_lane1", "gap_opposite", "dv_opposite",
    "gap_behind0", "dv_behind0", "gap_behind1", "dv_behind1",
)
"""Names of the observation's elements, in order."""
GAP_SCALE, DV_SCALE = 60.0, 15.0
CURV_PREVIEW = (0.0, 10.0, 25.0, 50.0)
IDM_SQRT_AB = 2 * math.sqrt(1.5 * 2.0)


def boxes_overlap(s: float, d: float, psi: float, other_s: float, other_d: float) -> bool:
    """Separating-axis test between the ego box at ``(s, d)`` with heading ``psi`` and a road-aligned actor box.

    Every box is ``2 * HALF_LENGTH`` by ``2 * HALF_WIDTH``; an opposite-lane actor faces backwards, which for a
    rectangle is the same box. Plain floats: with a handful of actors, numpy's per-call cost would dominate.
    """
    dx, dy = other_s - s, other_d - d
    if abs(dx) > 2 * (HALF_LENGTH + HALF_WIDTH) or abs(dy) > 2 * (HALF_LENGTH + HALF_WIDTH):
        return False
    c, sn = math.cos(psi), math.sin(psi)
    ac, asn = abs(c), abs(sn)
    along, across = HALF_LENGTH * ac + HALF_WIDTH * asn, HALF_LENGTH * asn + HALF_WIDTH * ac
    return not (abs(dx) > along + HALF_LENGTH or abs(dy) > across + HALF_WIDTH
                or abs(dx * c + dy * sn) > HALF_LENGTH + along or abs(dy * c - dx * sn) > HALF_WIDTH + across)


def additive_reward(speed: float, desired_speed: float, speed_limit: float, lane_offset: float, heading: float,
                    steer_change: float, crash: bool, ended_badly: bool) -> float:
    """The additive multi-term reward CaRL argues against (reconstruction of Roach's, Zhang et al. 2021).

    ``r = r_speed + r_position + r_rotation + r_action + r_terminal`` with ``r_speed = 1 - |v - v_des| / v_limit``
    (``v_des``: the speed limit, or less where the lane's leader requires it), ``r_position = -0.5 * lane
    offset [m]``, ``r_rotation = -|heading error| [rad]``, ``r_action = -0.1`` when the steering changes by more
    than 0.1, and ``r_terminal = -10`` for a collision or leaving the road (-1 for the other hard ends).
    """
    r = 1.0 - abs(speed - desired_speed) / speed_limit - 0.5 * abs(lane_offset) - abs(heading)
    r -= 0.1 * float(steer_change > 0.1)
    if crash:
        r -= 10.0
    elif ended_badly:
        r -= 1.0
    return float(r)


class DrivingRouteEnv(gym.Env):
    """Drive a curved route in the right lanes under a speed limit among traffic (see the module docstring).

    :param route_length: route length in m.
    :param speed_limits: the episode's speed limit is drawn from these (m/s).
    :param n_same: same-direction vehicles ahead of the ego (one more starts behind it).
    :param n_oncoming: vehicles in the opposite lane.
    :param max_curvature: curvature of each 50 m segment is drawn from ``U(-max, max)`` (1/m).
    :param ttc_horizon: constant-velocity forecast horizon for the TTC check (s), sampled every 0.25 s.
    :param timeout_s: route timeout (a hard infraction).
    :param blocked_s: standing still (< 0.1 m/s) this long ends the episode as blocked.
    :param dt: step length (s).
    """

    metadata = {"render_modes": []}  # noqa: RUF012  (Gymnasium declares it an instance attribute)
    has_success = True

    def __init__(self, *, route_length: float = 250.0, speed_limits: tuple[float, ...] = (8.33, 11.11, 13.89),
                 n_same: int = 3, n_oncoming: int = 3, max_curvature: float = 1 / 150, ttc_horizon: float = 1.0,
                 timeout_s: float = 45.0, blocked_s: float = 20.0, dt: float = 0.1, max_steer: float = 0.3,
                 max_accel: float = 3.0, max_brake: float = 6.0) -> None:
        if route_length <= 0 or dt <= 0 or timeout_s <= 0:
            raise ValueError(f"route_length, dt and timeout_s must be positive, got {route_length}, {dt}, {timeout_s}")
        if not speed_limits or min(speed_limits) <= 0:
            raise ValueError(f"speed_limits must be positive speeds in m/s, got {speed_limits}")
        if max_curvature * ROAD_LEFT >= 0.5:
            raise ValueError(f"max_curvature={max_curvature} is too sharp for the road's width; keep it below "
                             f"{0.5 / ROAD_LEFT:.3f} 1/m")
        self.route_length, self.speed_limits = float(route_length), tuple(float(v) for v in speed_limits)
        self.n_same, self.n_oncoming = int(n_same), int(n_oncoming)
        self.max_curvature, self.dt = float(max_curvature), float(dt)
        self.ttc_times = tuple(np.arange(0.25, ttc_horizon + 1e-9, 0.25).tolist())
        self.timeout_steps, self.blocked_steps = round(timeout_s / dt), round(blocked_s / dt)
        self.max_steer, self.max_accel, self.max_brake = float(max_steer), float(max_accel), float(max_brake)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.observation_space = spaces.Box(-np.inf, np.inf, (len(OBS_NAMES),), np.float32)
        self._n_seg = int(np.ceil((self.route_length + 2 * GAP_SCALE) / SEGMENT)) + 1

    # -- road ---------------------------------------------------------------------------------------------
    def _curvature(self, s: float) -> float:
        return self.kappa[min(max(int(s // SEGMENT), 0), self._n_seg - 1)]

    def _road_heading(self, s: float) -> float:
        i = min(max(int(s // SEGMENT), 0), self._n_seg - 1)
        return self.theta0[i] + self.kappa[i] * (s - i * SEGMENT)

    # -- episode ------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        rng = self.np_random
        kappa = rng.uniform(-self.max_curvature, self.max_curvature, self._n_seg)
        kappa[0] = 0.0
        self.kappa = kappa.tolist()
        self.theta0 = np.concatenate([[0.0], np.cumsum(kappa[:-1] * SEGMENT)]).tolist()
        self.limit = float(rng.choice(self.speed_limits))
        self.s, self.d, self.psi, self.v = 0.0, 0.0, 0.0, float(rng.uniform(0.0, 0.5 * self.limit))
        self.prev_action = (0.0, 0.0)
        self.t, self.still = 0, 0
        ahead = np.sort(rng.uniform(25.0, self.route_length + GAP_SCALE, self.n_same))
        self.same_s = [-30.0 - float(rng.uniform(0, 10)), *ahead.tolist()]
        self.same_lane = [0, *rng.integers(0, 2, self.n_same).tolist()]
        self.same_v0 = [self.limit, *(rng.uniform(0.4, 0.9, self.n_same) * self.limit).tolist()]
        self.same_v = list(self.same_v0)
        self.opp_s = rng.uniform(40.0, 2 * self.route_length, self.n_oncoming).tolist()
        self.opp_v = (rng.uniform(0.8, 1.0, self.n_oncoming) * self.limit).tolist()
        self._update_actors()
        self.collided = self.left_road = False
        self.flags = dict.fromkeys(("collision", "off_road", "wrong_way", "blocked", "timeout"), False)
        self.off_frac, self.desired = 0.0, self.limit
        return self._obs(), self._info()

    @property
    def route_completion(self) -> float:
        """Route completion in percent."""
        return float(min(100.0, max(0.0, 100.0 * self.s / self.route_length)))

    def _ego_lanes(self) -> tuple[bool, bool]:
        """Whether the ego's box overlaps route lane 0 and route lane 1."""
        half = LANE_WIDTH / 2 + HALF_LENGTH * abs(math.sin(self.psi)) + HALF_WIDTH * abs(math.cos(self.psi))
        return abs(self.d) < half, abs(self.d - LANE_WIDTH) < half

    def _step_traffic(self) -> None:
        """IDM for same-direction traffic (the ego is a leader in every lane its box overlaps); oncoming
        traffic keeps its speed."""
        ego_in = self._ego_lanes()
        new_v = []
        for i, (s, v, lane, v0) in enumerate(zip(self.same_s, self.same_v, self.same_lane, self.same_v0,
                                                               strict=True)):
            gap, lead_v = math.inf, v
            for j, (sj, vj, lj) in enumerate(zip(self.same_s, self.same_v, self.same_lane, strict=True)):
                if j != i and lj == lane and s < sj < s + gap:
                    gap, lead_v = sj - s, vj
            if ego_in[lane] and s < self.s < s + gap:
                gap, lead_v = self.s - s, self.v
            g = max(gap - 2 * HALF_LENGTH, 0.1)
            s_star = max(2.0 + 1.5 * v + v * (v - lead_v) / IDM_SQRT_AB, 0.0)
            acc = 1.5 * (1.0 - (v / v0) ** 4 - (s_star / g) ** 2)
            new_v.append(max(v + min(max(acc, -8.0), 1.5) * self.dt, 0.0))
        self.same_v = new_v
        self.same_s = [s + v * self.dt for s, v in zip(self.same_s, new_v, strict=True)]
        self.opp_s = [s - v * self.dt for s, v in zip(self.opp_s, self.opp_v, strict=True)]

    def _update_actors(self) -> None:
        """Every actor as ``(s, d, signed speed, lane)``, same-direction traffic first, for the step's queries."""
        same = zip(self.same_s, self.same_v, self.same_lane, strict=True)
        self.actors = ([(s, LANE_CENTRES_F[lane], v, lane) for s, v, lane in same]
                       + [(s, LANE_CENTRES_F[2], -v, 2) for s, v in zip(self.opp_s, self.opp_v, strict=True)])

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        a0, a1 = (min(1.0, max(-1.0, float(x))) for x in np.asarray(action).reshape(2))
        steer = a0 * self.max_steer
        accel = a1 * (self.max_accel if a1 > 0 else self.max_brake)
        kappa = self._curvature(self.s)
        self.v = min(30.0, max(0.0, self.v + accel * self.dt))
        s_dot = self.v * math.cos(self.psi) / (1.0 - kappa * self.d)
        self.psi += (self.v * math.tan(steer) / WHEELBASE - kappa * s_dot) * self.dt
        self.d += self.v * math.sin(self.psi) * self.dt
        self.s += s_dot * self.dt
        self._step_traffic()
        self._update_actors()
        self.t += 1
        self.still = self.still + 1 if self.v < 0.1 else 0

        collision = any(boxes_overlap(self.s, self.d, self.psi, s, d) for s, d, _, _ in self.actors)
        ext = HALF_LENGTH * abs(math.sin(self.psi)) + HALF_WIDTH * abs(math.cos(self.psi))
        outside = max(0.0, ROAD_RIGHT - (self.d - ext)) + max(0.0, (self.d + ext) - ROAD_LEFT)
        self.off_frac = float(min(1.0, outside / (2 * ext)))
        off_road = self.off_frac > 0.95
        wrong_way = abs(self.psi) > math.pi / 2
        blocked = self.still >= self.blocked_steps
        timeout = self.t >= self.timeout_steps and self.route_completion < 100.0
        self.collided |= collision
        self.left_road |= off_road or wrong_way
        terminated = collision or off_road or wrong_way or blocked or timeout
        truncated = not terminated and self.route_completion >= 100.0
        self.flags = {"collision": collision, "off_road": off_road, "wrong_way": wrong_way, "blocked": blocked,
                      "timeout": timeout}
        lead = [s - self.s for s, d, v, _ in self.actors
                if s > self.s and v >= 0 and abs(d - self.d) < LANE_WIDTH / 2 + HALF_WIDTH]
        self.desired = self.limit
        if lead:
            self.desired = min(self.limit, math.sqrt(2 * 3.0 * max(min(lead) - 2 * HALF_LENGTH - 2.0, 0.0)))
        info = self._info()
        reward = additive_reward(self.v, self.desired, self.limit, info["lane_offset"], self.psi,
                                 abs(a0 - self.prev_action[0]), collision or off_road or wrong_way, terminated)
        self.prev_action = (a0, a1)
        return self._obs(), reward, bool(terminated), bool(truncated), info

    # -- observation and info -----------------------------------------------------------------------------
    def _lane_offset(self) -> float:
        return min(abs(self.d), abs(self.d - LANE_WIDTH))

    def _ttc_violation(self) -> bool:
        """Whether constant-velocity forecasts of the ego and any actor overlap within the TTC horizon."""
        vs, vd = self.v * math.cos(self.psi), self.v * math.sin(self.psi)
        reach = 2 * (HALF_LENGTH + HALF_WIDTH) + (self.v + 30.0) * self.ttc_times[-1]
        near = [(s, d, v) for s, d, v, _ in self.actors if abs(s - self.s) < reach]
        return any(boxes_overlap(self.s + vs * t, self.d + vd * t, self.psi, s + v * t, d)
                   for t in self.ttc_times for s, d, v in near)

    def _info(self) -> dict[str, Any]:
        rc = self.route_completion
        penalty = (0.60 if self.collided else 1.0) * (0.65 if self.left_road else 1.0)
        return {
            "route_completion": rc, "speed": self.v, "speed_limit": self.limit,
            "yaw": self._road_heading(self.s) + self.psi, "dt": self.dt, "lane_offset": self._lane_offset(),
            "in_junction": False, "outside_route_lanes": bool(self.d > ROUTE_LEFT or self.d < ROAD_RIGHT),
            "off_road_fraction": self.off_frac, "ttc_violation": self._ttc_violation(), **self.flags,
            "progress": rc / 100.0, "driving_score": rc / 100.0 * penalty, "collided": float(self.collided),
            "left_road": float(self.left_road), "is_success": bool(rc >= 100.0 and not self.collided),
        }

    def _obs(self) -> np.ndarray:
        ahead = [(math.inf, 0.0)] * 3
        behind = [(math.inf, 0.0)] * 2
        for s, _, v, lane in self.actors:
            rel = s - self.s
            if rel > 0 and rel < ahead[lane][0]:
                ahead[lane] = (rel, v)
            elif rel <= 0 and v >= 0 and -rel < behind[lane][0]:
                behind[lane] = (-rel, v)
        feats = []
        for gap, v in (*ahead, *behind):
            seen = gap < math.inf
            feats += [min(max(gap - 2 * HALF_LENGTH, 0.0) / GAP_SCALE, 1.0) if seen else 1.0,
                      (v - self.v) / DV_SCALE if seen else 0.0]
        curv = [self._curvature(self.s + ahead) * 50.0 for ahead in CURV_PREVIEW]
        nearest = 0.0 if self.d < LANE_WIDTH / 2 else LANE_WIDTH
        obs = [self.v / 20.0, self.limit / 20.0, min(1.0, max(-1.0, (self.v - self.limit) / 5.0)),
               (self.d - nearest) / (LANE_WIDTH / 2), self.d / ROAD_LEFT, math.sin(self.psi), math.cos(self.psi),
               self.prev_action[0], self.prev_action[1], *curv, 1.0 - self.route_completion / 100.0,
               1.0 - self.t / self.timeout_steps, *feats]
        return np.array(obs, dtype=np.float32)
