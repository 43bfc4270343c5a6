"""The noisy-TV MiniGrid environment (registered ids in :mod:`robo_reward.envs.noisy_tv`).

A fixed four-room layout (the agent starts in the top-left room, the goal is in the far corner of the
bottom-right room) with one of three TVs, after the pycolab mazes of Jarrett et al. ("Curiosity in Hindsight",
ICML 2023, section 5.1), which MiniGrid stands in for:

* ``tv="on_demand"`` (``robo_reward/NoisyTVOnDemand-v0``): the unused ``done`` action (id 6) is a remote
  control. Pressing it fills the far ``noise_rows`` rows of the agent's view with fresh random cells for that
  step (the paper's on-demand, remote-controlled TV). Each noise cell is drawn uniformly from the cells the view
  normally holds (unseen, empty floor, grey wall), so a model cannot tell noise from scenery cell by cell and
  cannot simply stop looking at those positions, which carry the layout the rest of the time.
* ``tv="cell"`` (``robo_reward/NoisyTVCell-v0``): a TV set into the start room's top wall changes to a random
  colour every step while it is in view, so looking at it pays a world model an unpredictable observation.
* ``tv="none"`` (``robo_reward/NoisyTVControl-v0``): the same layout, remote and TV with the noise switched off
  (the remote does nothing and the TV keeps its colour): the no-noise control.

Observations are one flat ``uint8`` vector for MLPs and SB3's ``MlpPolicy``: the egocentric 7x7x3 MiniGrid view
(object, colour, state codes per cell, flattened in MiniGrid's ``[x, y, channel]`` order) and the agent's direction.
``observation_space.high`` gives each element's largest code, so models can one-hot it. Actions are MiniGrid's 7.

Every step's ``info`` holds ``agent_pos``, ``coverage`` (cells visited this episode / cells reachable),
``tv_pressed`` (the remote was pressed), ``tv_in_view`` (the TV cell is visible after the step) and
``tv_noise`` (noise was shown this step), and the episode so far as fractions of its steps: ``tv_fraction`` (noise
shown), ``pressed_fraction`` (remote pressed) and ``in_view_fraction`` (TV in view). At an episode's last step these
are the episode's metrics, which ``eval.info_metrics`` reads (coverage and time spent on the TV).

>>> import gymnasium as gym, robo_reward
>>> env = gym.make("robo_reward/NoisyTVOnDemand-v0")
>>> obs, info = env.reset(seed=0)
>>> obs.shape, info["coverage"] == 1 / env.unwrapped.num_reachable
((148,), True)
>>> obs, r, terminated, truncated, info = env.step(6)
>>> bool(info["tv_noise"]), info["agent_pos"]
(True, (2, 2))
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
from gymnasium import spaces
from minigrid.core.constants import COLOR_TO_IDX, IDX_TO_COLOR, OBJECT_TO_IDX, STATE_TO_IDX
from minigrid.core.grid import Grid
from minigrid.core.mission import MissionSpace
from minigrid.core.world_object import Goal, Wall
from minigrid.minigrid_env import MiniGridEnv

TV_MODES = ("on_demand", "cell", "none")
REMOTE_ACTION = 6
SCENERY = np.array([[OBJECT_TO_IDX["unseen"], 0, 0], [OBJECT_TO_IDX["empty"], 0, 0],
                    [OBJECT_TO_IDX["wall"], COLOR_TO_IDX["grey"], 0]], dtype=np.uint8)


class NoisyTVEnv(MiniGridEnv):
    """Four rooms with a noisy TV (see the module docstring).

    :param tv: ``"on_demand"``, ``"cell"`` or ``"none"``.
    :param room_size: interior width of each room; the grid is ``2 * room_size + 3`` cells wide.
    :param noise_rows: rows of the view, farthest first, that the on-demand TV overwrites with noise.
    :param max_steps: episode length before truncation.
    """

    def __init__(self, tv: str = "on_demand", *, room_size: int = 5, noise_rows: int = 5, max_steps: int = 256,
                 agent_view_size: int = 7, render_mode: str | None = None) -> None:
        if tv not in TV_MODES:
            raise ValueError(f"tv must be one of {TV_MODES}, got {tv!r}")
        if room_size < 3:
            raise ValueError(f"room_size must be >= 3 so each room has a door and space, got {room_size}")
        if not 1 <= noise_rows <= agent_view_size:
            raise ValueError(f"noise_rows must be in [1, agent_view_size={agent_view_size}], got {noise_rows}")
        self.tv, self.room_size, self.noise_rows = tv, int(room_size), int(noise_rows)
        size = 2 * self.room_size + 3
        super().__init__(mission_space=MissionSpace(mission_func=lambda: "explore"), width=size, height=size,
                         max_steps=int(max_steps), agent_view_size=agent_view_size, render_mode=render_mode)
        view = agent_view_size * agent_view_size
        cell_high = [max(OBJECT_TO_IDX.values()), max(COLOR_TO_IDX.values()), max(STATE_TO_IDX.values())]
        high = np.concatenate([np.tile(cell_high, view), [3]])
        self.observation_space = spaces.Box(low=0, high=high.astype(np.uint8), dtype=np.uint8)
        self.tv_pos = (2 + self.room_size // 2, 0)
        self.start_pos = (2, 2)
        self._noise: np.ndarray | None = None
        self._visited: set[tuple[int, int]] = set()
        self.num_reachable = 0

    # -- layout ----------------------------------------------------------------------------------------------
    def _gen_grid(self, width: int, height: int) -> None:
        self.grid = Grid(width, height)
        self.grid.wall_rect(0, 0, width, height)
        mid, r = self.room_size + 1, self.room_size
        self.grid.horz_wall(0, mid)
        self.grid.vert_wall(mid, 0)
        for pos in ((mid, 1 + r // 3), (mid, mid + 1 + 2 * r // 3), (1 + 2 * r // 3, mid), (mid + 1 + r // 3, mid)):
            self.grid.set(*pos, None)
        self.tv_screen = Wall(color="blue")
        self.grid.set(*self.tv_pos, self.tv_screen)
        self.put_obj(Goal(), width - 2, height - 2)
        self.agent_pos, self.agent_dir = self.start_pos, 0
        self.num_reachable = self._count_reachable()

    def _count_reachable(self) -> int:
        seen, todo = {self.start_pos}, deque([self.start_pos])
        while todo:
            x, y = todo.popleft()
            for nx, ny in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
                cell = self.grid.get(nx, ny)
                if (nx, ny) not in seen and (cell is None or cell.can_overlap()):
                    seen.add((nx, ny))
                    todo.append((nx, ny))
        return len(seen)

    # -- observations ----------------------------------------------------------------------------------------
    def gen_obs(self) -> np.ndarray:  # type: ignore[override]
        grid, vis_mask = self.gen_obs_grid()
        image = grid.encode(vis_mask)
        if self._noise is not None:
            image[:, : self.noise_rows] = self._noise
        return np.concatenate([image.reshape(-1), [self.agent_dir]]).astype(np.uint8)

    def tv_visible(self) -> bool:
        """Whether the TV cell is inside the agent's view and not hidden behind a wall."""
        coords = self.relative_coords(*self.tv_pos)
        if coords is None:
            return False
        _, vis_mask = self.gen_obs_grid()
        return bool(vis_mask[coords[0], coords[1]])

    # -- dynamics --------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None,  # type: ignore[override]
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        self._noise = None
        obs: np.ndarray = super().reset(seed=seed, options=options)[0]
        self._visited = {tuple(self.agent_pos)}
        self._counts = np.zeros(3, dtype=np.int64)
        in_view = self.tv_visible()
        if self.tv == "cell" and in_view:
            obs = self._retune()
        return obs, self._info(pressed=False, in_view=in_view, noise=self.tv == "cell" and in_view)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:  # type: ignore[override]
        pressed = int(action) == REMOTE_ACTION
        noise = self.tv == "on_demand" and pressed
        self._noise = None
        if noise:
            cells = self.np_random.integers(len(SCENERY), size=(self.agent_view_size, self.noise_rows))
            self._noise = SCENERY[cells]
        obs: np.ndarray
        obs, reward, terminated, truncated, _ = super().step(action)
        self._visited.add(tuple(self.agent_pos))
        in_view = self.tv_visible()
        if self.tv == "cell" and in_view:
            obs, noise = self._retune(), True
        self._counts += (noise, pressed, in_view)
        return obs, float(reward), terminated, truncated, self._info(pressed, in_view, noise)

    def _retune(self) -> np.ndarray:
        self.tv_screen.color = IDX_TO_COLOR[int(self.np_random.integers(len(IDX_TO_COLOR)))]
        return self.gen_obs()

    def _info(self, pressed: bool, in_view: bool, noise: bool) -> dict[str, Any]:
        tv, press, view = self._counts / max(1, self.step_count)
        return {"agent_pos": tuple(int(v) for v in self.agent_pos), "coverage": len(self._visited) / self.num_reachable,
                "tv_pressed": pressed, "tv_in_view": in_view, "tv_noise": noise,
                "tv_fraction": float(tv), "pressed_fraction": float(press), "in_view_fraction": float(view)}

