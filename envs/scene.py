"""The tabletop scene: ``assets/tabletop.xml`` edited per task variant and compiled to an ``MjModel``.

The base model holds a table, a Cartesian two-finger gripper (three actuated slide joints carry the hand, two
force-limited finger servos close on objects; grasping is friction between finger pads and the object, never a
weld or a teleport), one cube, a goal marker and four cameras (``front``, ``side``, ``top``, ``wrist``).
:func:`build_model` applies a :class:`SceneConfig`: object size, colour and mass, a raised target pad for
pick-and-place, distractor boxes, or no object at all (Reach), and the offscreen buffer size.

Rendering is done in software on CI machines, so the scene stays cheap: flat colours, no textures, no shadows
or reflections, a handful of geoms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources

import mujoco

ASSET = "tabletop.xml"

COLOURS: dict[str, tuple[float, float, float, float]] = {
    "red": (0.85, 0.15, 0.15, 1.0),
    "blue": (0.15, 0.3, 0.85, 1.0),
    "yellow": (0.9, 0.8, 0.1, 1.0),
    "purple": (0.6, 0.2, 0.7, 1.0),
    "orange": (0.95, 0.5, 0.1, 1.0),
    "cyan": (0.1, 0.75, 0.8, 1.0),
    "white": (0.92, 0.92, 0.92, 1.0),
    "black": (0.08, 0.08, 0.08, 1.0),
}
"""Named flat colours for objects and distractors (the goal marker is green, so green is left out)."""

CAMERAS = ("front", "side", "top", "wrist")
FINGER_OPEN = 0.04
"""Travel of each finger (m): the gap between the pads goes from 0 (closed) to 0.08 (open)."""
GRIP_BELOW_PALM = 0.045
"""The grip point (between the finger pads) sits this far below the palm centre."""
FINGERTIP_BELOW_GRIP = 0.015

Colour = str | Sequence[float]


def resolve_colour(colour: Colour) -> tuple[float, float, float, float]:
    """A named colour from :data:`COLOURS` or an RGB/RGBA sequence in [0, 1], as RGBA."""
    if isinstance(colour, str):
        if colour not in COLOURS:
            raise ValueError(f"unknown colour {colour!r}; use one of {sorted(COLOURS)} or an RGB(A) tuple")
        return COLOURS[colour]
    rgba = [float(c) for c in colour]
    if len(rgba) == 3:
        rgba.append(1.0)
    if len(rgba) != 4 or not all(0.0 <= c <= 1.0 for c in rgba):
        raise ValueError(
            f"colour {colour!r} must be 3 or 4 numbers in [0, 1] or a name from {sorted(COLOURS)}"
        )
    return (rgba[0], rgba[1], rgba[2], rgba[3])


def distractor_colours(
    n: int, colours: Sequence[Colour] | None, object_rgba: Sequence[float]
) -> tuple[tuple[float, float, float, float], ...]:
    """``n`` distractor colours: ``colours`` cycled, or by default every named colour but the object's."""
    if colours is None:
        palette = [c for c in COLOURS.values() if c != tuple(object_rgba)]
    else:
        palette = [resolve_colour(c) for c in colours]
        if not palette:
            raise ValueError("distractor_colors must name at least one colour")
    return tuple(palette[i % len(palette)] for i in range(n))


@dataclass(frozen=True)
class SceneConfig:
    """What a task variant changes in the model (everything else is sampled at reset).

    :param with_object: keep the cube (False for Reach).
    :param object_half_size: half the cube's edge (m); the open gripper takes cubes up to 0.035.
    :param object_rgba: the cube's colour.
    :param object_mass: the cube's mass (kg).
    :param goal_marker: ``"disc"`` (a flat region on the table), ``"sphere"`` (a point in the air) or
        ``"pad"`` (a raised square target of height ``pad_height``; it collides, so cubes rest on it).
    :param goal_radius: the disc's radius, the sphere's radius or the pad's half side (m).
    :param pad_height: height of the raised pad (m), used when ``goal_marker == "pad"``.
    :param distractor_rgbas: one colour per distractor box (visual only: they do not collide).
    :param distractor_half_size: half edge of the distractor boxes (m).
    :param buffer_size: offscreen framebuffer (width, height); must cover every image rendered.
    """

    with_object: bool = True
    object_half_size: float = 0.02
    object_rgba: tuple[float, float, float, float] = COLOURS["red"]
    object_mass: float = 0.05
    goal_marker: str = "disc"
    goal_radius: float = 0.04
    pad_height: float = 0.02
    distractor_rgbas: tuple[tuple[float, float, float, float], ...] = field(default_factory=tuple)
    distractor_half_size: float = 0.02
    buffer_size: tuple[int, int] = (64, 64)

    def __post_init__(self) -> None:
        if not 0.008 <= self.object_half_size <= 0.035:
            raise ValueError(
                f"object_half_size={self.object_half_size} must lie in [0.008, 0.035] m: smaller cubes slip "
                "between the finger pads, larger ones do not fit the open gripper (0.08 m)"
            )
        if self.goal_marker not in ("disc", "sphere", "pad"):
            raise ValueError(f"goal_marker={self.goal_marker!r} must be 'disc', 'sphere' or 'pad'")
        if self.goal_marker == "pad" and not 0.005 <= self.pad_height <= 0.05:
            raise ValueError(f"pad_height={self.pad_height} must lie in [0.005, 0.05] m")
        if self.object_mass <= 0 or self.goal_radius <= 0:
            raise ValueError("object_mass and goal_radius must be positive")


def _delete(spec: mujoco.MjSpec, element: mujoco.MjsBody | mujoco.MjsGeom) -> None:
    """Remove a body (with its subtree) or a geom from ``spec`` on every MuJoCo from 3.3.0 on.

    MuJoCo 3.3.x has ``MjSpec.detach_body`` and ``MjsGeom.delete``; later versions replace both with
    ``MjSpec.delete`` (4.0 has only that). Meta-World 3.1.1 pins mujoco 3.3.0, so both forms are supported.
    """
    if hasattr(spec, "delete"):
        spec.delete(element)
    elif isinstance(element, mujoco.MjsBody):
        spec.detach_body(element)
    else:
        element.delete()


def build_model(config: SceneConfig) -> mujoco.MjModel:
    """Compile the tabletop model for one task variant."""
    xml = resources.files("robo_reward.envs").joinpath("assets", ASSET).read_text()
    spec = mujoco.MjSpec.from_string(xml)
    obj_body = spec.body("object")
    if config.with_object:
        geom = spec.geom("object")
        h = config.object_half_size
        geom.size = [h, h, h]
        geom.rgba = list(config.object_rgba)
        geom.mass = config.object_mass
        obj_body.pos = [0.0, 0.0, h]
    else:
        _delete(spec, obj_body)

    goal = spec.body("goal")
    disc = spec.geom("goal_disc")
    if config.goal_marker == "disc":
        disc.size = [config.goal_radius, 0.0005, 0.0]
    else:
        _delete(spec, disc)
        if config.goal_marker == "sphere":
            goal.add_geom(
                name="goal_sphere",
                type=mujoco.mjtGeom.mjGEOM_SPHERE,
                size=[config.goal_radius, 0, 0],
                rgba=[0.1, 0.75, 0.2, 1.0],
                contype=0,
                conaffinity=0,
                group=1,
                mass=0.0,
            )
        else:
            half = config.pad_height / 2
            goal.add_geom(
                name="goal_pad",
                type=mujoco.mjtGeom.mjGEOM_BOX,
                size=[config.goal_radius, config.goal_radius, half],
                pos=[0.0, 0.0, half],
                rgba=[0.1, 0.75, 0.2, 1.0],
                friction=[0.8, 0.005, 0.0001],
            )

    d = config.distractor_half_size
    for i, rgba in enumerate(config.distractor_rgbas):
        body = spec.worldbody.add_body(name=f"distractor{i}", mocap=True, pos=[0.0, 0.0, d])
        body.add_geom(
            name=f"distractor{i}",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[d, d, d],
            rgba=list(rgba),
            contype=0,
            conaffinity=0,
            group=1,
            mass=0.0,
        )

    spec.visual.global_.offwidth = int(config.buffer_size[0])
    spec.visual.global_.offheight = int(config.buffer_size[1])
    return spec.compile()
