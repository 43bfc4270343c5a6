"""MiniGrid DoorKey that prints NetHack-style messages (registered ids in :mod:`robo_reward.envs.textgrid`).

For ONI (Zheng et al., "Online Intrinsic Rewards for Decision Making Agents from Large Language Model Feedback",
arXiv 2410.23022), whose intrinsic reward pays for in-game messages. This is its small-scale faithful build (``specs/oni.md``, a reconstruction): a grid world that emits text messages, so
the paper's claim (an LLM's judgement of messages, distilled online, makes a sparse task learnable) can be
measured on two CPU cores, where NetHack itself needs billions of steps. The task is MiniGrid's DoorKey: pick
up the key, unlock the door, reach the goal square; the env's reward is MiniGrid's sparse
``1 - 0.9 * steps / max_steps`` on reaching the goal and 0 otherwise.

Every event prints a message, as NetHack does:

=========================  ===============================================================================
event                      message
=========================  ===============================================================================
pick up the key            ``You pick up the yellow key.``
drop it                    ``You drop the yellow key.``
toggle the locked door     ``This yellow door is locked.`` without the key, ``You unlock the yellow door.``
                           with it; walking into it: ``This yellow door is locked.``
open / close the door      ``The yellow door opens.`` / ``You close the yellow door.``; walking into the
                           closed door: ``The yellow door is closed.``
walk into a wall           ``There is a wall in the way.``
pick up, nothing to take   ``There is nothing here to pick up.``
reach the goal             ``You reach the goal square!``
ambient (``ambient``/step) ``You hear water dripping.`` and other distractors, on random steps
=========================  ===============================================================================

With ``variants=True`` every message starts with the turn (``Turn 17: You pick up the yellow key.``), so most
messages the agent meets are new to a lookup table, as NetHack's are (``You see here 12 gold pieces``): a reward
that generalises over message text (ONI-Classification) can pay them at once, a hash table (ONI-Retrieval) only
after the annotator has seen that exact text. ``message_count`` counts the event (the message without its turn),
so the count decay still applies to a repeated event: counting the stamped text would make every message new
and an open-close loop would pay without end.

Observations are a ``Dict`` shaped like :class:`robo_reward.envs.nethack.env.NetHackTextEnv`'s:

* ``policy``: ``float32`` one-hot of MiniGrid's egocentric 7 x 7 view (object, colour and state per cell), then
  the agent's direction (one-hot of 4): 984 values for SB3's ``MlpPolicy``.
* ``message``: 256 message bytes (zero-padded; all zero when nothing was printed).
* ``message_count``: how often this message has been printed in the episode, this step included (0 for
  no message; with ``variants``, the count of the message without its turn); it restarts at every reset. It is an
  observation key, as in the NetHack env, so vector envs keep it per env; ``info`` has the episode's totals.

``info`` carries the episode so far: ``is_success``, ``has_key`` (the key was picked up), ``door_open`` (the door
was opened), ``coverage`` (cells visited / cells of the grid's interior), ``messages`` and ``distinct_messages`` (without the turn).

>>> import gymnasium as gym, robo_reward
>>> env = gym.make("robo_reward/TextDoorKey-v0")
>>> obs, info = env.reset(seed=0)
>>> obs["policy"].shape, int(obs["message_count"][0]), info["has_key"]
((984,), 0, False)
>>> env.close()
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

MESSAGE_BYTES = 256
AMBIENT = ("You hear water dripping.", "You hear a distant rumble.", "A cold draft blows past you.",
           "The torches flicker.", "Your footsteps echo.", "You hear someone counting money.")
"""Distractor messages printed on random steps (no progress towards any goal)."""
_OBJECTS, _COLOURS, _STATES = 11, 6, 3
_VIEW = 7 * 7 * (_OBJECTS + _COLOURS + _STATES) + 4


def encode_message(text: str) -> np.ndarray:
    """The zero-padded message bytes of ``text`` (latin-1, at most :data:`MESSAGE_BYTES`).

    :param text: the message.
    """
    raw = text.encode("latin-1")[:MESSAGE_BYTES]
    out = np.zeros(MESSAGE_BYTES, np.uint8)
    out[:len(raw)] = np.frombuffer(raw, np.uint8)
    return out


class TextDoorKeyEnv(gym.Env[dict[str, np.ndarray], np.int64]):
    """DoorKey with messages (see the module docstring).

    :param size: grid side, walls included (MiniGrid's DoorKey: 5, 6, 8 or 16); episodes last ``10 * size**2``
        steps at most.
    :param variants: prefix every message with the turn (most messages are then unseen by a lookup table).
    :param ambient: probability that a step without an event prints a random :data:`AMBIENT` distractor.
    :param render_mode: ``None`` or ``"rgb_array"`` (MiniGrid's top view).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012 (gymnasium declares it a plain class attribute)

    def __init__(self, size: int = 8, *, variants: bool = False, ambient: float = 0.05,
                 render_mode: str | None = None) -> None:
        from minigrid.envs import DoorKeyEnv

        if size < 5:
            raise ValueError(f"size must be >= 5 (walls included), got {size}")
        if not 0.0 <= ambient <= 1.0:
            raise ValueError(f"ambient must be a probability in [0, 1], got {ambient}")
        self.size, self.variants, self.ambient, self.render_mode = int(size), bool(variants), float(ambient), render_mode
        self._grid = DoorKeyEnv(size=self.size, render_mode=render_mode)
        self.action_space = spaces.Discrete(int(self._grid.action_space.n))
        self.observation_space = spaces.Dict({
            "policy": spaces.Box(0.0, 1.0, (_VIEW,), np.float32),
            "message": spaces.Box(0, 255, (MESSAGE_BYTES,), np.uint8),
            "message_count": spaces.Box(0, np.iinfo(np.int32).max, (1,), np.int32),
        })
        self._index_base = np.arange(49)[:, None] * (_OBJECTS + _COLOURS + _STATES) + [0, _OBJECTS, _OBJECTS + _COLOURS]
        self._counts: dict[str, int] = {}
        self._visited: set[tuple[int, int]] = set()
        self._has_key = self._door_open = self._success = False
        self._messages = 0

    def _view(self, image: np.ndarray, direction: int) -> np.ndarray:
        out = np.zeros(_VIEW, np.float32)
        codes = np.minimum(image.reshape(49, 3).astype(np.int64), [_OBJECTS - 1, _COLOURS - 1, _STATES - 1])
        out[(self._index_base + codes).ravel()] = 1.0
        out[_VIEW - 4 + int(direction)] = 1.0
        return out

    def _observe(self, grid_obs: dict[str, Any], text: str) -> dict[str, np.ndarray]:
        count = 0
        if text:
            count = self._counts[text] = self._counts.get(text, 0) + 1
            self._messages += 1
            if self.variants:
                text = f"Turn {self._grid.step_count}: {text}"
        return {"policy": self._view(grid_obs["image"], grid_obs["direction"]),
                "message": encode_message(text), "message_count": np.array([count], np.int32)}

    def _info(self) -> dict[str, Any]:
        return {"is_success": self._success, "has_key": self._has_key, "door_open": self._door_open,
                "coverage": len(self._visited) / float((self.size - 2) ** 2), "messages": self._messages,
                "distinct_messages": len(self._counts)}

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        grid_seed = int(self.np_random.integers(0, 2**31 - 1)) if seed is not None else None
        grid_obs, _ = self._grid.reset(seed=grid_seed)
        self._counts, self._messages = {}, 0
        self._has_key = self._door_open = self._success = False
        self._visited = {tuple(int(v) for v in self._grid.agent_pos)}
        return self._observe(grid_obs, ""), self._info()

    def _event(self, action: int, front: Any, before: tuple[bool, bool], carried: Any, moved: bool,
               success: bool) -> str:
        g, acts = self._grid, self._grid.actions
        if success:
            return "You reach the goal square!"
        if action == acts.pickup:
            if carried is None and g.carrying is not None:
                return f"You pick up the {g.carrying.color} {g.carrying.type}."
            return "There is nothing here to pick up." if front is None or not front.can_pickup() else ""
        if action == acts.drop and carried is not None and g.carrying is None:
            return f"You drop the {carried.color} {carried.type}."
        if action == acts.toggle and front is not None and front.type == "door":
            was_open, was_locked = before
            if was_locked:
                return f"You unlock the {front.color} door." if front.is_open else f"This {front.color} door is locked."
            if front.is_open != was_open:
                return f"The {front.color} door opens." if front.is_open else f"You close the {front.color} door."
        if action == acts.forward and not moved and front is not None:
            if front.type == "wall":
                return "There is a wall in the way."
            if front.type == "door":
                return f"This {front.color} door is locked." if front.is_locked else f"The {front.color} door is closed."
        return ""

    def step(self, action: np.int64 | int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        g, a = self._grid, int(action)
        front = g.grid.get(*g.front_pos)
        before = (bool(getattr(front, "is_open", False)), bool(getattr(front, "is_locked", False)))
        carried, pos = g.carrying, tuple(int(v) for v in g.agent_pos)
        grid_obs, reward, terminated, truncated, _ = g.step(a)
        new_pos = tuple(int(v) for v in g.agent_pos)
        self._visited.add(new_pos)
        self._success = bool(terminated and reward > 0)
        text = self._event(a, front, before, carried, new_pos != pos, self._success)
        if not text and self.ambient > 0 and self.np_random.random() < self.ambient:
            text = AMBIENT[int(self.np_random.integers(len(AMBIENT)))]
        self._has_key |= g.carrying is not None and g.carrying.type == "key"
        self._door_open |= bool(front is not None and front.type == "door" and front.is_open)
        return self._observe(grid_obs, text), float(reward), bool(terminated), bool(truncated), self._info()

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        return self._grid.render() if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        self._grid.close()
