"""Message <-> numpy converters with no ROS import, so they run and are tested anywhere.

Each converter reads a message by duck typing (the attribute names of the ROS 2 and ROS 1 message classes), so a
real ``sensor_msgs/JointState`` and the plain dataclasses below are handled alike. Every malformed message raises
:class:`MessageError` naming what was wrong, what was expected, and where it came from; nothing is guessed.

>>> js = JointStateData(name=["b", "a", "gripper"], position=[2.0, 1.0, 0.5])
>>> joint_state_to_array(js, ["a", "b"]).tolist()
[1.0, 2.0]
>>> img = ImageData(height=1, width=2, encoding="bgr8", step=8, data=bytes([3, 2, 1, 6, 5, 4, 0, 0]))
>>> image_to_array(img).tolist()  # as stored: BGR, row padding dropped
[[[3, 2, 1], [6, 5, 4]]]
>>> image_to_array(img, shape=(1, 2, 3)).tolist()  # the policy input: RGB
[[[1, 2, 3], [4, 5, 6]]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robo_reward.hardware.profile import TWIST_AXES


class MessageError(ValueError):
    """A received message cannot be turned into a policy input."""


# ----------------------------------------------------------------------------------------------------------------
# Plain stand-ins for the messages (same attribute names as ROS), for tests and for backends to fill.


@dataclass
class HeaderData:
    frame_id: str = ""
    stamp_ns: int = 0


@dataclass
class JointStateData:
    name: Sequence[str] = ()
    position: Sequence[float] = ()
    velocity: Sequence[float] = ()
    effort: Sequence[float] = ()
    header: HeaderData = field(default_factory=HeaderData)


@dataclass
class ImageData:
    height: int = 0
    width: int = 0
    encoding: str = "rgb8"
    is_bigendian: int = 0
    step: int = 0
    data: bytes = b""
    header: HeaderData = field(default_factory=HeaderData)


@dataclass
class PoseStampedData:
    position: Sequence[float] = (0.0, 0.0, 0.0)
    orientation: Sequence[float] = (0.0, 0.0, 0.0, 1.0)
    header: HeaderData = field(default_factory=HeaderData)


@dataclass(frozen=True)
class Command:
    """A command ready for a backend to wrap in a message.

    ``values`` are in command units (rad/s, rad, m/s). ``interface`` and ``mode`` are the profile's; ``names``
    holds joint names (joint interfaces) or twist axes (``"linear.x"``...).
    """

    interface: str
    mode: str
    names: tuple[str, ...]
    values: np.ndarray
    time_from_start: float = 0.0

    def twist(self) -> dict[str, float]:
        """The six Twist fields, zero where the command has no axis."""
        out = dict.fromkeys(TWIST_AXES, 0.0)
        out.update(zip(self.names, self.values.tolist(), strict=True))
        return out


# ----------------------------------------------------------------------------------------------------------------
# JointState


def joint_state_to_array(msg: Any, order: Sequence[str], field: str = "position", *, source: str = "JointState"
                         ) -> np.ndarray:
    """``msg.<field>`` reordered by joint name into ``order`` (the policy's joint order), as float64.

    Extra joints in the message are ignored (a robot often publishes grippers and wheels too); a joint of
    ``order`` that is missing, a field shorter than ``name``, or a NaN/inf value is an error naming the joint.
    """
    names = list(msg.name)
    values = np.asarray(getattr(msg, field), dtype=np.float64)
    if values.size != len(names):
        raise MessageError(
            f"{source}: '{field}' has {values.size} values for {len(names)} joint names; a JointState must give "
            f"one {field} per name (publish the field for every joint or leave it empty for all)"
        )
    index = {n: i for i, n in enumerate(names)}
    missing = [j for j in order if j not in index]
    if missing:
        raise MessageError(
            f"{source}: missing joint {', '.join(repr(j) for j in missing)} (message has {names}); "
            f"the robot profile's joints.names expects {list(order)}"
        )
    out = values[[index[j] for j in order]]
    if not np.isfinite(out).all():
        bad = [j for j, v in zip(order, out, strict=True) if not np.isfinite(v)]
        raise MessageError(f"{source}: joint {', '.join(repr(j) for j in bad)} has non-finite {field} "
                           f"{out[~np.isfinite(out)].tolist()}")
    return out


# ----------------------------------------------------------------------------------------------------------------
# Image

# encoding -> (numpy dtype, channels, channel order of the result before conversion)
IMAGE_ENCODINGS: dict[str, tuple[str, int, str]] = {
    "rgb8": ("u1", 3, "rgb"),
    "bgr8": ("u1", 3, "bgr"),
    "rgba8": ("u1", 4, "rgba"),
    "bgra8": ("u1", 4, "bgra"),
    "mono8": ("u1", 1, "mono"),
    "8UC1": ("u1", 1, "mono"),
    "8UC3": ("u1", 3, "bgr"),
    "mono16": ("u2", 1, "mono"),
    "16UC1": ("u2", 1, "mono"),
    "32FC1": ("f4", 1, "mono"),
}


def image_to_array(msg: Any, shape: tuple[int, int, int] | None = None, *, source: str = "Image") -> np.ndarray:
    """A ``sensor_msgs/Image`` as a (H, W, C) array, honouring ``encoding``, ``step`` and ``is_bigendian``.

    Without ``shape``, the image's own size and channels are returned (uint8 for 8-bit encodings, else the
    encoding's dtype). With ``shape`` = (height, width, channels) (the policy input), the image is converted to RGB
    (3) or grey (1), 16-bit and float images are scaled to uint8 (16-bit by 1/256, float by 255 after clipping
    to [0, 1]), and resized with area interpolation, which is what a sim env's renderer-then-resize produces.
    """
    encoding = str(msg.encoding)
    if encoding not in IMAGE_ENCODINGS:
        raise MessageError(f"{source}: unsupported encoding {encoding!r}; supported: {sorted(IMAGE_ENCODINGS)} "
                           "(debayer or convert on the robot, e.g. with image_proc)")
    kind, channels, order = IMAGE_ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    dtype = np.dtype(kind).newbyteorder(">" if msg.is_bigendian else "<")
    row_bytes = width * channels * dtype.itemsize
    if height <= 0 or width <= 0:
        raise MessageError(f"{source}: empty image ({height}x{width})")
    if step < row_bytes:
        raise MessageError(f"{source}: step {step} is smaller than width*channels*bytes = {row_bytes} for "
                           f"{width} px of {encoding}; the header is inconsistent")
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    if buf.size != step * height:
        raise MessageError(f"{source}: data has {buf.size} bytes but step*height = {step}*{height} = "
                           f"{step * height}; the image is truncated or its header is wrong")
    rows = buf.reshape(height, step)[:, :row_bytes]
    img = np.ascontiguousarray(rows).view(dtype).reshape(height, width, channels).astype(dtype.newbyteorder("="))
    if kind == "f4" and not np.isfinite(img).all():
        raise MessageError(f"{source}: float image has NaN/inf pixels")
    if shape is None:
        return img
    return _to_policy_image(img, order, shape)


def _to_policy_image(img: np.ndarray, order: str, shape: tuple[int, int, int]) -> np.ndarray:
    import cv2

    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype == np.float32:
        img = np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    height, width, channels = shape
    if channels == 3:
        conv = {"rgb": None, "bgr": cv2.COLOR_BGR2RGB, "rgba": cv2.COLOR_RGBA2RGB, "bgra": cv2.COLOR_BGRA2RGB,
                "mono": cv2.COLOR_GRAY2RGB}[order]
    else:
        conv = {"rgb": cv2.COLOR_RGB2GRAY, "bgr": cv2.COLOR_BGR2GRAY, "rgba": cv2.COLOR_RGBA2GRAY,
                "bgra": cv2.COLOR_BGRA2GRAY, "mono": None}[order]
    if conv is not None:
        img = cv2.cvtColor(img, conv)
    if img.shape[:2] != (height, width):
        img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
    return img.reshape(height, width, channels)


def array_to_image(rgb: np.ndarray, encoding: str = "rgb8", *, row_padding: int = 0) -> ImageData:
    """An (H, W, 3) uint8 RGB array as an :class:`ImageData` in ``encoding`` (rgb8, bgr8 or mono8), with optional
    padding bytes at the end of each row (``step`` > width*channels), as some camera drivers publish."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"array_to_image expects (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    if encoding == "rgb8":
        px = rgb
    elif encoding == "bgr8":
        px = rgb[:, :, ::-1]
    elif encoding == "mono8":
        px = np.round(rgb @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)[:, :, None]
    else:
        raise ValueError(f"array_to_image writes rgb8, bgr8 or mono8, not {encoding!r}")
    h, w, c = px.shape
    rows = np.zeros((h, w * c + row_padding), np.uint8)
    rows[:, : w * c] = px.reshape(h, w * c)
    return ImageData(height=h, width=w, encoding=encoding, step=w * c + row_padding, data=rows.tobytes())


# ----------------------------------------------------------------------------------------------------------------
# Pose


def pose_to_array(msg: Any, frame_id: str, *, source: str = "PoseStamped") -> np.ndarray:
    """(x, y, z, qx, qy, qz, qw) of a ``geometry_msgs/PoseStamped`` after checking it is expressed in ``frame_id``.

    A pose in another frame is an error (the policy was trained in one frame; transform it with tf2 first); the
    quaternion must have unit norm within 1e-3.
    """
    got = str(msg.header.frame_id)
    if got != frame_id:
        raise MessageError(f"{source}: pose is in frame {got!r} but the policy expects frame {frame_id!r}; "
                           "publish it in that frame or transform it with tf2 first")
    pose = getattr(msg, "pose", msg)
    p, q = pose.position, pose.orientation
    xyz = [p.x, p.y, p.z] if hasattr(p, "x") else list(p)
    quat = [q.x, q.y, q.z, q.w] if hasattr(q, "x") else list(q)
    out = np.asarray(xyz + quat, dtype=np.float64)
    if out.size != 7 or not np.isfinite(out).all():
        raise MessageError(f"{source}: pose must be 7 finite numbers (xyz + quaternion), got {out.tolist()}")
    norm = float(np.linalg.norm(out[3:]))
    if abs(norm - 1.0) > 1e-3:
        raise MessageError(f"{source}: orientation quaternion has norm {norm:.4f}, expected 1")
    return out


# ----------------------------------------------------------------------------------------------------------------
# Action -> command


def action_to_command_values(action: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Command units from policy action units: ``offset + scale * action`` (per joint or axis)."""
    return offset + scale * np.asarray(action, dtype=np.float64)


def command_values_to_action(values: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """The inverse of :func:`action_to_command_values`: the action a command executes, in action units."""
    return (np.asarray(values, dtype=np.float64) - offset) / scale


def make_command(values: np.ndarray, interface: str, mode: str, names: Sequence[str],
                 time_from_start: float = 0.0) -> Command:
    """Package command values for a backend; checks the length and finiteness once more at the boundary."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size != len(names):
        raise ValueError(f"command has {values.size} values for {len(names)} names {list(names)}")
    if not np.isfinite(values).all():
        raise ValueError(f"refusing to build a command with non-finite values {values.tolist()}")
    return Command(interface=interface, mode=mode, names=tuple(names), values=values, time_from_start=time_from_start)


def command_from_message(msg: Any, interface: str, mode: str, names: Sequence[str]) -> np.ndarray:
    """Read the command values back out of a received message (used by the fake robot and by tests)."""
    if interface == "float64_multi_array":
        values = np.asarray(msg.data, dtype=np.float64)
    elif interface == "joint_trajectory":
        if not msg.points:
            raise MessageError("JointTrajectory has no points")
        index = {n: i for i, n in enumerate(msg.joint_names)}
        missing = [n for n in names if n not in index]
        if missing:
            raise MessageError(f"JointTrajectory lacks joints {missing}")
        point = msg.points[0]
        field_values = np.asarray(point.velocities if mode == "velocity" else point.positions, dtype=np.float64)
        values = field_values[[index[n] for n in names]]
    elif interface == "twist":
        values = np.asarray([getattr(getattr(msg, a.split(".")[0]), a.split(".")[1]) for a in names], np.float64)
    else:
        raise ValueError(f"unknown command interface {interface!r}")
    if values.size != len(names):
        raise MessageError(f"command message has {values.size} values, expected {len(names)}")
    return values


def stamp_ns(msg: Any) -> int:
    """``header.stamp`` in nanoseconds for ROS 2 (sec/nanosec), ROS 1 (secs/nsecs) and the plain stand-ins."""
    header = getattr(msg, "header", None)
    if header is None:
        return 0
    if hasattr(header, "stamp_ns"):
        return int(header.stamp_ns)
    stamp = header.stamp
    if hasattr(stamp, "nanosec"):
        return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
    return int(stamp.secs) * 1_000_000_000 + int(stamp.nsecs)
