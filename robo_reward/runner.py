"""One training run: build env, reward and agent from a config, train with evaluation and checkpoints.

A run folder holds::

    config.yaml          the resolved config (what ran, after --set overrides)
    checkpoints/latest   name of the newest complete checkpoint folder (switched atomically)
    checkpoints/step_N/  agent.zip, reward.pt, replay_buffer.pkl (off-policy), state.json; the newest two are kept
    eval.csv             evaluation on the env's own reward: success rate and return against env steps
    episodes.csv         every training episode: length, each reward term's sum, success
    tb/                  TensorBoard events (SB3 logger), wandb/ when enabled (offline)
    report.md, curves.png, summary.json

A checkpoint folder is written completely before ``latest`` points at it, so a run killed at any moment resumes
(``robo-reward train --resume RUN_DIR``) from its last complete checkpoint; if that one was damaged afterwards
(a truncated file, a full disk), resuming says so and continues from the previous one.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from robo_reward.agents_registry import is_off_policy, resolve_algo, resolve_policy
from robo_reward.checkpoint import UNREADABLE, atomic_write, load_reward_state, save_reward
from robo_reward.config import (
    EVAL_COLUMNS,
    ConfigError,
    EnvConfig,
    ExperimentConfig,
    RewardConfig,
    load_config,
)
from robo_reward.errors import (
    CheckpointError,
    RunFolderError,
    UserError,
    check_env_id,
    did_you_mean,
    run_config_path,
)
from robo_reward.protocol import Reward, SpaceMismatchError
from robo_reward.registry import build_reward
from robo_reward.sb3 import (
    RelabelingDictReplayBuffer,
    RelabelingReplayBuffer,
    RewardCallback,
    RewardVecEnvWrapper,
    VecObservationKey,
)

os.environ.setdefault("MUJOCO_GL", "egl")


def make_env_fn(cfg: EnvConfig, seed: int, rank: int) -> Callable[[], gym.Env]:
    """A thunk building one monitored env (for SB3's VecEnvs)."""

    def thunk() -> gym.Env:
        import robo_reward  # noqa: F401  (registers the package's envs in subprocesses)

        kwargs = dict(cfg.kwargs)
        if cfg.max_episode_steps is not None:
            kwargs["max_episode_steps"] = cfg.max_episode_steps
        env = gym.make(cfg.id, **kwargs)
        for w in cfg.wrappers:
            module, _, attr = w.entry_point.partition(":")
            import importlib

            env = getattr(importlib.import_module(module), attr)(env, **w.kwargs)
        env = Monitor(env, info_keywords=("is_success",) if _has_success(env) else ())
        env.action_space.seed(seed + rank)
        return env

    return thunk


def _has_success(env: gym.Env) -> bool:
    return bool(getattr(env.unwrapped, "has_success", False))


def make_vec(cfg: EnvConfig, seed: int, n_envs: int | None = None) -> VecEnv:
    """``n_envs`` copies of the configured env (monitored, seeded); no reward design, no key selection.

    An unknown ``env.id`` or an ``env.kwargs`` key the env does not take is a :class:`ConfigError`.
    """
    check_env_id(cfg.id)
    n = n_envs or cfg.n_envs
    fns = [make_env_fn(cfg, seed, i) for i in range(n)]
    try:
        venv: VecEnv = (SubprocVecEnv(fns, start_method="spawn") if cfg.vec_env == "subproc" and n > 1
                        else DummyVecEnv(fns))
    except TypeError as exc:
        if "argument" not in str(exc):
            raise
        raise ConfigError(f"env {cfg.id!r} cannot be built with env.kwargs {cfg.kwargs}: {exc}; fix env.kwargs "
                          "(or the kwargs of env.wrappers) to the env's parameters") from exc
    venv.seed(seed)
    return venv


def build_design(cfg: RewardConfig) -> Reward | None:
    """The configured reward terms as one reward (None: the env's own reward alone)."""
    if not cfg.terms:
        return None
    specs, weights = [], []
    for term in cfg.terms:
        term = dict(term)
        weights.append(float(term.pop("weight", 1.0)))
        specs.append(term)
    rewards = [_build_term(i, spec) for i, spec in enumerate(specs)]
    if len(specs) == 1 and weights[0] == 1.0:
        return rewards[0]
    from robo_reward.shaping import WeightedSum

    return WeightedSum(rewards, weights=weights)


def _build_term(index: int, spec: dict[str, Any]) -> Reward:
    try:
        return build_reward(spec)
    except UserError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        raise ConfigError(f"reward.terms[{index}] ({spec.get('name')!r}) cannot be built: {message}; fix that "
                          "term's keys in the config (`robo-reward rewards` lists the registered rewards)") from exc


def _check_agent_kwargs(name: str, algo: type, kwargs: dict[str, Any]) -> None:
    """Name an ``agent.kwargs`` key the algorithm does not take before SB3 raises a bare TypeError."""
    owned = {"policy": "agent.policy", "env": "env:", "seed": "seed: (or --seed)", "verbose": "the runner (0)"}
    for key in kwargs:
        if key in owned:
            raise ConfigError(f"agent.kwargs.{key} is set by {owned[key]}, not agent.kwargs; remove it")
    params = inspect.signature(algo).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    valid = sorted(k for k in params if k not in owned and not k.startswith("_"))
    for key in kwargs:
        if key not in params:
            raise ConfigError(f"agent.kwargs.{key} is not a parameter of {name}{did_you_mean(key, valid)}; "
                              f"valid: {', '.join(valid)}")


class _UnloadableCheckpoint(CheckpointError):
    """One checkpoint folder of the run could not be loaded (:meth:`TrainingRun.restore` may try the previous)."""


def _step_of(folder: Path) -> int:
    try:
        return int(folder.name.removeprefix("step_"))
    except ValueError:
        return -1


class _Metrics:
    """Evaluation rows and training-episode rows of a run, written to CSV and kept in checkpoints."""

    def __init__(self) -> None:
        self.eval: list[dict[str, float]] = []
        self.episodes: list[dict[str, float]] = []

    def write(self, run_dir: Path) -> None:
        for name, rows in (("eval.csv", self.eval), ("episodes.csv", self.episodes)):
            if rows:
                frame = pd.DataFrame(rows)
                atomic_write(run_dir / name, functools.partial(frame.to_csv, index=False))

    def state(self) -> dict[str, Any]:
        return {"eval": self.eval, "episodes": self.episodes}

    def load(self, state: dict[str, Any]) -> None:
        self.eval, self.episodes = list(state["eval"]), list(state["episodes"])


class TrainingRun:
    """Builds and trains one (config, seed) run in ``run_dir``; :meth:`resume` continues a killed one."""

    def __init__(self, cfg: ExperimentConfig, run_dir: str | Path, *, seed: int | None = None,
                 progress: bool | None = None) -> None:
        self.cfg = cfg
        self.seed = cfg.seed if seed is None else seed
        self.run_dir = Path(run_dir)
        self.progress = cfg.logging.progress if progress is None else progress
        self.metrics = _Metrics()
        self.wall_time = 0.0
        self.model: BaseAlgorithm | None = None
        self.reward: Reward | None = None
        self.reward_callback: RewardCallback | None = None
        self._wandb: Any = None
        self.observation_space: gym.Space | None = None

    # -- construction -------------------------------------------------------------------------------------
    def _build_env(self) -> VecEnv:
        venv = make_vec(self.cfg.env, self.seed)
        self.reward = build_design(self.cfg.reward)
        if self.reward is not None:
            try:
                venv = RewardVecEnvWrapper(venv, self.reward, extrinsic_weight=self.cfg.reward.extrinsic_weight,
                                           checkpoint=self.cfg.reward.checkpoint)
            except SpaceMismatchError as exc:
                venv.close()
                raise ConfigError(f"reward.terms do not fit env {self.cfg.env.id!r}: {exc}; change the term's "
                                  "kwargs (e.g. indices into the observation) or env.id") from exc
        return self._policy_view(venv)

    def _policy_view(self, venv: VecEnv) -> VecEnv:
        key = self.cfg.env.policy_obs
        if key is None or not isinstance(venv.observation_space, gym.spaces.Dict):
            return venv
        return VecObservationKey(venv, key)

    def _agent_kwargs(self) -> dict[str, Any]:
        kwargs = copy.deepcopy(self.cfg.agent.kwargs)  # SB3 writes into policy_kwargs
        relabel = self.cfg.agent.relabel
        if is_off_policy(self.cfg.agent.algo) and self.reward is not None and relabel is not False:
            if not self.reward.can_relabel:
                if relabel:
                    raise ConfigError(f"agent.relabel=true but reward '{self.reward.name}' cannot be recomputed for "
                                     "stored transitions (it is stateful or reads infos); set agent.relabel: false")
            else:
                dict_obs = isinstance(self.observation_space, gym.spaces.Dict)
                kwargs["replay_buffer_class"] = RelabelingDictReplayBuffer if dict_obs else RelabelingReplayBuffer
        return kwargs

    def _configure_logging(self, model: BaseAlgorithm) -> None:
        formats = ["csv"] + (["tensorboard"] if self.cfg.logging.tensorboard else [])
        model.set_logger(configure(str(self.run_dir / "tb"), formats))
        if self.cfg.logging.wandb:
            import wandb

            mode = os.environ.setdefault("WANDB_MODE", "offline")
            if mode not in ("online", "offline", "disabled", "shared"):
                raise UserError(f"WANDB_MODE={mode!r}; set it to online, offline, disabled or shared")
            self._wandb = wandb.init(project=self.cfg.logging.wandb_project, dir=str(self.run_dir),
                                     name=f"{self.cfg.name}-s{self.seed}", config=self.cfg.model_dump(mode="json"),
                                     mode=mode, reinit="finish_previous")  # type: ignore[arg-type]

    def setup(self) -> None:
        """Build env, reward and a fresh agent, then create the run folder (a config that cannot be built leaves
        no folder behind); a mistake in the config is a :class:`ConfigError` naming the key."""
        torch.set_num_threads(self.cfg.agent.torch_threads)
        set_random_seed(self.seed)
        venv = self._build_env()
        self.observation_space = venv.observation_space
        self.model = self._make_agent(venv)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.run_dir / "config.yaml", lambda tmp: Path(tmp).write_text(self.cfg.dump()))
        if self.cfg.agent.warm_start is not None:
            self._warm_start(self.model)
        if self.cfg.agent.demo_buffer is not None:
            self._fill_demo_buffer(self.model)
        self._configure_logging(self.model)

    def _make_agent(self, venv: VecEnv) -> BaseAlgorithm:
        agent = self.cfg.agent
        algo = resolve_algo(agent.algo)
        _check_agent_kwargs(agent.algo, algo, agent.kwargs)
        kwargs = self._agent_kwargs()
        try:
            model = algo(resolve_policy(agent.policy), venv, seed=self.seed, verbose=0, **kwargs)
        except (TypeError, ValueError, AssertionError) as exc:
            if isinstance(exc, UserError):
                raise
            venv.close()
            raise ConfigError(f"agent {agent.algo} (policy {agent.policy!r}) cannot be built on env "
                              f"{self.cfg.env.id!r} with agent.kwargs {agent.kwargs}: {type(exc).__name__}: {exc}; "
                              "fix agent.algo, agent.policy or agent.kwargs") from exc
        self._check_discount(model)
        return model

    def _check_discount(self, model: BaseAlgorithm) -> None:
        """Hand the learner's gamma to the reward now (RewardCallback does it again at training start), so a
        shaping term configured with another gamma is a ConfigError before the run folder exists."""
        gamma = getattr(model, "gamma", None)
        if self.reward is None or gamma is None:
            return
        try:
            self.reward.set_discount(float(gamma))
        except ValueError as exc:
            raise ConfigError(f"reward.terms do not fit agent {self.cfg.agent.algo} (gamma={gamma}): {exc}") from exc

    def _warm_start(self, model: BaseAlgorithm) -> None:
        from robo_reward.datasets import load_demos
        from robo_reward.warmstart import behaviour_clone, demo_pairs

        ws = self.cfg.agent.warm_start
        assert ws is not None
        episodes = load_demos(ws.dataset, root=ws.root)[: ws.episodes]
        obs, actions = demo_pairs(episodes, ws.obs_key or self.cfg.env.policy_obs)
        mse = behaviour_clone(model.policy, obs, actions, epochs=ws.epochs, batch_size=ws.batch_size, lr=ws.lr,
                              log_std=ws.log_std, seed=self.seed)
        (self.run_dir / "warm_start.json").write_text(json.dumps(
            {"dataset": ws.dataset, "episodes": len(episodes), "pairs": len(obs), "mse": mse}))

    def _fill_demo_buffer(self, model: BaseAlgorithm) -> None:
        from robo_reward.datasets import load_demos
        from robo_reward.demo_buffer import fill_replay_buffer

        db = self.cfg.agent.demo_buffer
        assert db is not None
        if not isinstance(model, OffPolicyAlgorithm):
            raise ConfigError(f"agent.demo_buffer needs an off-policy agent with a replay buffer (SAC, TD3, DQN); "
                              f"{self.cfg.agent.algo} has none: remove agent.demo_buffer or change agent.algo")
        episodes = load_demos(db.dataset, root=db.root)[: db.episodes]
        episodes = episodes[: max(1, round(db.fraction * len(episodes)))]
        added = fill_replay_buffer(
            model.replay_buffer, episodes, reward=self.reward,  # type: ignore[arg-type]
            extrinsic_weight=self.cfg.reward.extrinsic_weight,
            num_envs=model.n_envs, obs_key=db.obs_key or self.cfg.env.policy_obs,
            scale_action=model.policy.scale_action if isinstance(model.action_space, gym.spaces.Box) else None)
        (self.run_dir / "demo_buffer.json").write_text(json.dumps(
            {"dataset": db.dataset, "episodes": len(episodes), "transitions": added}))

    # -- checkpoints --------------------------------------------------------------------------------------
    @property
    def checkpoint_root(self) -> Path:
        return self.run_dir / "checkpoints"

    def checkpoints(self) -> list[Path]:
        """The complete checkpoint folders (``step_N/`` holding a ``state.json``), newest first: the one
        ``checkpoints/latest`` names, then the others by step."""
        complete = sorted((p for p in self.checkpoint_root.glob("step_*") if (p / "state.json").is_file()),
                          key=_step_of, reverse=True)
        pointer = self.checkpoint_root / "latest"
        named = self.checkpoint_root / pointer.read_text().strip() if pointer.is_file() else None
        return sorted(complete, key=lambda p: p != named)

    def latest_checkpoint(self) -> Path | None:
        """The newest complete checkpoint folder, or None."""
        found = self.checkpoints()
        return found[0] if found else None

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/step_N/`` completely, point ``latest`` at it, and keep the previous complete one
        (so a checkpoint damaged after writing still leaves one to resume from); older ones are deleted."""
        assert self.model is not None
        step = int(self.model.num_timesteps)
        folder = self.checkpoint_root / f"step_{step}"
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        self.model.save(folder / "agent.zip")
        if self.reward is not None:
            save_reward(self.reward, folder / "reward.pt")
        if hasattr(self.model, "replay_buffer") and getattr(self.model, "replay_buffer", None) is not None:
            self.model.save_replay_buffer(folder / "replay_buffer.pkl")  # type: ignore[attr-defined]
        state = {"timesteps": step, "wall_time": self.wall_time, "seed": self.seed, **self.metrics.state(),
                 "reward_episodes": len(self.reward_callback.episodes) if self.reward_callback else 0}
        atomic_write(folder / "state.json", lambda tmp: Path(tmp).write_text(json.dumps(state)))
        atomic_write(self.checkpoint_root / "latest", lambda tmp: Path(tmp).write_text(folder.name))
        keep = {p.name for p in self.checkpoints()[:2]}
        for old in self.checkpoint_root.glob("step_*"):
            if old.name not in keep:
                shutil.rmtree(old, ignore_errors=True)
        self.metrics.write(self.run_dir)
        return folder

    def restore(self, *, checkpoint: str | None = None, fallback: bool = False) -> int:
        """Load the newest complete checkpoint of ``run_dir`` (or the one named); returns the env steps it had done.

        A checkpoint that cannot be loaded (truncated, corrupt, or from another config) is a
        :class:`CheckpointError`. With ``fallback`` (``train --resume``) the previous complete checkpoint is
        loaded instead; the run says so on stderr, points ``latest`` at it and keeps the unreadable folder as
        ``checkpoints/unreadable-step_N``.

        :param checkpoint: a checkpoint folder name (``step_N``) instead of the newest.
        :param fallback: on a checkpoint that cannot be loaded, try the previous complete ones.
        """
        available = self.checkpoints()
        names = ", ".join(p.name for p in available) or "none"
        if checkpoint is not None:
            available = [p for p in available if p.name == checkpoint]
            if not available:
                raise RunFolderError(f"{self.run_dir} has no complete checkpoint {checkpoint!r}; complete "
                                     f"checkpoints: {names}")
        if not available:
            raise RunFolderError(f"{self.run_dir} has no complete checkpoint (checkpoints/step_N/ with a state.json): "
                                 "the run stopped before its first checkpoint (budget.checkpoint_every); train it "
                                 "again from its config.yaml")
        failed: list[tuple[Path, str]] = []
        for folder in available if fallback else available[:1]:
            try:
                steps = self._load_checkpoint(folder)
            except _UnloadableCheckpoint as exc:
                failed.append((folder, str(exc)))
                continue
            if failed:
                self._set_aside(failed, folder)
            return steps
        reasons = "; ".join(reason for _, reason in failed)
        edited = "if config.yaml was edited after training, restore the config the checkpoint was saved with"
        if not fallback and checkpoint is None and len(available) > 1:
            previous = available[1].name
            raise CheckpointError(f"{reasons}. The previous complete checkpoint is {previous}: `robo-reward eval "
                                  f"{self.run_dir} --checkpoint {previous}` evaluates it and `robo-reward train "
                                  f"--resume {self.run_dir}` falls back to it; {edited}")
        raise CheckpointError(f"{reasons}. No other complete checkpoint can be loaded: train the run again from "
                              f"its config.yaml, or, {edited}")

    def _load_checkpoint(self, folder: Path) -> int:
        torch.set_num_threads(self.cfg.agent.torch_threads)
        try:
            state = json.loads((folder / "state.json").read_text())
            steps, seed, wall_time = int(state["timesteps"]), int(state["seed"]), float(state["wall_time"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise _UnloadableCheckpoint(f"checkpoint {folder} cannot be loaded: state.json is unreadable "
                                        f"({type(exc).__name__}: {exc})") from exc
        self.seed = seed
        venv = self._build_env()
        self.observation_space = venv.observation_space
        algo = resolve_algo(self.cfg.agent.algo)
        part = folder / "agent.zip"
        try:
            model = algo.load(part, env=venv, device="cpu")
            if self.reward is not None and (folder / "reward.pt").exists():
                part = folder / "reward.pt"
                load_reward_state(self.reward, part)
            if (folder / "replay_buffer.pkl").exists() and isinstance(model, OffPolicyAlgorithm):
                part = folder / "replay_buffer.pkl"
                model.load_replay_buffer(part)
                buffer = model.replay_buffer
                if isinstance(buffer, (RelabelingReplayBuffer, RelabelingDictReplayBuffer)):
                    buffer.reward = None
            part = folder / "state.json"
            self.metrics.load(state)
        except (*UNREADABLE, CheckpointError) as exc:
            venv.close()
            reason = str(exc) if isinstance(exc, CheckpointError) else f"{type(exc).__name__}: {exc}"
            raise _UnloadableCheckpoint(f"checkpoint {folder} cannot be loaded: {part.name}: {reason}") from exc
        self.model = model
        self.model.set_random_seed(self.seed + steps)
        self.wall_time = wall_time
        self._configure_logging(self.model)
        return steps

    def _set_aside(self, failed: list[tuple[Path, str]], loaded: Path) -> None:
        for folder, reason in failed:
            aside = folder.with_name(f"unreadable-{folder.name}")
            if aside.exists():
                shutil.rmtree(aside)
            folder.rename(aside)
            print(f"robo-reward: {reason}; resuming from the previous complete checkpoint {loaded.name} instead "
                  f"(the unreadable one is kept as {aside})", file=sys.stderr)
        atomic_write(self.checkpoint_root / "latest", lambda tmp: Path(tmp).write_text(loaded.name))

    # -- training -----------------------------------------------------------------------------------------
    def evaluate(self) -> dict[str, float]:
        """Episodes of the current policy on the env's own reward (no reward design), seeded per evaluation.

        Each key of ``eval.info_metrics`` is read from the info of every episode's last step and averaged into the
        row as ``info/<key>`` (the way envs report per-episode metrics such as coverage or normalised return).
        """
        assert self.model is not None
        env_cfg = self.cfg.env.model_copy(update={"kwargs": {**self.cfg.env.kwargs, **self.cfg.eval.env_kwargs}})
        env = self._policy_view(make_vec(env_cfg, seed=10_000 + self.seed + len(self.metrics.eval),
                                         n_envs=self.cfg.eval.n_envs))
        successes: list[float] = []
        progress: list[float] = []
        extra: dict[str, list[float]] = {key: [] for key in self.cfg.eval.info_metrics}
        seen: set[str] = set()

        def on_step(local: dict[str, Any], _: dict[str, Any]) -> None:
            if local["done"]:
                info = local["info"]
                seen.update(info)
                if "is_success" in info:
                    successes.append(float(info["is_success"]))
                if "progress" in info:
                    progress.append(float(info["progress"]))
                for key, values in extra.items():
                    if key in info:
                        values.append(_info_scalar(info[key], key))

        returns, lengths = evaluate_policy(self.model, env, n_eval_episodes=self.cfg.eval.episodes,
                                           deterministic=self.cfg.eval.deterministic, return_episode_rewards=True,
                                           callback=on_step)
        env.close()
        missing = [key for key, values in extra.items() if not values]
        if missing:
            shown = ", ".join(sorted(k for k in seen if k not in ("terminal_observation", "episode"))) or "none"
            raise ValueError(f"eval.info_metrics {missing} never appeared in the info of an episode's last step of "
                             f"{self.cfg.env.id} (keys there: {shown}); fix the key names or make the env report "
                             "them at episode end")
        row = {"timestep": float(self.model.num_timesteps), "return_mean": float(np.mean(returns)),
               "return_std": float(np.std(returns)), "length_mean": float(np.mean(lengths)),
               "success_rate": float(np.mean(successes)) if successes else float("nan"),
               "final_progress": float(np.mean(progress)) if progress else float("nan"),
               **{f"info/{key}": float(np.mean(values)) for key, values in extra.items()},
               "wall_time": self.wall_time}
        self.metrics.eval.append(row)
        if self._wandb is not None:
            self._wandb.log({f"eval/{k}": v for k, v in row.items()}, step=int(row["timestep"]))
        return row

    def learn(self, *, resumed: bool = False) -> dict[str, Any]:
        """Train to the budget with evaluations and checkpoints; writes the report at the end."""
        assert self.model is not None
        callbacks: list[BaseCallback] = [_Schedule(self)]
        if self.reward is not None:
            self.reward_callback = _EpisodeLog(self)
            callbacks.insert(0, self.reward_callback)
        if not resumed and not self.metrics.eval:
            self.evaluate()
        remaining = self.cfg.budget.total_timesteps - int(self.model.num_timesteps)
        if remaining > 0:
            self.model.learn(remaining, callback=CallbackList(callbacks), reset_num_timesteps=not resumed,
                             progress_bar=self.progress, tb_log_name="train")
        if not self.metrics.eval or self.metrics.eval[-1]["timestep"] < self.model.num_timesteps:
            self.evaluate()
        self.save_checkpoint()
        summary = self.summary()
        atomic_write(self.run_dir / "summary.json", lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2)))
        from robo_reward.report import write_run_report

        write_run_report(self.run_dir, self.cfg, summary, self.metrics.eval, self.metrics.episodes)
        if self._wandb is not None:
            self._wandb.finish()
        self.model.get_env().close()  # type: ignore[union-attr]
        return summary

    def summary(self) -> dict[str, Any]:
        last = self.metrics.eval[-1]
        metric = EVAL_COLUMNS[self.cfg.eval.metric]
        reached = [r["timestep"] for r in self.metrics.eval if r[metric] >= self.cfg.eval.threshold]
        success = None if np.isnan(last["success_rate"]) else last["success_rate"]
        progress = last.get("final_progress", float("nan"))
        return {"name": self.cfg.name, "seed": self.seed, "timesteps": int(last["timestep"]),
                "final_success": success, "final_return": last["return_mean"],
                "final_progress": None if np.isnan(progress) else progress,
                "steps_to_threshold": reached[0] if reached else None, "metric": metric,
                "threshold": self.cfg.eval.threshold, "wall_time": self.wall_time,
                **{f"final_info/{key}": last.get(f"info/{key}") for key in self.cfg.eval.info_metrics}}


def _info_scalar(value: Any, key: str) -> float:
    """One number from ``info[key]`` (a Python or numpy scalar, or a one-element array)."""
    try:
        return float(np.asarray(value, dtype=np.float64).item())
    except (TypeError, ValueError) as exc:
        raise TypeError(f"eval.info_metrics: info[{key!r}] is {value!r}, not a number; list only keys whose "
                        "value at episode end is one number") from exc


class _EpisodeLog(RewardCallback):
    """RewardCallback whose per-episode sums also go to the run's episodes.csv."""

    def __init__(self, run: TrainingRun) -> None:
        super().__init__()
        self.run = run

    def _on_step(self) -> bool:
        before = len(self.episodes)
        ok = super()._on_step()
        self.run.metrics.episodes.extend(self.episodes[before:])
        return ok


class _Schedule(BaseCallback):
    """Evaluates every ``eval.every`` and checkpoints every ``budget.checkpoint_every`` env steps; keeps time."""

    def __init__(self, run: TrainingRun) -> None:
        super().__init__()
        self.run = run
        self._t0 = time.perf_counter()

    def _on_training_start(self) -> None:
        self._t0 = time.perf_counter()
        self._base = self.run.wall_time
        self._next_eval = self._next(self.run.cfg.eval.every)
        self._next_ckpt = self._next(self.run.cfg.budget.checkpoint_every)

    def _next(self, every: int) -> int:
        return (self.num_timesteps // every + 1) * every

    def _on_step(self) -> bool:
        self.run.wall_time = self._base + time.perf_counter() - self._t0
        if self.num_timesteps >= self._next_eval:
            self.run.evaluate()
            self._next_eval = self._next(self.run.cfg.eval.every)
        if self.num_timesteps >= self._next_ckpt:
            self.run.save_checkpoint()
            self._next_ckpt = self._next(self.run.cfg.budget.checkpoint_every)
        return True


def train(cfg: ExperimentConfig, run_dir: str | Path, *, seed: int | None = None,
          progress: bool | None = None) -> dict[str, Any]:
    """Train one run from scratch into ``run_dir`` and return its summary (``agent.backend`` picks the trainer)."""
    if cfg.agent.backend != "sb3":
        from robo_reward.agents_registry import resolve_backend

        return resolve_backend(cfg.agent.backend)(cfg, run_dir, seed=seed, progress=progress)  # type: ignore[no-any-return]
    run = TrainingRun(cfg, run_dir, seed=seed, progress=progress)
    run.setup()
    return run.learn()


def resume(run_dir: str | Path, *, progress: bool | None = None, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Continue a run from its newest complete checkpoint (its own resolved config.yaml).

    A newest checkpoint that cannot be loaded falls back to the previous complete one (and says so).

    :param overrides: ``--set key.sub=value`` changes (e.g. a larger ``budget.total_timesteps``), written into
        the run's config.yaml once the checkpoint has loaded.
    """
    cfg = load_config(run_config_path(run_dir), overrides)
    if cfg.agent.backend != "sb3":
        from robo_reward.agents_registry import resolve_backend

        return resolve_backend(cfg.agent.backend)(cfg, run_dir, progress=progress)  # type: ignore[no-any-return]
    run = TrainingRun(cfg, run_dir, progress=progress)
    run.restore(fallback=True)
    if overrides:
        atomic_write(Path(run_dir) / "config.yaml", lambda tmp: Path(tmp).write_text(cfg.dump()))
    return run.learn(resumed=True)


def default_run_dir(cfg: ExperimentConfig, seed: int) -> Path:
    return Path(cfg.output_dir) / f"{cfg.name}-s{seed}-{time.strftime('%Y%m%d-%H%M%S')}"
