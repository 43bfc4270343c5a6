"""Ray RLlib backend: the same experiment configs, reward designs and run folders, trained by RLlib's PPO.

``robo-reward train CONFIG --set agent.backend=rllib`` (or ``agent.backend: rllib`` in the config) runs here
instead of SB3. What runs where:

* **Env runners** build the configured env as a Gymnasium vector env (``gym.make_vec``, the ``env.wrappers``
  applied to each copy) and wrap it in :class:`robo_reward.RewardVectorWrapper`, so every runner pays the reward
  batched over its envs, with terminated and truncated kept apart (RLlib's runners use NEXT_STEP autoreset,
  which the wrapper honours: the reset step is paid 0 and reward state restarts there).
* **Per-term metrics**: :class:`RewardTermsCallback` sums each ``reward/<term>`` over every finished episode and
  logs it, with the count of terminated and truncated episodes, into RLlib's results (``env_runners``).
* **Online-learning rewards** (RND, BYOL, a GAIL discriminator, alone or inside a composite) are *not* forked per
  runner: runners do not update them. After each ``sample()`` a runner sends the batches its learned terms queued
  to one :class:`RewardLearner` actor, which runs every term's update on its own schedule over the data of all
  runners, and the runner loads the learner's weights back (a broadcast once per sample call, so a runner's
  copy is at most one sample call behind). A learned term's ``state_dict`` must hold only what it learns (no
  per-env state), which the package's learned rewards respect.
* A **shared reward model** (:class:`RemoteReward`, registered as ``remote``) serves one stateless reward, e.g. a
  large progress model, from one actor to all runners, batching concurrent requests into one forward pass.

RLlib pins a newer gymnasium than nle allows, so the ``ray`` extra installs the ``ray`` wheel and RLlib's runtime
dependencies beside the package's pinned gymnasium 1.2.0 (see README).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from robo_reward.config import ConfigError, ExperimentConfig
from robo_reward.evaluator import RewardEvaluator
from robo_reward.protocol import Reward, RewardError, TransitionBatch
from robo_reward.registry import build_reward

# A local Ray instance binds to loopback only (Ray's own switch for single-machine use, read at import); to join a
# multi-node cluster, set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1 before importing this module or pass ray.init(address=).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

PPO_KWARGS = {"learning_rate": "lr", "gamma": "gamma", "n_epochs": "num_epochs", "batch_size": "minibatch_size",
              "ent_coef": "entropy_coeff", "gae_lambda": "lambda_", "clip_range": "clip_param",
              "vf_coef": "vf_loss_coeff", "max_grad_norm": "grad_clip"}
LEARNER_PREFIX = "robo_reward_reward_learner"


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("agent.backend: rllib needs Ray: pip install 'robo-reward[ray]'") from None
    return ray


def init_local_ray(num_cpus: int = 2) -> None:
    """Start (or join) a local Ray instance bound to loopback only, without the dashboard."""
    ray = _ray()
    if not ray.is_initialized():
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1",
                 configure_logging=False)


# -- env runners -----------------------------------------------------------------------------------------------
def make_vector_env(cfg: ExperimentConfig, num_envs: int, *, learner: str | None = None) -> gym.vector.VectorEnv:
    """``num_envs`` copies of the configured env paying the configured reward (None: the env's own reward)."""
    import importlib

    import robo_reward  # noqa: F401  (registers the package's envs in the runner process)
    from robo_reward.runner import build_design
    from robo_reward.wrappers import RewardVectorWrapper

    wrappers = []
    for w in cfg.env.wrappers:
        module, _, attr = w.entry_point.partition(":")
        cls, kwargs = getattr(importlib.import_module(module), attr), dict(w.kwargs)
        wrappers.append(lambda env, cls=cls, kwargs=kwargs: cls(env, **kwargs))
    kwargs = dict(cfg.env.kwargs)
    if cfg.env.max_episode_steps is not None:
        kwargs["max_episode_steps"] = cfg.env.max_episode_steps
    venv: Any = gym.make_vec(cfg.env.id, num_envs=num_envs, vectorization_mode="sync", wrappers=wrappers, **kwargs)
    design = build_design(cfg.reward)
    if design is not None:
        venv = RewardVectorWrapper(venv, design, extrinsic_weight=cfg.reward.extrinsic_weight,
                                   checkpoint=cfg.reward.checkpoint, gamma=gamma_of(cfg),
                                   auto_update=learner is None)
        venv.learner_name = learner
    key = cfg.env.policy_obs
    if key is not None and isinstance(venv.single_observation_space, gym.spaces.Dict):
        single = venv.single_observation_space[key]
        venv = gym.wrappers.vector.TransformObservation(
            venv, lambda obs: obs[key], gym.vector.utils.batch_space(single, num_envs), single_observation_space=single)
    return venv


def gamma_of(cfg: ExperimentConfig) -> float:
    return float(cfg.agent.kwargs.get("gamma", 0.99))


def reward_wrapper(env: Any) -> Any:
    """The :class:`RewardVectorWrapper` inside an env runner's (wrapped) vector env, or None."""
    from robo_reward.wrappers import RewardVectorWrapper

    while env is not None:
        if isinstance(env, RewardVectorWrapper):
            return env
        env = getattr(env, "env", None)
    return None


class RewardLearner:
    """The one copy of a reward design whose online-learning terms train (run as a Ray actor).

    :param cfg_json: the experiment config (JSON), so the actor builds the same design as the runners.
    """

    def __init__(self, cfg_json: str) -> None:
        import torch

        import robo_reward  # noqa: F401
        from robo_reward.runner import build_design

        torch.set_num_threads(1)
        cfg = ExperimentConfig.model_validate_json(cfg_json)
        env = gym.make(cfg.env.id, **cfg.env.kwargs)
        design = build_design(cfg.reward)
        if design is None:
            raise ConfigError("the reward learner needs reward terms; the env's own reward does not learn")
        self.evaluator = RewardEvaluator(design, checkpoint=cfg.reward.checkpoint)
        self.evaluator.bind(env.observation_space, env.action_space, 1)
        self.evaluator.reward.set_discount(gamma_of(cfg))
        env.close()
        self.version = 0
        self.rows = 0

    def push(self, batches: Sequence[Sequence[TransitionBatch]]) -> dict[str, Any]:
        """Queue one runner's batches per learned term, update every term that is due, return the weights."""
        for learner, queued in zip(self.evaluator.learners, batches, strict=True):
            learner.pending.extend(queued)
            learner.steps += len(queued)
            self.rows += sum(b.num for b in queued)
        metrics = self.evaluator.run_update() if self.evaluator.update_due else {}
        if metrics:
            self.version += 1
        return {"version": self.version, "metrics": metrics, "rows": self.rows,
                "states": [learner.reward.state_dict() for learner in self.evaluator.learners]}

    def state_dict(self) -> dict[str, Any]:
        return self.evaluator.reward.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.evaluator.reward.load_state_dict(state)


def _callback_base() -> type:
    from ray.rllib.callbacks.callbacks import RLlibCallback

    return RLlibCallback


class RewardTermsCallback(_callback_base()):  # type: ignore[misc]
    """Logs each reward term per episode and syncs online-learning terms with the :class:`RewardLearner`."""

    def on_episode_end(self, *, episode: Any, metrics_logger: Any = None, **kwargs: Any) -> None:
        sums: dict[str, float] = {}
        for info in episode.get_infos()[1:]:
            for key, value in info.items():
                if key.startswith("reward/") and np.isscalar(value):
                    sums[key] = sums.get(key, 0.0) + float(value)
        for key, total in sums.items():
            metrics_logger.log_value(key, total, reduce="mean")
        metrics_logger.log_value("episodes_terminated", float(episode.is_terminated), reduce="sum")
        metrics_logger.log_value("episodes_truncated", float(episode.is_truncated), reduce="sum")

    def on_sample_end(self, *, env_runner: Any = None, metrics_logger: Any = None, **kwargs: Any) -> None:
        wrapper = reward_wrapper(getattr(env_runner, "env", None))
        name = getattr(wrapper, "learner_name", None)
        if wrapper is None or name is None or not wrapper.evaluator.learners:
            return
        ray = _ray()
        batches = []
        for learner in wrapper.evaluator.learners:
            batches.append(list(learner.pending))
            learner.pending.clear()
            learner.steps = 0
        reply = ray.get(ray.get_actor(name).push.remote(batches))
        for learner, state in zip(wrapper.evaluator.learners, reply["states"], strict=True):
            learner.reward.load_state_dict(state)
        metrics_logger.log_value("reward_learner/version", float(reply["version"]), reduce="max")
        metrics_logger.log_value("reward_learner/rows", float(reply["rows"]), reduce="max")


# -- the shared reward-model actor -------------------------------------------------------------------------------
class RewardServer:
    """Serves one stateless reward to many env runners (an async Ray actor), batching concurrent requests.

    Requests that arrive while a forward pass runs, or within ``batch_wait_s`` of the first one (Ray Serve's
    ``batch_wait_timeout_s``), are concatenated into the next forward pass (up to ``max_rows``), so N runners cost
    about one model call per round instead of N. More than ``max_queue`` waiting requests is an overload error,
    never an unbounded queue.

    :param batch_wait_s: how long a pass waits for more requests after the first; 0 adds no latency and batches
        only what queued during the previous pass.
    """

    def __init__(self, spec: Mapping[str, Any], observation_space: gym.Space, action_space: gym.Space, *,
                 max_queue: int = 64, max_rows: int = 4096, batch_wait_s: float = 0.0) -> None:
        import asyncio

        self.reward = build_reward(dict(spec))
        if not self.reward.stateless or self.reward.needs_infos:
            raise ConfigError(f"reward '{self.reward.name}' keeps per-episode state or reads infos, so one actor "
                              "cannot serve it to many runners; serve a stateless reward model")
        self.reward.bind(observation_space, action_space, 1)
        self.max_queue, self.max_rows, self.batch_wait_s = max_queue, max_rows, float(batch_wait_s)
        self.queue: asyncio.Queue[tuple[TransitionBatch, asyncio.Future[np.ndarray]]] = asyncio.Queue()
        self.calls = 0
        self.requests = 0
        self._worker: Any = None

    async def evaluate(self, batch: TransitionBatch) -> np.ndarray:
        import asyncio

        if self.queue.qsize() >= self.max_queue:
            raise RewardError(f"reward server for '{self.reward.name}' has {self.queue.qsize()} requests waiting "
                              f"(max_queue={self.max_queue}); add servers or slow the runners")
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._serve())
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self.requests += 1
        await self.queue.put((batch, future))
        return await future

    async def _serve(self) -> None:
        import asyncio

        while True:
            first = await self.queue.get()
            if self.batch_wait_s > 0:
                await asyncio.sleep(self.batch_wait_s)
            jobs, rows = [first], first[0].num
            while not self.queue.empty() and rows < self.max_rows:
                job = self.queue.get_nowait()
                jobs.append(job)
                rows += job[0].num
            try:
                values = self.reward.relabel(TransitionBatch.concat([b for b, _ in jobs]))
                self.calls += 1
                start = 0
                for batch, future in jobs:
                    future.set_result(values[start:start + batch.num])
                    start += batch.num
            except Exception as exc:  # every waiting runner sees the model's error
                for _, future in jobs:
                    future.set_exception(exc)

    def stats(self) -> dict[str, int]:
        return {"calls": self.calls, "requests": self.requests}


class RemoteReward(Reward):
    """A stateless reward evaluated by a shared :class:`RewardServer` actor (created on first bind, by name).

    :param reward: the served reward's registry spec (``{"name": "mlp", ...}``); it must be stateless.
    :param server: the actor's name; runners naming the same server share one model.
    :param timeout_s: a reply slower than this is an error naming the server, never a silent stall.
    :param max_queue: requests the server holds before it refuses more.
    :param batch_wait_s: how long the server waits for other runners' requests before a forward pass.
    """

    name = "remote"

    def __init__(self, reward: Mapping[str, Any], *, server: str = "robo_reward_reward_server",
                 timeout_s: float = 30.0, max_queue: int = 64, batch_wait_s: float = 0.0,
                 label: str | None = None) -> None:
        self.served, self.server, self.timeout_s, self.max_queue = dict(reward), server, float(timeout_s), max_queue
        if batch_wait_s < 0:
            raise ConfigError(f"remote reward batch_wait_s must be >= 0 seconds, got {batch_wait_s}")
        self.batch_wait_s = float(batch_wait_s)
        self.name = label or str(self.served.get("name", "remote"))
        self._handle: Any = None

    def bind(self, observation_space: gym.Space, action_space: gym.Space, num_envs: int) -> None:
        super().bind(observation_space, action_space, num_envs)
        ray = _ray()
        actor = ray.remote(RewardServer).options(name=self.server, get_if_exists=True, max_concurrency=1000)
        self._handle = actor.remote(self.served, observation_space, action_space, max_queue=self.max_queue,
                                    batch_wait_s=self.batch_wait_s)

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        ray = _ray()
        if self._handle is None:
            raise RewardError(f"remote reward '{self.name}' is not bound; wrap an env with it first")
        light = TransitionBatch(batch.obs, batch.action, batch.next_obs, batch.reward, batch.terminated,
                                batch.truncated, env_ids=batch.env_ids)
        try:
            return np.asarray(ray.get(self._handle.evaluate.remote(light), timeout=self.timeout_s), dtype=np.float64)
        except ray.exceptions.GetTimeoutError:
            raise RewardError(f"reward server '{self.server}' gave no reward within {self.timeout_s} s for "
                              f"{batch.num} rows; it is overloaded or stuck (raise timeout_s or add servers)") from None
        except ray.exceptions.RayTaskError as exc:
            raise RewardError(f"reward server '{self.server}' failed: {exc.cause}") from None


# -- training ---------------------------------------------------------------------------------------------------
def algo_config(cfg: ExperimentConfig, seed: int, learner: str | None) -> Any:
    """RLlib's PPOConfig for an experiment config (SB3-style PPO kwargs mapped to RLlib's names)."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.tune.registry import register_env

    if cfg.agent.algo != "PPO":
        raise ConfigError(f"agent.backend: rllib runs agent.algo: PPO, got {cfg.agent.algo!r}")
    kwargs = dict(cfg.agent.kwargs)
    n_steps = int(kwargs.pop("n_steps", 2048))
    unknown = sorted(set(kwargs) - set(PPO_KWARGS))
    if unknown:
        raise ConfigError(f"agent.kwargs {unknown} have no RLlib PPO equivalent; the rllib backend maps "
                          f"{sorted(PPO_KWARGS)} and n_steps (rollout per env)")
    training = {PPO_KWARGS[k]: v for k, v in kwargs.items()}
    rllib = dict(cfg.agent.rllib)
    runners = int(rllib.pop("num_env_runners", 0))
    rllib.pop("num_cpus", None)
    env_name = f"robo_reward_rllib_{abs(hash(cfg.model_dump_json())) % 10**8}"
    cfg_json = cfg.model_dump_json()

    def creator(ctx: Mapping[str, Any]) -> gym.vector.VectorEnv:
        return make_vector_env(ExperimentConfig.model_validate_json(cfg_json), int(ctx.get("num_envs", 1)),
                               learner=learner)

    register_env(env_name, creator)
    config = (PPOConfig().environment(env_name)
              .env_runners(num_env_runners=runners, num_envs_per_env_runner=cfg.env.n_envs,
                           gym_env_vectorize_mode="vector_entry_point", rollout_fragment_length="auto")
              .training(train_batch_size_per_learner=n_steps * cfg.env.n_envs * max(1, runners), **training)
              .callbacks(RewardTermsCallback).debugging(seed=seed))
    return config.update_from_dict(rllib) if rllib else config


def _act(module: Any, obs: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        out = module.forward_inference({"obs": torch.as_tensor(obs, dtype=torch.float32)})
        dist = module.get_inference_action_dist_cls().from_logits(out["action_dist_inputs"])
        return dist.to_deterministic().sample().numpy()


def evaluate(cfg: ExperimentConfig, module: Any, *, seed: int, timestep: int) -> dict[str, float]:
    """Episodes of the deterministic policy on the env's own reward (the eval section's settings)."""
    import robo_reward  # noqa: F401

    env_kwargs = {**cfg.env.kwargs, **cfg.eval.env_kwargs}
    env = gym.make(cfg.env.id, **env_kwargs)
    returns, successes, progress = [], [], []
    for episode in range(cfg.eval.episodes):
        obs, info = env.reset(seed=seed + episode)
        done, total = False, 0.0
        while not done:
            view = obs[cfg.env.policy_obs] if cfg.env.policy_obs and isinstance(obs, dict) else obs
            action = _act(module, np.asarray(view)[None])[0]
            obs, r, terminated, truncated, info = env.step(action)
            total += float(r)
            done = terminated or truncated
        returns.append(total)
        if "is_success" in info:
            successes.append(float(info["is_success"]))
        if "progress" in info:
            progress.append(float(info["progress"]))
    env.close()
    return {"timestep": float(timestep), "return_mean": float(np.mean(returns)), "return_std": float(np.std(returns)),
            "success_rate": float(np.mean(successes)) if successes else float("nan"),
            "final_progress": float(np.mean(progress)) if progress else float("nan")}


def train(cfg: ExperimentConfig, run_dir: str | Path, *, seed: int | None = None,
          progress: bool | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train with RLlib PPO into ``run_dir`` (resuming from its newest checkpoint if there is one).

    The run folder has the SB3 path's layout: ``config.yaml``, ``checkpoints/step_N/`` (``algo/`` RLlib's
    checkpoint, ``reward.pt``), ``eval.csv``, ``episodes.csv`` (per-iteration reward-term means),
    ``summary.json``, ``report.md`` and ``curves.png``.
    """
    import pandas as pd
    import torch

    from robo_reward.report import write_run_report

    ray = _ray()
    seed = cfg.seed if seed is None else seed
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(cfg.dump())
    init_local_ray(int(cfg.agent.rllib.get("num_cpus", 2)))
    learns = _learns(cfg)
    learner_name = f"{LEARNER_PREFIX}_{run.resolve().as_posix().replace('/', '_')}" if learns else None
    learner = ray.remote(RewardLearner).options(name=learner_name).remote(cfg.model_dump_json()) if learns else None
    algo = algo_config(cfg, seed, learner_name).build_algo()
    state_path = run / "checkpoints" / "latest"
    rows_eval: list[dict[str, float]] = []
    rows_terms: list[dict[str, float]] = []
    if state_path.exists():
        folder = run / "checkpoints" / state_path.read_text().strip()
        algo.restore_from_path(str((folder / "algo").resolve()))
        saved = json.loads((folder / "state.json").read_text())
        rows_eval, rows_terms = saved["eval"], saved["episodes"]
        if learner is not None and (folder / "reward.pt").exists():
            ray.get(learner.load_state_dict.remote(torch.load(folder / "reward.pt", weights_only=False)["state"]))
        log(f"resumed from {folder}")
    steps = int(rows_eval[-1]["timestep"]) if rows_eval else 0
    t0 = time.perf_counter()
    next_eval = steps + cfg.eval.every if rows_eval else steps
    next_ckpt = steps + cfg.budget.checkpoint_every
    while True:
        if steps >= next_eval or steps >= cfg.budget.total_timesteps:
            rows_eval.append({**evaluate(cfg, algo.get_module(), seed=10_000 + seed + len(rows_eval), timestep=steps),
                              "wall_time": time.perf_counter() - t0})
            next_eval = steps + cfg.eval.every
        if steps >= cfg.budget.total_timesteps:
            break
        result = algo.train()
        steps = int(result["num_env_steps_sampled_lifetime"])
        runners = result.get("env_runners", {})
        rows_terms.append({"timestep": float(steps), **{k: float(v) for k, v in runners.items()
                                                        if k.startswith(("reward/", "episodes_", "reward_learner/"))
                                                        and np.isscalar(v)},
                           "episode_return_mean": float(runners.get("episode_return_mean", np.nan))})
        if steps >= next_ckpt or steps >= cfg.budget.total_timesteps:
            _checkpoint(run, steps, algo, learner, rows_eval, rows_terms)
            next_ckpt = steps + cfg.budget.checkpoint_every
    _checkpoint(run, steps, algo, learner, rows_eval, rows_terms)
    pd.DataFrame(rows_eval).to_csv(run / "eval.csv", index=False)
    pd.DataFrame(rows_terms).to_csv(run / "episodes.csv", index=False)
    last = rows_eval[-1]
    summary = {"name": cfg.name, "seed": seed, "timesteps": steps, "backend": "rllib",
               "final_success": None if np.isnan(last["success_rate"]) else last["success_rate"],
               "final_return": last["return_mean"],
               "final_progress": None if np.isnan(last["final_progress"]) else last["final_progress"],
               "steps_to_threshold": None, "metric": "success_rate", "threshold": cfg.eval.threshold,
               "wall_time": time.perf_counter() - t0}
    (run / "summary.json").write_text(json.dumps(summary, indent=2))
    write_run_report(run, cfg, summary, rows_eval, [])
    algo.stop()
    return summary


def _learns(cfg: ExperimentConfig) -> bool:
    from robo_reward.runner import build_design

    design = build_design(cfg.reward)
    return design is not None and bool(design.learners())


def _checkpoint(run: Path, steps: int, algo: Any, learner: Any, rows_eval: list[dict[str, float]],
                rows_terms: list[dict[str, float]]) -> None:
    """``checkpoints/step_N`` (RLlib's checkpoint, the learned reward, the metrics so far), then ``latest``."""
    import torch

    from robo_reward.checkpoint import atomic_write

    folder = run / "checkpoints" / f"step_{steps}"
    folder.mkdir(parents=True, exist_ok=True)
    algo.save_to_path(str((folder / "algo").resolve()))
    if learner is not None:
        torch.save({"state": _ray().get(learner.state_dict.remote())}, folder / "reward.pt")
    (folder / "state.json").write_text(json.dumps({"timesteps": steps, "eval": rows_eval, "episodes": rows_terms}))
    atomic_write(run / "checkpoints" / "latest", lambda tmp: Path(tmp).write_text(folder.name))


# -- scaling benchmark ------------------------------------------------------------------------------------------
def scaling_benchmark(cfg: ExperimentConfig, runners: Sequence[int], *, steps: int = 2000, repeats: int = 3,
                      out: str | Path = "runs/perf_rllib", log: Callable[[str], None] = print) -> Any:
    """Env steps/s of RLlib env runners sampling the raw env and the reward-wrapped env, per runner count.

    For each count, both algorithms are built, warmed up with one ``sample()``, then timed over ``repeats``
    interleaved rounds in which every runner samples ``steps`` env steps (``sample()`` includes the reward and,
    for online-learning terms, the push to the reward learner). Writes ``rllib_scaling.csv``/``.md`` and a plot.
    """
    import pandas as pd

    ray = _ray()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    init_local_ray(2 * max(runners) + 2)  # logical CPUs: both algorithms' runners and a learner stay placed
    raw_cfg = cfg.model_copy(deep=True)
    raw_cfg.reward.terms, raw_cfg.reward.extrinsic_weight = [], 1.0
    rows = []
    for k in runners:
        algos = {}
        for label, c in (("raw", raw_cfg), ("wrapped", cfg)):
            learner = None
            if label == "wrapped" and _learns(c):
                learner = f"{LEARNER_PREFIX}_perf_{k}"
                ray.remote(RewardLearner).options(name=learner).remote(c.model_dump_json())
            c = c.model_copy(deep=True)
            c.agent.rllib = {**c.agent.rllib, "num_env_runners": k}
            algos[label] = algo_config(c, 0, learner).build_algo()
        timings: dict[str, list[float]] = {"raw": [], "wrapped": []}
        for r in range(repeats + 1):
            for label, algo in algos.items():
                t0 = time.perf_counter()
                algo.env_runner_group.foreach_env_runner(lambda w: w.sample(num_timesteps=steps, explore=True),
                                                         local_env_runner=False)
                if r:
                    timings[label].append(k * steps / (time.perf_counter() - t0))
        for label, algo in algos.items():
            rate = float(np.median(timings[label]))
            rows.append({"runners": k, "env": label, "steps_per_s": rate})
            algo.stop()
        raw, wrapped = rows[-2]["steps_per_s"], rows[-1]["steps_per_s"]
        log(f"{k} runner(s): raw {raw:.0f} steps/s, wrapped {wrapped:.0f} steps/s ({wrapped / raw:.2f}x)")
    table = pd.DataFrame(rows).pivot(index="runners", columns="env", values="steps_per_s").reset_index()
    table["ratio"] = table["wrapped"] / table["raw"]
    table.to_csv(out / "rllib_scaling.csv", index=False)
    lines = [f"# RLlib env-runner scaling: `{cfg.env.id}`, {cfg.env.n_envs} envs per runner, reward "
             f"{[t['name'] for t in cfg.reward.terms]}", "",
             f"Median of {repeats} interleaved rounds of {steps} env steps per runner (sample() with exploration).", "",
             "| env runners | raw steps/s | wrapped steps/s | wrapped / raw |", "|---|---|---|---|"]
    lines += [f"| {int(r.runners)} | {r.raw:.0f} | {r.wrapped:.0f} | {r.ratio:.2f} |" for r in table.itertuples()]
    (out / "rllib_scaling.md").write_text("\n".join([*lines, "", "![scaling](rllib_scaling.png)", ""]))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(table["runners"], table["raw"], "o-", label="raw env")
    ax.plot(table["runners"], table["wrapped"], "s-", label="reward-wrapped")
    ax.set(xlabel="env runners", ylabel="env steps/s", xticks=list(table["runners"]))
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "rllib_scaling.png", dpi=100)
    plt.close(fig)
    return table
