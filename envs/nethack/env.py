"""The NetHack environment with message text for rewards (registered ids in :mod:`robo_reward.envs.nethack`).

ONI (Zheng et al., arXiv 2410.23022) pays an intrinsic reward for NetHack's in-game messages, so the env shows
rewards the message and how often it has appeared in the episode, while the policy sees a compact view that two
shared CPU cores can train on. Observations are a ``Dict``:

* ``policy``: ``float32`` in [0, 1], the agent's ``crop`` x ``crop`` (9 x 9) neighbourhood of the map, each cell one-hot
  over :data:`NUM_CATEGORIES` symbol classes (dark, wall, floor, corridor, door, stairs down/up, you, monster,
  item, dungeon feature, other), followed by :data:`NUM_STATS` bottom-line features (HP fraction, depth, level,
  hunger, gold, position). The paper's agent reads the full glyph map, message and bottom line with a CNN;
  the crop stands in for it here (reconstruction: the small-scale build trains an MLP).
* ``message``: the 256 message bytes (NLE's ``message``; zero-padded, empty when nothing was printed).
* ``message_count``: how many times this exact message has been printed in the episode so far, this step
  included (0 for no message). The count restarts at every reset, as in the paper's per-episode count.

Tasks (``task``): ``score`` (NLE's NetHackScore: score delta with a penalty for frozen steps), ``staircase``
(NetHackStaircase: reach the ``>`` on level 1, reward 1), ``oracle`` (NetHackOracle: stand next to the Oracle),
and ``staircase_lvl3`` / ``staircase_lvl4`` (ONI's StaircaseLvlN: reach dungeon level N, reward 1). The
paper uses NLE's extended action set; these envs use NLE's 23 task actions (moves, stairs, kick, eat, search,
...), which reach every goal above with a smaller policy head.

Every step's ``info`` carries the episode so far, so the final step has the per-episode metrics: ``depth``
(deepest dungeon level reached), ``score`` (the in-game score), ``messages`` (non-empty messages printed),
``distinct_messages``, and for the goal tasks ``is_success``. Episodes are seeded: ``reset(seed=s)`` seeds
NetHack's core and display generators (no reseeding), and later resets draw their seeds from that stream.

>>> import gymnasium as gym, robo_reward
>>> env = gym.make("robo_reward/NetHackStaircase-v0")
>>> obs, info = env.reset(seed=0)
>>> obs["policy"].shape, obs["message"].shape, info["depth"]
((979,), (256,), 1)
>>> env.close()
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

TASK_CLASSES = ("score", "staircase", "oracle", "staircase_lvl3", "staircase_lvl4")
NUM_CATEGORIES = 12
NUM_STATS = 7
MESSAGE_BYTES = 256
_BL_X, _BL_Y, _BL_SCORE, _BL_HP, _BL_HPMAX, _BL_DEPTH, _BL_GOLD, _BL_XLVL, _BL_HUNGER = 0, 1, 9, 10, 11, 12, 13, 18, 21
_SYMBOLS = {1: "|-", 2: ".", 3: "#", 4: "+", 5: ">", 6: "<", 7: "@", 9: ")[%?/=!(\"*$`0", 10: "{_\\^}"}


def _category_table() -> np.ndarray:
    table = np.full(256, NUM_CATEGORIES - 1, dtype=np.int64)
    table[ord(" ")] = table[0] = 0
    for cat, chars in _SYMBOLS.items():
        table[[ord(c) for c in chars]] = cat
    letters = [ord(c) for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ&:;'~"]
    table[letters] = 8
    return table


CATEGORIES = _category_table()
"""Map character code -> symbol class (0 dark ... 11 other) for the policy's one-hot crop."""
_ONEHOT = np.eye(NUM_CATEGORIES, dtype=np.float32)[CATEGORIES]


def decode_message(message: np.ndarray) -> str:
    """The text of one NLE ``message`` byte array (up to the first zero byte, trailing spaces kept)."""
    return bytes(np.asarray(message, dtype=np.uint8)).split(b"\0", 1)[0].decode("latin-1")


def _make_nle(task: str, **kwargs: Any) -> Any:
    from nle.env import tasks

    if task.startswith("staircase_lvl"):
        target = int(task.removeprefix("staircase_lvl"))

        class DepthStaircase(tasks.NetHackStaircase):
            """Success once the dungeon level reaches ``target`` (ONI's StaircaseLvlN)."""

            def _is_episode_end(self, observation: Any) -> Any:
                depth = observation[self._blstats_index][_BL_DEPTH]
                return self.StepStatus.TASK_SUCCESSFUL if depth >= target else self.StepStatus.RUNNING

        return DepthStaircase(**kwargs)
    cls = {"score": tasks.NetHackScore, "staircase": tasks.NetHackStaircase, "oracle": tasks.NetHackOracle}[task]
    return cls(**kwargs)


class NetHackTextEnv(gym.Env[dict[str, np.ndarray], np.int64]):
    """A NetHack task with the message text and its per-episode count exposed (see the module docstring).

    :param task: one of :data:`TASK_CLASSES`.
    :param crop: side of the map neighbourhood the policy sees (odd).
    :param character: NLE character string (``"mon-hum-neu-mal"``: the monk, NLE's and the paper's default).
    :param render_mode: ``None`` or ``"ansi"`` (the map as text).
    """

    metadata = {"render_modes": ["ansi"]}  # noqa: RUF012 (gymnasium declares it a plain class attribute)

    def __init__(self, task: str = "score", *, crop: int = 9, character: str = "mon-hum-neu-mal",
                 render_mode: str | None = None) -> None:
        if task not in TASK_CLASSES:
            raise ValueError(f"task must be one of {TASK_CLASSES}, got {task!r}")
        if crop < 3 or crop % 2 == 0:
            raise ValueError(f"crop must be an odd number >= 3, got {crop}")
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.task, self.crop, self.render_mode = task, int(crop), render_mode
        self.has_success = task != "score"
        self._nle = _make_nle(task, character=character, observation_keys=("glyphs", "chars", "blstats", "message"),
                              max_episode_steps=10**9, render_mode=None)
        self.action_space = spaces.Discrete(int(self._nle.action_space.n))
        size = self.crop * self.crop * NUM_CATEGORIES + NUM_STATS
        self.observation_space = spaces.Dict({
            "policy": spaces.Box(0.0, 1.0, (size,), np.float32),
            "message": spaces.Box(0, 255, (MESSAGE_BYTES,), np.uint8),
            "message_count": spaces.Box(0, np.iinfo(np.int32).max, (1,), np.int32),
        })
        self._counts: dict[str, int] = {}
        self._padded = np.full((21 + crop - 1, 79 + crop - 1), ord(" "), np.uint8)
        self._depth = self._score = self._messages = 0
        self._success = False

    @property
    def actions(self) -> tuple[Any, ...]:
        """NLE's action for each index of ``action_space`` (e.g. ``actions.index(nle.nethack.MiscDirection.UP)``)."""
        return tuple(self._nle.actions)

    def _observe(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        text = decode_message(raw["message"])
        count = 0
        if text:
            count = self._counts[text] = self._counts.get(text, 0) + 1
            self._messages += 1
        bl = raw["blstats"]
        half = self.crop // 2
        if bl[_BL_DEPTH] > 0:
            self._depth = max(self._depth, int(bl[_BL_DEPTH]))
            self._score = max(self._score, int(bl[_BL_SCORE]))
            self._padded[half:half + 21, half:half + 79] = raw["chars"]
        x, y = int(bl[_BL_X]), int(bl[_BL_Y])
        onehot = _ONEHOT[self._padded[y:y + self.crop, x:x + self.crop]].ravel()
        stats = np.array([bl[_BL_HP] / max(1, bl[_BL_HPMAX]), bl[_BL_DEPTH] / 10, bl[_BL_XLVL] / 30,
                          bl[_BL_HUNGER] / 6, min(int(bl[_BL_GOLD]), 1000) / 1000, x / 79, y / 21], np.float32)
        np.clip(stats, 0.0, 1.0, out=stats)
        return {"policy": np.concatenate([onehot, stats]),
                "message": np.asarray(raw["message"], np.uint8).copy(),
                "message_count": np.array([count], np.int32)}

    def _info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"depth": self._depth, "score": self._score, "messages": self._messages,
                                "distinct_messages": len(self._counts)}
        if self.has_success:
            info["is_success"] = self._success
        return info

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        core, disp = (int(s) for s in self.np_random.integers(0, 2**31 - 1, size=2))
        self._nle.seed(core, disp, reseed=False)
        raw, _ = self._nle.reset()
        self._counts, self._depth, self._score, self._messages, self._success = {}, 0, 0, 0, False
        self._padded.fill(ord(" "))
        return self._observe(raw), self._info()

    def step(self, action: np.int64 | int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        raw, reward, terminated, truncated, nle_info = self._nle.step(int(action))
        status = nle_info.get("end_status")
        self._success = self.has_success and status is not None and int(status) == 2
        obs = self._observe(raw)
        return obs, float(reward), bool(terminated), bool(truncated), self._info()

    def render(self) -> str | None:  # type: ignore[override]
        if self.render_mode != "ansi":
            return None
        half = self.crop // 2
        return "\n".join(bytes(row).decode("latin-1") for row in self._padded[half:half + 21, half:half + 79])

    def close(self) -> None:
        if getattr(self, "_nle", None) is not None:
            self._nle.close()
            self._nle = None  # type: ignore[assignment]
