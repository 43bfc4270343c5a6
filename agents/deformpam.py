"""DeformPAM as a ``robo-reward`` agent: ``learn`` builds (or loads from the cache) the three stages, ``predict``
selects the primitive.

Chen et al., ICRA 2025, "DeformPAM: Data-Efficient Learning for Long-horizon Deformable Object Manipulation via
Preference-based Action Alignment" (arXiv 2410.11584). ``learn`` runs, per seed:

1. *annotated data*: the annotator (a stand-in for the paper's human: a greedy one-step planner) acts for
   ``sft_episodes`` episodes; every visited state and its annotated action is kept;
2. *Stage 1*: the primitive diffusion model is fitted to them (:func:`~robo_reward.methods.deformpam.train_sft`);
3. *preference data*: the Stage-1 model is deployed for ``pref_episodes`` episodes; at each visited state the
   annotated action and ``pref_candidates`` sampled ones are paired at random and labelled win/lose/equal by the
   oracle (IoU gain), into a JSON-lines :class:`~robo_reward.preferences.PreferenceStore`; the pairs of the last
   ``heldout_fraction`` of those episodes are held out to measure preference accuracy;
4. *Stage 2*: Diffusion-DPO of a copy against the frozen Stage-1 model; the explicit reward head is trained on
   the same pairs when the selector needs it.

Each stage is cached under ``cache_dir`` by a hash of everything it depends on (env spec, seed, the settings of
it and of the stages before it), so the designs of a benchmark share the data and models of a seed. ``predict``
then draws candidates from ``sampler`` and picks one with ``selector``:

=============================  ===========  ===========
design                         sampler      selector
=============================  ===========  ===========
SFT                            ``sft``      ``none``
DPO-as-policy                  ``dpo``      ``none``
SFT + RAS (DeformPAM)          ``sft``      ``implicit``
SFT + random selection         ``sft``      ``random``
SFT + explicit reward head     ``sft``      ``explicit``
annotator / uniform reference  ``annotator`` / ``uniform``  ``none``
=============================  ===========  ===========

``num_timesteps`` counts the env steps spent collecting data (annotated plus preference episodes). After
training, the selection's cost per step is timed on one state and logged as ``selection/seconds_per_step``
(with held-out preference accuracies) to the run's ``tb/progress.csv``.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats
from stable_baselines3.common.vec_env import VecEnv

from robo_reward.methods.deformpam import (
    ExplicitRewardScorer,
    ImplicitRewardScorer,
    PrimitiveDiffusion,
    PrimitivePolicy,
    RandomScorer,
    RewardHead,
    implicit_reward,
    train_dpo,
    train_reward_head,
    train_sft,
)
from robo_reward.preferences import PreferencePair, PreferenceStore

SAMPLERS = ("sft", "dpo", "annotator", "uniform")
SELECTORS = ("none", "random", "implicit", "explicit")

DEFAULTS: dict[str, Any] = {
    "sampler": "sft", "selector": "none", "n_candidates": 16, "ddim_steps": 10, "diffusion_steps": 100,
    "beta": 100.0, "loss": "logsigmoid", "n_draws": 10, "t_fraction": 0.1,
    "sft_episodes": 40, "annotations_per_state": 1, "sft_steps": 1500, "sft_lr": 1e-3, "sft_batch": 64,
    "pref_episodes": 20, "pref_candidates": 8, "pairs_per_state": 8, "oracle_eps": 0.01, "heldout_fraction": 0.2,
    "dpo_steps": 600, "dpo_lr": 1e-4, "dpo_batch": 28, "dpo_t_fraction": 1.0,
    "head_steps": 600, "head_lr": 1e-3, "head_batch": 64,
    "annotator": "robo_reward.envs.granular.annotator:GreedyAnnotator", "annotator_kwargs": {"n_proposals": 256},
    "oracle": "robo_reward.envs.granular.annotator:PreferenceOracle", "oracle_kwargs": {},
    "cache_dir": "runs/deformpam/cache", "grid": 16, "hidden": 128, "features": 64,
}
STAGE_KEYS = {
    "data": ("sft_episodes", "annotations_per_state", "annotator", "annotator_kwargs"),
    "sft": ("sft_steps", "sft_lr", "sft_batch", "diffusion_steps", "grid", "hidden", "features"),
    "prefs": ("pref_episodes", "pref_candidates", "pairs_per_state", "oracle_eps", "oracle", "oracle_kwargs",
              "ddim_steps"),
    "dpo": ("beta", "loss", "dpo_steps", "dpo_lr", "dpo_batch", "dpo_t_fraction", "heldout_fraction"),
    "head": ("head_steps", "head_lr", "head_batch", "heldout_fraction"),
}


def _resolve(path: str, kwargs: dict[str, Any]) -> Any:
    module, _, attr = path.partition(":")
    if not attr:
        raise ValueError(f"{path!r} must look like 'module:Class'")
    return getattr(importlib.import_module(module), attr)(**kwargs)


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class DeformPAM:
    """SB3-like learner for DeformPAM's stages and selectors (``agent.algo: DeformPAM``); see the module doc.

    :param policy: ignored (the runner passes SB3's policy name).
    :param env: the VecEnv the data are collected in; its observations are point clouds ``(P, 2)``.
    :param seed: seeds the data, every stage's training and the selection.
    :param kwargs: any key of :data:`DEFAULTS`.
    """

    def __init__(self, policy: str, env: VecEnv | None, seed: int = 0, verbose: int = 0, **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - set(DEFAULTS))
        if unknown:
            raise ValueError(f"unknown DeformPAM agent kwargs {unknown}; valid: {', '.join(sorted(DEFAULTS))}")
        self.config: dict[str, Any] = {**DEFAULTS, **kwargs}
        cfg = self.config
        if cfg["sampler"] not in SAMPLERS or cfg["selector"] not in SELECTORS:
            raise ValueError(f"sampler={cfg['sampler']!r} / selector={cfg['selector']!r}: samplers are "
                             f"{', '.join(SAMPLERS)}, selectors {', '.join(SELECTORS)}")
        if cfg["sampler"] in ("annotator", "uniform") and cfg["selector"] != "none":
            raise ValueError(f"sampler {cfg['sampler']!r} is a reference policy; use selector: none with it")
        if cfg["loss"] not in ("logsigmoid", "sigmoid"):
            raise ValueError(f"loss={cfg['loss']!r}: use logsigmoid (Diffusion-DPO) or sigmoid (reference code)")
        self.env, self.seed, self.verbose = env, int(seed), verbose
        self.num_timesteps = 0
        self.logger: Any = None
        self.metrics: dict[str, float] = {}
        self.target = self._env_target(env)
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            self.sft = self._diffusion(self.target)
        self.sft.eval()
        self.dpo: PrimitiveDiffusion | None = None
        self.head: RewardHead | None = None
        self._annotator: Any = None
        self._rng = np.random.default_rng(self.seed)
        self.policy = self._build_policy()

    def _diffusion(self, target: np.ndarray | None) -> PrimitiveDiffusion:
        cfg = self.config
        return PrimitiveDiffusion(5, cfg["grid"], target, cfg["diffusion_steps"], cfg["hidden"], cfg["features"])

    @staticmethod
    def _env_target(env: VecEnv | None) -> np.ndarray | None:
        if env is None:
            return None
        try:
            return np.asarray(env.get_attr("target")[0], dtype=bool)
        except AttributeError:
            return None

    # -- selection ----------------------------------------------------------------------------------------
    def _build_policy(self) -> PrimitivePolicy:
        cfg = self.config
        dpo = self.dpo if self.dpo is not None else self.sft
        sampler = dpo if cfg["sampler"] == "dpo" else self.sft
        scorer: Any = None
        if cfg["selector"] == "implicit":
            scorer = ImplicitRewardScorer(dpo, self.sft, beta=cfg["beta"], n_draws=cfg["n_draws"],
                                          t_fraction=cfg["t_fraction"])
        elif cfg["selector"] == "explicit":
            scorer = ExplicitRewardScorer(self.head) if self.head is not None else RandomScorer()
        elif cfg["selector"] == "random":
            scorer = RandomScorer()
        return PrimitivePolicy(sampler, k=cfg["n_candidates"], scorer=scorer, seed=self.seed,
                               ddim_steps=cfg["ddim_steps"])

    def make_annotator(self, seed: int) -> Any:
        """A fresh annotator seeded with ``seed`` (each stage gets its own, so cached stages do not shift it)."""
        return _resolve(self.config["annotator"], {"seed": seed, **self.config["annotator_kwargs"]})

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, None]:
        """One primitive per env from ``(n_envs, P, 2)`` point clouds (``deterministic`` is not used: the
        selection is seeded instead)."""
        obs = np.asarray(observation, np.float32)
        batch = obs if obs.ndim == 3 else obs[None]
        sampler = self.config["sampler"]
        if sampler == "annotator":
            if self._annotator is None:
                self._annotator = self.make_annotator(self.seed)
            actions = np.stack([self._annotator(o.astype(np.float64)) for o in batch])
        elif sampler == "uniform":
            actions = self._rng.uniform(-1, 1, (len(batch), 5)).astype(np.float32)
        else:
            actions = self.policy.select(batch)
        return (actions if obs.ndim == 3 else actions[0]), None

    # -- stages -------------------------------------------------------------------------------------------
    def _stage_key(self, stage: str) -> str:
        order = list(STAGE_KEYS)
        spec = self.env.get_attr("spec")[0] if self.env is not None else None
        parts: dict[str, Any] = {"seed": self.seed, "env": None if spec is None else [spec.id, spec.kwargs]}
        for name in order[: order.index(stage) + 1] if stage != "head" else ("data", "sft", "prefs", "head"):
            parts[name] = {k: self.config[k] for k in STAGE_KEYS[name]}
        digest = hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]
        return f"{stage}-s{self.seed}-{digest}"

    def _cache(self, stage: str) -> Path:
        path = Path(self.config["cache_dir"]) / self._stage_key(stage)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _rollout(self, episodes: int, act: Any, seed: int) -> int:
        """Run ``act(obs_batch, step)`` in the env for ``episodes`` finished episodes; returns the env steps."""
        assert self.env is not None
        self.env.seed(seed)
        obs = self.env.reset()
        done_episodes, steps = 0, 0
        while done_episodes < episodes:
            obs, _, dones, _ = self.env.step(act(obs, done_episodes))
            steps += self.env.num_envs
            done_episodes += int(np.sum(dones))
        return steps

    def _annotated_data(self) -> tuple[np.ndarray, np.ndarray, int]:
        path = self._cache("data") / "data.npz"
        if path.exists():
            data = np.load(path)
            return data["states"], data["actions"], int(data["env_steps"])
        states: list[np.ndarray] = []
        actions: list[np.ndarray] = []
        annotator = self.make_annotator(self.seed + 11)

        m = self.config["annotations_per_state"]

        def act(obs: np.ndarray, _: int) -> np.ndarray:
            chosen = [annotator.top(o.astype(np.float64), m) for o in obs]
            for o, acts in zip(obs, chosen, strict=True):
                states.extend([o] * len(acts))
                actions.extend(acts)
            return np.stack([acts[0] for acts in chosen])

        steps = self._rollout(self.config["sft_episodes"], act, self.seed + 101)
        tmp = path.with_name(f".data.{os.getpid()}.npz")
        np.savez(tmp, states=np.stack(states), actions=np.stack(actions), env_steps=steps)
        os.replace(tmp, path)
        return np.stack(states), np.stack(actions), steps

    def _preferences(self) -> tuple[PreferenceStore, int]:
        folder = self._cache("prefs")
        store = PreferenceStore(folder / "prefs.jsonl")
        done = folder / "env_steps.json"
        if done.exists():
            return store, int(json.loads(done.read_text()))
        store.path.unlink(missing_ok=True)
        cfg = self.config
        oracle = _resolve(cfg["oracle"], {"eps": cfg["oracle_eps"], "seed": self.seed, **cfg["oracle_kwargs"]})
        deploy = PrimitivePolicy(self.sft, k=1, seed=self.seed + 202, ddim_steps=cfg["ddim_steps"])
        proposals = PrimitivePolicy(self.sft, k=cfg["pref_candidates"], scorer=RandomScorer(),
                                    seed=self.seed + 303, ddim_steps=cfg["ddim_steps"])
        rng = np.random.default_rng(self.seed + 404)
        annotator = self.make_annotator(self.seed + 12)
        step_of = {"n": 0}

        def act(obs: np.ndarray, episode: int) -> np.ndarray:
            proposals.select(obs)
            assert proposals.last_candidates is not None
            pairs = []
            for o, cands in zip(obs, proposals.last_candidates, strict=True):
                pool = np.concatenate([annotator(o.astype(np.float64))[None], cands])
                for _ in range(cfg["pairs_per_state"]):
                    i, j = rng.choice(len(pool), 2, replace=False)
                    label, gain_i, gain_j = oracle(o.astype(np.float64), pool[i], pool[j])
                    pairs.append(PreferencePair(o, pool[i], pool[j], label, {
                        "gain_first": gain_i, "gain_second": gain_j, "episode": episode, "step": step_of["n"],
                        "first": "annotated" if i == 0 else "predicted",
                        "second": "annotated" if j == 0 else "predicted"}))
            store.append(pairs)
            step_of["n"] += 1
            return deploy.select(obs)

        steps = self._rollout(cfg["pref_episodes"], act, self.seed + 505)
        done.write_text(json.dumps(steps))
        return store, steps

    def _split(self, store: PreferenceStore) -> tuple[list[PreferencePair], list[PreferencePair]]:
        pairs = store.load()
        cut = round(self.config["pref_episodes"] * (1 - self.config["heldout_fraction"]))
        train = [p for p in pairs if p.meta["episode"] < cut]
        held = [p for p in pairs if p.meta["episode"] >= cut]
        return train, held

    @staticmethod
    def _arrays(pairs: list[PreferencePair]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        decided = [p for p in pairs if p.label != "equal"]
        if not decided:
            raise ValueError("no win/lose preference pair to train on; lower oracle_eps or collect more")
        win = [p.first if p.label == "win" else p.second for p in decided]
        lose = [p.second if p.label == "win" else p.first for p in decided]
        return np.stack([p.context for p in decided]), np.stack(win), np.stack(lose)  # type: ignore[misc]

    def learn(self, total_timesteps: int = 0, callback: Any = None, reset_num_timesteps: bool = True,
              progress_bar: bool = False, tb_log_name: str = "DeformPAM", **_: Any) -> DeformPAM:
        """Build or load the stages this design needs; ``total_timesteps`` is not used (the data sizes are)."""
        cfg = self.config
        if callback is not None:
            callback.init_callback(self)
            callback.on_training_start(locals(), globals())
        if cfg["sampler"] in ("annotator", "uniform"):
            self.num_timesteps = 0
            return self._finish(callback)
        torch.manual_seed(self.seed)
        states, actions, data_steps = self._annotated_data()
        sft_path = self._cache("sft") / "sft.pt"
        if sft_path.exists():
            self.sft.load_state_dict(torch.load(sft_path))
        else:
            history = train_sft(self.sft, states, actions, steps=cfg["sft_steps"], batch_size=cfg["sft_batch"],
                                lr=cfg["sft_lr"], seed=self.seed + 1)
            _atomic_save(self.sft.state_dict(), sft_path)
            self.metrics["sft/final_loss"] = history[-1]
        self.sft.eval().requires_grad_(False)
        self.metrics["data/annotated_states"] = float(len(states) // cfg["annotations_per_state"])
        self.num_timesteps = data_steps
        needs_prefs = cfg["sampler"] == "dpo" or cfg["selector"] in ("implicit", "explicit")
        if needs_prefs:
            store, pref_steps = self._preferences()
            self.num_timesteps += pref_steps
            train, held = self._split(store)
            s, w, l_ = self._arrays(train)
            self.metrics.update({"data/pref_pairs_decided": float(len(s)), "data/pref_pairs": float(len(train))})
            if cfg["sampler"] == "dpo" or cfg["selector"] == "implicit":
                self.dpo = self._stage_dpo(s, w, l_)
            if cfg["selector"] == "explicit":
                self.head = self._stage_head(s, w, l_)
            if held:
                self._heldout_accuracy(held)
        self.policy = self._build_policy()
        return self._finish(callback)

    def _stage_dpo(self, s: np.ndarray, w: np.ndarray, l_: np.ndarray) -> PrimitiveDiffusion:
        cfg = self.config
        path = self._cache("dpo") / "dpo.pt"
        if path.exists():
            model = self._diffusion(self.target)
            model.load_state_dict(torch.load(path))
            return model.eval().requires_grad_(False)
        model, history = train_dpo(self.sft, s, w, l_, beta=cfg["beta"], form=cfg["loss"], steps=cfg["dpo_steps"],
                                   batch_size=cfg["dpo_batch"], lr=cfg["dpo_lr"], t_fraction=cfg["dpo_t_fraction"],
                                   seed=self.seed + 2)
        _atomic_save(model.state_dict(), path)
        self.metrics["dpo/final_loss"] = history[-1]
        return model

    def _stage_head(self, s: np.ndarray, w: np.ndarray, l_: np.ndarray) -> RewardHead:
        cfg = self.config
        with torch.random.fork_rng():
            torch.manual_seed(self.seed + 3)
            head = RewardHead(5, cfg["grid"], self.target, cfg["hidden"], cfg["features"])
        path = self._cache("head") / "head.pt"
        if path.exists():
            head.load_state_dict(torch.load(path))
            return head.eval().requires_grad_(False)
        train_reward_head(head, s, w, l_, steps=cfg["head_steps"], batch_size=cfg["head_batch"], lr=cfg["head_lr"],
                          seed=self.seed + 3)
        _atomic_save(head.state_dict(), path)
        return head

    @torch.no_grad()
    def _heldout_accuracy(self, held: list[PreferencePair]) -> None:
        """Share of held-out decided pairs the reward orders like the oracle, with a one-sided binomial p."""
        s, w, l_ = self._arrays(held)
        st = torch.as_tensor(s)
        cands = torch.stack([torch.as_tensor(w), torch.as_tensor(l_)], dim=1)
        scores = {}
        if self.dpo is not None:
            gen = torch.Generator().manual_seed(self.seed + 4)
            scores["implicit"] = implicit_reward(self.dpo, self.sft, st, cands, gen, beta=self.config["beta"],
                                                 n_draws=self.config["n_draws"], t_fraction=self.config["t_fraction"])
        if self.head is not None:
            scores["explicit"] = self.head(st, cands)
        for name, sc in scores.items():
            correct = int((sc[:, 0] > sc[:, 1]).sum())
            self.metrics[f"heldout/{name}_accuracy"] = correct / len(s)
            self.metrics[f"heldout/{name}_binom_p"] = float(stats.binomtest(correct, len(s), 0.5,
                                                                            alternative="greater").pvalue)
        self.metrics["heldout/pairs"] = float(len(s))

    def selection_seconds(self, repeats: int = 20) -> float:
        """Wall time of one selection on one state (sampling K candidates and scoring them), median."""
        assert self.env is not None
        obs = np.asarray(self.env.reset())[:1]
        self.predict(obs)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            self.predict(obs)
            times.append(time.perf_counter() - t0)
        self.policy.reseed(self.seed)
        return float(np.median(times))

    def _finish(self, callback: Any) -> DeformPAM:
        if self.env is not None:
            self.metrics["selection/seconds_per_step"] = self.selection_seconds()
        self.metrics["selection/torch_threads"] = float(torch.get_num_threads())
        if self.logger is not None:
            for key, value in self.metrics.items():
                self.logger.record(key, value)
            self.logger.dump(self.num_timesteps)
        if callback is not None:
            callback.on_step()
            callback.on_training_end()
        return self

    # -- SB3-like plumbing --------------------------------------------------------------------------------
    def set_logger(self, logger: Any) -> None:
        self.logger = logger

    def get_env(self) -> VecEnv | None:
        return self.env

    def set_random_seed(self, seed: int | None = None) -> None:
        self.policy.reseed(self.seed if seed is None else seed)
        self._rng = np.random.default_rng(seed)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Config, models and counters in one file (``agent.zip`` in the run's checkpoint)."""
        _atomic_save({"config": self.config, "seed": self.seed, "num_timesteps": self.num_timesteps,
                      "target": self.target, "metrics": self.metrics, "sft": self.sft.state_dict(),
                      "dpo": None if self.dpo is None else self.dpo.state_dict(),
                      "head": None if self.head is None else self.head.state_dict()}, Path(path))

    @classmethod
    def load(cls, path: str | os.PathLike[str], env: VecEnv | None = None, device: str = "cpu",
             **_: Any) -> DeformPAM:
        blob = torch.load(path, weights_only=False)
        agent = cls("MlpPolicy", env, seed=blob["seed"], **blob["config"])
        agent.target = blob["target"]
        cfg = agent.config
        agent.sft = agent._diffusion(agent.target)
        agent.sft.load_state_dict(blob["sft"])
        agent.sft.eval().requires_grad_(False)
        if blob["dpo"] is not None:
            agent.dpo = agent._diffusion(agent.target)
            agent.dpo.load_state_dict(blob["dpo"])
            agent.dpo.eval().requires_grad_(False)
        if blob["head"] is not None:
            agent.head = RewardHead(5, cfg["grid"], agent.target, cfg["hidden"], cfg["features"])
            agent.head.load_state_dict(blob["head"])
            agent.head.eval().requires_grad_(False)
        agent.num_timesteps, agent.metrics = int(blob["num_timesteps"]), dict(blob["metrics"])
        agent.policy = agent._build_policy()
        return agent
