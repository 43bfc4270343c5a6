"""Robot profiles: everything robot-specific (topics, joints, rates, limits, command interface) as YAML.

A profile is validated with pydantic when it is loaded, so a typo or a missing limit is caught before anything
moves: an unknown key or a bad value is an error naming the key path and, for choices, the valid options.

Conventions (specs/hardware.md): ``std_msgs/Float64MultiArray`` on ``/<controller>/commands`` for ros2_control
forward controllers, ``trajectory_msgs/JointTrajectory`` for trajectory controllers, ``geometry_msgs/Twist`` for
mobile bases; best-effort QoS with a short history for cameras, reliable QoS for joint states and commands.

>>> p = RobotProfile.model_validate({
...     "name": "demo", "control_rate_hz": 50,
...     "joints": {"names": ["a", "b"], "position_lower": -1, "position_upper": 1, "velocity_limit": 2},
...     "observations": {"q": {"source": "joint_state", "field": "position"}},
...     "command": {"interface": "float64_multi_array", "topic": "/c/commands", "mode": "velocity"}})
>>> p.period, p.joints.velocity_limits.tolist(), p.command_lower().tolist()
(0.02, [2.0, 2.0], [-2.0, -2.0])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

TWIST_AXES = ("linear.x", "linear.y", "linear.z", "angular.x", "angular.y", "angular.z")
FloatOrList = float | list[float]


class ProfileError(ValueError):
    """A robot profile is invalid; the message names each bad key and what is accepted there."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _broadcast(value: FloatOrList, n: int, what: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size == 1:
        return np.full(n, float(arr[0]))
    if arr.size != n:
        raise ProfileError(f"{what} has {arr.size} values but there are {n} joints/axes; give one value or {n}")
    return arr


class JointsConfig(_Strict):
    """The robot's joints in the policy's order, and their limits (radians or metres, per second)."""

    names: list[str] = Field(min_length=1)
    state_topic: str = "/joint_states"
    position_lower: FloatOrList
    position_upper: FloatOrList
    velocity_limit: FloatOrList

    @field_validator("names")
    @classmethod
    def _unique(cls, names: list[str]) -> list[str]:
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"joint names must be unique; repeated: {dup}")
        return names

    @model_validator(mode="after")
    def _limits(self) -> JointsConfig:
        n = len(self.names)
        lo = _broadcast(self.position_lower, n, "joints.position_lower")
        hi = _broadcast(self.position_upper, n, "joints.position_upper")
        vel = _broadcast(self.velocity_limit, n, "joints.velocity_limit")
        if (lo >= hi).any():
            bad = [self.names[i] for i in np.flatnonzero(lo >= hi)]
            raise ValueError(f"joints.position_lower must be below position_upper; not so for {bad}")
        if (vel <= 0).any():
            raise ValueError("joints.velocity_limit must be positive")
        return self

    @property
    def position_lowers(self) -> np.ndarray:
        return _broadcast(self.position_lower, len(self.names), "joints.position_lower")

    @property
    def position_uppers(self) -> np.ndarray:
        return _broadcast(self.position_upper, len(self.names), "joints.position_upper")

    @property
    def velocity_limits(self) -> np.ndarray:
        return _broadcast(self.velocity_limit, len(self.names), "joints.velocity_limit")


class ObservationConfig(_Strict):
    """One entry of the policy's observation, read from one topic.

    ``joint_state``: a field of ``sensor_msgs/JointState`` reordered into ``joints.names``.
    ``image``: ``sensor_msgs/Image`` converted to ``shape`` = (height, width, channels), channels 3 (RGB) or 1.
    ``pose``: the position and quaternion (x, y, z, qx, qy, qz, qw) of ``geometry_msgs/PoseStamped``, whose
    ``header.frame_id`` must equal ``frame_id``.
    """

    source: Literal["joint_state", "image", "pose"]
    topic: str | None = None
    field: Literal["position", "velocity", "effort"] = "position"
    shape: tuple[int, int, int] | None = None
    frame_id: str | None = None
    qos: Literal["reliable", "best_effort"] | None = None
    required: bool = True
    max_age_periods: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _per_source(self) -> ObservationConfig:
        if self.source == "image":
            if self.shape is None:
                raise ValueError("an image observation needs shape: [height, width, channels] (the policy input)")
            if self.shape[2] not in (1, 3) or min(self.shape) < 1:
                raise ValueError(f"image shape {list(self.shape)}: channels must be 1 (mono) or 3 (rgb)")
            if self.topic is None:
                raise ValueError("an image observation needs topic: (e.g. /camera/color/image_raw)")
        if self.source == "pose" and (self.topic is None or self.frame_id is None):
            raise ValueError("a pose observation needs topic: and frame_id: (the frame the policy was trained in)")
        return self

    @property
    def qos_policy(self) -> str:
        return self.qos or ("best_effort" if self.source == "image" else "reliable")


class CommandConfig(_Strict):
    """How actions reach the robot: command = offset + scale * action, then the safety layer.

    ``mode`` says what joint commands mean (``velocity`` or ``position``); Twist commands are velocities.
    ``lower``/``upper`` bound the command (defaults: the joint velocity or position limits); ``max_delta`` is the
    largest change per control step (the rate limit), in command units.
    """

    interface: Literal["float64_multi_array", "joint_trajectory", "twist"]
    topic: str
    mode: Literal["velocity", "position"] = "velocity"
    scale: FloatOrList = 1.0
    offset: FloatOrList = 0.0
    lower: FloatOrList | None = None
    upper: FloatOrList | None = None
    max_delta: FloatOrList | None = None
    twist_axes: list[str] | None = None
    time_from_start: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _per_interface(self) -> CommandConfig:
        if self.interface == "twist":
            if self.mode != "velocity":
                raise ValueError("a twist command is a velocity; set mode: velocity")
            if not self.twist_axes:
                raise ValueError(f"a twist command needs twist_axes: a list drawn from {list(TWIST_AXES)}")
            bad = [a for a in self.twist_axes if a not in TWIST_AXES]
            if bad:
                raise ValueError(f"twist_axes {bad} are not valid; valid axes: {list(TWIST_AXES)}")
            if self.lower is None or self.upper is None:
                raise ValueError("a twist command needs explicit lower: and upper: limits (m/s, rad/s)")
        elif self.twist_axes is not None:
            raise ValueError("twist_axes applies only to interface: twist")
        return self


class TopicsConfig(_Strict):
    """Topics and services the bridge itself offers."""

    reward: str = "/robo_reward/reward"
    status: str = "/robo_reward/status"
    reset_service: str = "/robo_reward/reset_estop"


class RobotProfile(_Strict):
    """A robot as the bridge sees it (see the module docstring for an example)."""

    name: str
    control_rate_hz: float = Field(gt=0, le=1000)
    joints: JointsConfig
    observations: dict[str, ObservationConfig] = Field(min_length=1)
    observation_layout: Literal["dict", "concat"] = "dict"
    command: CommandConfig
    max_age_periods: float = Field(default=2.0, gt=0)
    topics: TopicsConfig = TopicsConfig()

    @model_validator(mode="after")
    def _consistent(self) -> RobotProfile:
        if self.observation_layout == "concat":
            images = [k for k, o in self.observations.items() if o.source == "image"]
            if images:
                raise ValueError(f"observation_layout: concat joins vectors only; {images} are images (use dict)")
        n = self.action_dim
        for key in ("scale", "offset", "lower", "upper", "max_delta"):
            value = getattr(self.command, key)
            if value is not None:
                arr = _broadcast(value, n, f"command.{key}")
                if key == "max_delta" and (arr <= 0).any():
                    raise ValueError("command.max_delta must be positive")
                if key == "scale" and (arr == 0).any():
                    raise ValueError("command.scale must be non-zero (the action must be recoverable)")
        if (self.command_lower() > self.command_upper()).any():
            raise ValueError("command.lower must not exceed command.upper")
        return self

    @property
    def period(self) -> float:
        return 1.0 / self.control_rate_hz

    @property
    def action_dim(self) -> int:
        if self.command.interface == "twist":
            return len(self.command.twist_axes or ())
        return len(self.joints.names)

    def _vec(self, key: str) -> np.ndarray | None:
        value = getattr(self.command, key)
        return None if value is None else _broadcast(value, self.action_dim, f"command.{key}")

    def command_scale(self) -> np.ndarray:
        return self._vec("scale")  # type: ignore[return-value]

    def command_offset(self) -> np.ndarray:
        return self._vec("offset")  # type: ignore[return-value]

    def command_lower(self) -> np.ndarray:
        explicit = self._vec("lower")
        default = -self.joints.velocity_limits if self.command.mode == "velocity" else self.joints.position_lowers
        return default if explicit is None else (explicit if self.command.interface == "twist"
                                                 else np.maximum(explicit, default))

    def command_upper(self) -> np.ndarray:
        explicit = self._vec("upper")
        default = self.joints.velocity_limits if self.command.mode == "velocity" else self.joints.position_uppers
        return default if explicit is None else (explicit if self.command.interface == "twist"
                                                 else np.minimum(explicit, default))

    def command_max_delta(self) -> np.ndarray | None:
        return self._vec("max_delta")

    def max_age(self, key: str) -> float:
        """Seconds after which observation ``key`` counts as stale (the watchdog threshold)."""
        periods = self.observations[key].max_age_periods or self.max_age_periods
        return periods * self.period

    def topic_of(self, key: str) -> str:
        obs = self.observations[key]
        return obs.topic or self.joints.state_topic


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = [f"invalid robot profile {source}:"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "<top level>"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "literal_error":
            msg = f"got {err.get('input')!r}; {msg[0].lower()}{msg[1:]}"
        lines.append(f"  {where}: {msg}")
    return "\n".join(lines)


_VALID_KEYS = {
    "<top level>": sorted(RobotProfile.model_fields),
    "joints": sorted(JointsConfig.model_fields),
    "command": sorted(CommandConfig.model_fields),
    "topics": sorted(TopicsConfig.model_fields),
    "observations": sorted(ObservationConfig.model_fields),
}


def parse_profile(data: Any, source: str = "<dict>") -> RobotProfile:
    """Validate a profile from plain data; raise :class:`ProfileError` naming each bad key."""
    if not isinstance(data, dict):
        raise ProfileError(f"robot profile {source} must be a mapping of keys, got {type(data).__name__}")
    try:
        return RobotProfile.model_validate(data)
    except ValidationError as exc:
        message = _format_errors(exc, source)
        unknown = [e["loc"] for e in exc.errors() if e["type"] == "extra_forbidden"]
        for loc in unknown:
            section = "observations" if loc and loc[0] == "observations" else (
                str(loc[0]) if len(loc) > 1 else "<top level>")
            message += f"\n  valid keys in {section}: {', '.join(_VALID_KEYS.get(section, []))}"
        raise ProfileError(message) from None


def load_profile(path: str | Path) -> RobotProfile:
    """Read and validate a robot profile YAML (``configs/robots/<name>.yaml``)."""
    path = Path(path)
    if not path.is_file():
        raise ProfileError(f"robot profile {path} does not exist; profiles live in configs/robots/*.yaml")
    with path.open() as fh:
        data = yaml.safe_load(fh)
    return parse_profile(data, str(path))
