"""Speed of the reward path: SB3 VecEnv steps/s raw, with a batched MLP reward, and with one call per env.

The cost to beat is the per-call overhead of the model: the batched path makes one numpy forward pass per
vector step on the observations; the per-env path calls the same net once per env, as many hand-written reward
wrappers do. Time is this process's CPU time (everything runs in it with ``DummyVecEnv``), so other jobs on a
shared machine slow the measurement less than they would wall time; modes are interleaved over repeats and
ratios are to ``raw`` within the same run.

:func:`run_pixel_perf` is the pixel mode (``robo-reward perf --pixels CAMERA ...``): the env renders its cameras
every step (``render``, the baseline), and each pixel reward registered in the ``robo_reward.pixel_perf``
entry-point group reads them (Dopamine registers ``grm_hop``, its hop GRM, and ``grm_phi``, its per-state progress
head, both freshly built at the default size). Beside each mode's env steps/s it reports the CPU time per vector
step spent inside the inner VecEnv (physics and rendering) and the rest (the reward path, render excluded).

When the `imitation <https://imitation.readthedocs.io>`_ library can be imported (``imitation_path`` or the
``ROBO_REWARD_IMITATION_PATH`` environment variable names a folder to put on ``sys.path``, e.g. one made with
``pip install --no-deps --target DIR imitation==1.0.1``), its ``RewardVecEnvWrapper`` with a ``BasicRewardNet``
of the same size and inputs runs beside ours as mode ``imitation_mlp``. It is never a dependency.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from robo_reward.models import MLPReward, as_tensor
from robo_reward.protocol import FunctionReward, TransitionBatch
from robo_reward.sb3 import RewardVecEnvWrapper

IMITATION_PATH_ENV = "ROBO_REWARD_IMITATION_PATH"
REWARD_MODE = "reward:"
PIXEL_PERF_GROUP = "robo_reward.pixel_perf"


class TorchMLPReward(MLPReward):
    """The same MLP run by torch (eager, inference mode) instead of the numpy fast path."""

    def infer(self, batch: TransitionBatch) -> np.ndarray:
        with torch.inference_mode():
            return self.forward(batch).numpy().astype(np.float64)


class PerEnvMLPReward(MLPReward):
    """The same MLP called once per env in torch (the pattern the batched protocol replaces)."""

    def infer(self, batch: TransitionBatch) -> np.ndarray:
        assert self.module is not None
        feats = self.features(batch)
        with torch.inference_mode():
            return np.array([self.module(as_tensor(feats[i : i + 1])).item() for i in range(batch.num)])


def imitation_version(path: str | os.PathLike[str] | None = None) -> str | None:
    """The version of ``imitation`` importable (after adding ``path`` to ``sys.path``), or None."""
    path = path or os.environ.get(IMITATION_PATH_ENV)
    if path:
        path = str(Path(path).resolve())
        if not Path(path).is_dir():
            raise ValueError(f"imitation path {path} is not a folder; install it with `pip install --no-deps "
                             f"--target {path} imitation==1.0.1` or leave the option unset")
        if path not in sys.path:
            sys.path.append(path)
    try:
        import imitation
        from imitation.rewards import reward_nets, reward_wrapper  # noqa: F401
    except ImportError:
        return None
    return str(getattr(imitation, "__version__", "unknown"))


def _imitation_venv(venv: VecEnv, hidden: tuple[int, ...]) -> VecEnv:
    """imitation's reward wrapper with a ``BasicRewardNet`` on (s, a, s'), the inputs and widths of ours."""
    from imitation.rewards.reward_nets import BasicRewardNet
    from imitation.rewards.reward_wrapper import RewardVecEnvWrapper as ImitationRewardVecEnvWrapper

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = BasicRewardNet(venv.observation_space, venv.action_space, use_state=True, use_action=True,
                             use_next_state=True, use_done=False, hid_sizes=hidden)
    return ImitationRewardVecEnvWrapper(venv, reward_fn=net.predict_processed)


def _venv(mode: str, env_id: str, n_envs: int, hidden: tuple[int, ...]) -> VecEnv:
    venv = make_vec_env(env_id, n_envs=n_envs, seed=0)
    if mode == "raw":
        return venv
    if mode == "numpy":
        return RewardVecEnvWrapper(venv, FunctionReward(lambda b: -np.square(b.action).sum(1), label="ctrl"))
    if mode == "imitation_mlp":
        return _imitation_venv(venv, hidden)
    if mode.startswith(REWARD_MODE):
        return RewardVecEnvWrapper(venv, mode.removeprefix(REWARD_MODE))
    models = {"batched_mlp": MLPReward, "batched_mlp_torch": TorchMLPReward, "per_env_mlp": PerEnvMLPReward}
    return RewardVecEnvWrapper(venv, models[mode](hidden=hidden))


class _TimedVecEnv(VecEnvWrapper):
    """Adds up the process CPU time of the wrapped VecEnv's ``step_wait`` (the env's own share of a step)."""

    def __init__(self, venv: VecEnv) -> None:
        super().__init__(venv)
        self.cpu = 0.0

    def reset(self) -> Any:
        return self.venv.reset()

    def step_wait(self) -> Any:
        start = time.process_time()
        out = self.venv.step_wait()
        self.cpu += time.process_time() - start
        return out


def pixel_modes() -> tuple[str, ...]:
    """``render`` (the baseline) and every mode registered in the ``robo_reward.pixel_perf`` entry-point group."""
    return ("render", *sorted(ep.name for ep in importlib.metadata.entry_points(group=PIXEL_PERF_GROUP)))


def _pixel_venv(mode: str, env_id: str, n_envs: int, cameras: tuple[str, ...], image_size: int) -> VecEnv:
    """``render``: the env with pixel observations; any other mode: the same under the reward that the mode's
    registered factory builds from ``cameras``, ``image_size`` and the first reset's ``cameras[0]`` frames."""
    modes = pixel_modes()
    if mode not in modes:
        raise ValueError(f"unknown pixel perf mode {mode!r}; use one of {list(modes)}, or register a factory in "
                         f"the {PIXEL_PERF_GROUP!r} entry-point group")
    kwargs = {"obs_mode": "state+pixels", "cameras": list(cameras), "image_size": image_size}
    venv = _TimedVecEnv(make_vec_env(env_id, n_envs=n_envs, seed=0, env_kwargs=kwargs))
    if mode == "render":
        return venv
    (factory,) = importlib.metadata.entry_points(group=PIXEL_PERF_GROUP, name=mode)
    first = np.asarray(venv.reset()[cameras[0]])
    return RewardVecEnvWrapper(venv, factory.load()(cameras, image_size, first))


def _timed_inner(venv: VecEnv) -> _TimedVecEnv:
    inner: Any = venv
    while not isinstance(inner, _TimedVecEnv):
        inner = inner.venv
    return inner


def run_pixel_perf(env_id: str = "robo_reward/Reach-v0", n_envs: tuple[int, ...] = (4,),
                   cameras: tuple[str, ...] = ("front", "wrist"), image_size: int = 48, steps: int = 2000,
                   repeats: int = 7, modes: tuple[str, ...] | None = None,
                   out: str | Path | None = None) -> pd.DataFrame:
    """Env steps/s rendering ``cameras`` only and with each registered pixel reward on them, as ratios to render-only.

    Modes are interleaved within each repeat; ratios are medians over render's median, with the quartiles of the
    per-repeat (paired) ratios. ``env_ms`` is the median CPU ms per vector step inside the env (physics and
    rendering), ``reward_ms`` the rest of the step (the reward path with the wrapper, render excluded).

    :param env_id: a Gymnasium id of an env that takes ``obs_mode``, ``cameras`` and ``image_size``.
    :param n_envs: env counts (one table block each). :param cameras: the views the reward reads.
    :param image_size: image side in pixels. :param steps: env steps per timed repeat (divided among the envs).
    :param repeats: interleaved repeats. :param modes: modes from :func:`pixel_modes`, ``render`` first (default: all).
    :param out: folder for ``perf.csv``/``perf.md`` (rewritten after each env count).
    """
    modes = pixel_modes() if modes is None else tuple(modes)
    if not modes or modes[0] != "render":
        raise ValueError(f"pixel perf modes must start with the baseline 'render', got {list(modes)}")
    torch.set_num_threads(1)
    rows = []
    for n in n_envs:
        venvs = {m: _pixel_venv(m, env_id, n, tuple(cameras), image_size) for m in modes}
        for m in modes:
            _steps_per_second(venvs[m], 50)
        rates: dict[str, list[float]] = {m: [] for m in modes}
        split: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
        vector_steps = max(1, steps // n)
        for _ in range(repeats):
            for m in modes:
                inner = _timed_inner(venvs[m])
                inner.cpu = 0.0
                rate = _steps_per_second(venvs[m], vector_steps)
                total_ms = 1e3 * vector_steps * n / rate / vector_steps
                env_ms = 1e3 * inner.cpu / vector_steps
                rates[m].append(rate)
                split[m].append((env_ms, total_ms - env_ms))
        base = np.asarray(rates["render"])
        for m in modes:
            paired = np.asarray(rates[m]) / base
            parts = np.median(np.asarray(split[m]), axis=0)
            rows.append({"env": env_id, "n_envs": n, "mode": m, "steps_per_s": float(np.median(rates[m])),
                         "ratio_to_render": float(np.median(rates[m]) / np.median(base)),
                         "ratio_q25": float(np.quantile(paired, 0.25)), "ratio_q75": float(np.quantile(paired, 0.75)),
                         "env_ms": float(parts[0]), "reward_ms": float(parts[1])})
        for v in venvs.values():
            v.close()
        if out is not None:
            _write_pixel(pd.DataFrame(rows), Path(out), cameras, image_size, steps, repeats)
    return pd.DataFrame(rows)


def _write_pixel(table: pd.DataFrame, out: Path, cameras: tuple[str, ...], image_size: int, steps: int,
                 repeats: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "perf.csv", index=False)
    lines = [
        f"# Pixel reward-path speed on {table['env'].iloc[0]} ({len(cameras)} views {list(cameras)} at "
        f"{image_size}x{image_size}, torch threads 1, process CPU time, median of {repeats} interleaved repeats of "
        f"{steps} env steps)", "",
        "ratio to render: median env steps/s over render-only's median; IQR: quartiles of the per-repeat ratios; "
        "env ms: CPU ms per vector step inside the env (physics + rendering); reward ms: the rest (reward path)", "",
        "| n_envs | mode | env steps/s | ratio to render | IQR of paired ratios | env ms | reward ms |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {r.n_envs} | {r.mode} | {r.steps_per_s:.0f} | {r.ratio_to_render:.2f} | "
              f"{r.ratio_q25:.2f}-{r.ratio_q75:.2f} | {r.env_ms:.2f} | {r.reward_ms:.2f} |" for r in table.itertuples()]
    (out / "perf.md").write_text("\n".join(lines) + "\n")


def _steps_per_second(venv: VecEnv, steps: int) -> float:
    n = venv.num_envs
    space = venv.action_space
    actions = np.stack([space.sample() for _ in range(64)])  # type: ignore[union-attr]
    actions = np.repeat(actions[:, None], n, axis=1)
    venv.reset()
    start = time.process_time()
    for t in range(steps):
        venv.step(actions[t % 64])
    return steps * n / (time.process_time() - start)


def _ppo_steps_per_second(venv: VecEnv, steps: int) -> float:
    """Env steps/s of SB3 PPO collecting and learning (n_steps 256 per env) on ``venv``."""
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", venv, n_steps=256, batch_size=256, n_epochs=5, seed=0, device="cpu")
    start = time.process_time()
    model.learn(steps)
    return model.num_timesteps / (time.process_time() - start)


def run_perf(env_id: str = "HalfCheetah-v5", n_envs: tuple[int, ...] = (1, 8), steps: int = 2000,
             repeats: int = 3, hidden: tuple[int, ...] = (64, 64), out: str | Path | None = None,
             learn_steps: int = 0, reward: str | None = None,
             imitation_path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Measure every mode at every env count; returns (and, with ``out``, writes as CSV/markdown after each env
    count) steps/s and ratios to raw.

    :param steps: env steps per timed repeat (divided among the envs). :param repeats: interleaved repeats; the
        table reports each mode's median and the quartiles of its per-repeat ratios to raw.
    :param learn_steps: also time SB3 PPO training on the raw env and with the batched MLP reward (the cost a user
        sees in a training run, where the policy's own per-step work dilutes the reward's).
    :param reward: time this registered reward (default kwargs) instead of the MLP rewards, as mode
        ``reward:<name>``.
    :param imitation_path: folder holding the ``imitation`` package, for the side-by-side (module doc).
    """
    torch.set_num_threads(1)
    imitation = imitation_version(imitation_path)
    if reward is not None:
        from robo_reward.registry import resolve_reward

        resolve_reward(reward)
        modes = ["raw", "numpy", REWARD_MODE + reward]
    else:
        modes = ["raw", "numpy", "batched_mlp", "batched_mlp_torch", "per_env_mlp"]
    if imitation is not None and reward is None:
        modes.append("imitation_mlp")
    rows = []
    for n in n_envs:
        venvs = {m: _venv(m, env_id, n, hidden) for m in modes}
        for m in modes:
            _steps_per_second(venvs[m], 100)
        rates: dict[str, list[float]] = {m: [] for m in modes}
        if learn_steps:
            rates.update({"ppo_raw": [], f"ppo_{modes[2]}": []})
        for _ in range(repeats):
            for m in modes:
                rates[m].append(_steps_per_second(venvs[m], max(1, steps // n)))
            if learn_steps:
                rates["ppo_raw"].append(_ppo_steps_per_second(venvs["raw"], learn_steps))
                rates[f"ppo_{modes[2]}"].append(_ppo_steps_per_second(venvs[modes[2]], learn_steps))
        for m, values in rates.items():
            raw_values = rates["ppo_raw" if m.startswith("ppo_") else "raw"]
            paired = np.asarray(values) / np.asarray(raw_values)
            rows.append({"env": env_id, "n_envs": n, "mode": m, "steps_per_s": float(np.median(values)),
                         "ratio_to_raw": float(np.median(values) / np.median(raw_values)),
                         "ratio_q25": float(np.quantile(paired, 0.25)), "ratio_q75": float(np.quantile(paired, 0.75))})
        for v in venvs.values():
            v.close()
        if out is not None:
            _write(pd.DataFrame(rows), Path(out), env_id, hidden, repeats, imitation)
    return pd.DataFrame(rows)


def _write(table: pd.DataFrame, out: Path, env_id: str, hidden: tuple[int, ...], repeats: int,
           imitation: str | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "perf.csv", index=False)
    lines: list[Any] = [
        f"# Reward-path speed on {env_id} (MLP hidden {list(hidden)}, torch threads 1, process CPU time, "
        f"median of {repeats} interleaved repeats)", "",
        f"imitation side-by-side: {f'imitation {imitation}' if imitation else 'not importable, not measured'}", "",
        "ratio to raw: median steps/s over raw's median; IQR: quartiles of the per-repeat ratios (each repeat runs "
        "every mode back to back, so its ratio is paired)", "",
        "| n_envs | mode | env steps/s | ratio to raw | IQR of paired ratios |", "|---|---|---|---|---|",
    ]
    lines += [f"| {r.n_envs} | {r.mode} | {r.steps_per_s:.0f} | {r.ratio_to_raw:.2f} | "
              f"{r.ratio_q25:.2f}-{r.ratio_q75:.2f} |" for r in table.itertuples()]
    (out / "perf.md").write_text("\n".join(lines) + "\n")
