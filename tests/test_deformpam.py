"""DeformPAM: Diffusion-DPO loss, implicit reward, reward-guided selection and the trainer behind robo-reward."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import robo_reward  # noqa: F401
from robo_reward.envs.granular.annotator import PreferenceOracle, score_gains
from robo_reward.envs.granular.sweep import initial_pile, t_target
from robo_reward.methods.deformpam import (
    ImplicitRewardScorer,
    PrimitiveDiffusion,
    PrimitivePolicy,
    RandomScorer,
    dpo_loss,
    implicit_reward,
    train_dpo,
)


def tiny_model(seed: int = 0) -> PrimitiveDiffusion:
    torch.manual_seed(seed)
    return PrimitiveDiffusion(grid=8, hidden=32, features=16, target=t_target())


def states(n: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.as_tensor(np.stack([initial_pile(300, rng) for _ in range(n)]), dtype=torch.float32)


def test_implicit_reward_is_exactly_zero_for_a_copy_with_shared_noise() -> None:
    ref = tiny_model()
    policy = copy.deepcopy(ref)
    cands = torch.rand(3, 16, 5) * 2 - 1
    r = implicit_reward(policy, ref, states(3), cands, torch.Generator().manual_seed(0), beta=1000.0)
    assert r.shape == (3, 16)
    assert torch.equal(r, torch.zeros_like(r))


def test_loss_at_initialisation_is_log2_or_minus_half() -> None:
    ref = tiny_model()
    policy = copy.deepcopy(ref)
    s, w, l_ = states(4), torch.rand(4, 5), torch.rand(4, 5)
    t, eps = torch.randint(0, 100, (4,)), torch.randn(4, 5)
    loss, _ = dpo_loss(policy, ref, s, w, l_, t, eps, beta=100.0, form="logsigmoid")
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6)
    loss, _ = dpo_loss(policy, ref, s, w, l_, t, eps, beta=100.0, form="sigmoid")
    assert loss.item() == pytest.approx(-0.5, abs=1e-6)
    with pytest.raises(ValueError, match="loss form"):
        dpo_loss(policy, ref, s, w, l_, t, eps, beta=1.0, form="hinge")  # type: ignore[arg-type]


@pytest.mark.parametrize("form", ["logsigmoid", "sigmoid"])
def test_dpo_on_one_pair_separates_winner_and_loser(form: str) -> None:
    ref = tiny_model()
    s = states(1)
    w, l_ = torch.tensor([[0.5, -0.5, 0.2, 0.1, 0.0]]), torch.tensor([[-0.6, 0.4, -0.3, 0.5, 0.9]])
    policy, history = train_dpo(ref, s.numpy(), w.numpy(), l_.numpy(), beta=100.0, form=form,  # type: ignore[arg-type]
                                steps=30, batch_size=1, lr=1e-3, t_fraction=0.1)
    gen = torch.Generator().manual_seed(5)
    t, eps = torch.randint(0, 10, (64,), generator=gen), torch.randn(64, 5, generator=gen)
    feats, ref_feats = policy.encode(s.expand(64, -1, -1)), ref.encode(s.expand(64, -1, -1))
    with torch.no_grad():
        gap_w = (policy.x0_error(w.expand(64, -1), t, eps, feats) - ref.x0_error(w.expand(64, -1), t, eps, ref_feats))
        gap_l = (policy.x0_error(l_.expand(64, -1), t, eps, feats) - ref.x0_error(l_.expand(64, -1), t, eps,
                                                                                   ref_feats))
    assert float(gap_w.mean()) < 0 < float(gap_l.mean())
    r = implicit_reward(policy, ref, s, torch.stack([w, l_], dim=1), torch.Generator().manual_seed(1), beta=100.0)
    assert float(r[0, 0]) > float(r[0, 1])
    assert history[-1] < history[0] and history[0] == pytest.approx(math.log(2) if form == "logsigmoid" else -0.5)
    for p_ref in ref.parameters():
        assert not p_ref.requires_grad


class Recording(PrimitiveDiffusion):
    """A model that records the timesteps and rows it is asked to denoise, and counts its sample calls."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        super().__init__(grid=8, hidden=16, features=8)
        self.timesteps: list[torch.Tensor] = []
        self.sample_calls = 0

    def predict_x0(self, noisy: torch.Tensor, t: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        self.timesteps.append(t.clone())
        return super().predict_x0(noisy, t, features)

    def sample(self, points: torch.Tensor, k: int, generator: torch.Generator, ddim_steps: int = 10) -> torch.Tensor:
        self.sample_calls += 1
        return super().sample(points, k, generator, ddim_steps)


def test_scoring_uses_least_noisy_tenth_and_exactly_n_draws() -> None:
    policy, ref = Recording(), Recording()
    implicit_reward(policy, ref, states(2), torch.zeros(2, 16, 5), torch.Generator().manual_seed(0), beta=1.0,
                    n_draws=10, t_fraction=0.1)
    (t_pol,), (t_ref,) = policy.timesteps, ref.timesteps
    assert t_pol.numel() == 2 * 16 * 10
    assert int(t_pol.max()) < 10 and torch.equal(t_pol, t_ref)
    per_state = t_pol.view(2, 16, 10)
    assert torch.equal(per_state[:, :1].expand(-1, 16, -1), per_state)
    assert len(torch.unique(per_state[0, 0])) > 1


def test_ras_draws_candidates_only_from_the_reference_and_executes_the_argmax() -> None:
    ref, dpo = Recording(), Recording()
    ras = PrimitivePolicy(ref, k=16, scorer=ImplicitRewardScorer(dpo, ref, beta=100.0), seed=0)
    actions = ras.select(states(3).numpy())
    assert ref.sample_calls == 1 and dpo.sample_calls == 0
    assert ras.last_candidates is not None and ras.last_scores is not None
    best = ras.last_scores.argmax(axis=1)
    np.testing.assert_array_equal(actions, ras.last_candidates[np.arange(3), best])

    class Fixed:
        def __call__(self, s: torch.Tensor, c: torch.Tensor, g: torch.Generator) -> torch.Tensor:
            scores = torch.zeros(c.shape[:2])
            scores[:, 7] = 1.0
            return scores

    fixed = PrimitivePolicy(ref, k=16, scorer=Fixed(), seed=0)
    chosen = fixed.select(states(2).numpy())
    assert fixed.last_candidates is not None
    np.testing.assert_array_equal(chosen, fixed.last_candidates[:, 7])


def test_selection_is_deterministic_under_a_seed() -> None:
    ref, dpo = tiny_model(0), tiny_model(1)
    s = states(2).numpy()

    def run(seed: int) -> np.ndarray:
        return PrimitivePolicy(ref, k=16, scorer=ImplicitRewardScorer(dpo, ref, beta=100.0), seed=seed).select(s)

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


class UniformSampler:
    """Candidates uniform in the action box (duck-types ``PrimitiveDiffusion.sample``)."""

    def sample(self, points: torch.Tensor, k: int, generator: torch.Generator, ddim_steps: int = 10) -> torch.Tensor:
        return torch.rand(points.shape[0], k, 5, generator=generator) * 2 - 1


class OracleScorer:
    """Scores candidates by their true IoU gain from the env's particles (the harness check)."""

    def __call__(self, s: torch.Tensor, c: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return torch.as_tensor(np.stack([score_gains(si.double().numpy(), ci.double().numpy())
                                         for si, ci in zip(s, c, strict=True)]))


def test_best_of_n_with_an_oracle_beats_random_selection_in_a_gym_loop() -> None:
    def final_iou(scorer: object, seed: int) -> float:
        policy = PrimitivePolicy(UniformSampler(), k=16, scorer=scorer, seed=seed)  # type: ignore[arg-type]
        env = gym.make("robo_reward/GranularSweep-v0", horizon=8)
        obs, _ = env.reset(seed=seed)
        truncated, info = False, {}
        while not truncated:
            obs, _, _, truncated, info = env.step(policy(obs))
        return float(info["final_iou"])

    oracle = [final_iou(OracleScorer(), s) for s in range(3)]
    random = [final_iou(RandomScorer(), s) for s in range(3)]
    assert min(oracle) > max(random)


@pytest.mark.slow
def test_implicit_reward_orders_heldout_oracle_pairs() -> None:
    """After DPO on oracle-labelled pairs, held-out pairs (new sweep pairs from the same states) are ordered better
    than chance (the untuned model's implicit reward is identically zero, so it orders none)."""
    from scipy import stats

    from robo_reward.methods.deformpam import train_sft

    rng = np.random.default_rng(0)
    oracle = PreferenceOracle(eps=0.01)
    s_all, w_all, l_all = [], [], []
    annot = np.stack([initial_pile(300, rng) for _ in range(30)])
    from robo_reward.envs.granular.annotator import GreedyAnnotator

    annotator = GreedyAnnotator(n_proposals=32, seed=0)
    ref = tiny_model()
    train_sft(ref, annot, np.stack([annotator(p) for p in annot]), steps=100, batch_size=32)
    for _ in range(30):
        pts = initial_pile(300, rng)
        proposals = annotator.proposals(pts)
        for _ in range(10):
            a, b = proposals[rng.choice(len(proposals) - 1, 2, replace=False)]
            label, _, _ = oracle(pts, a, b)
            if label != "equal":
                s_all.append(pts)
                w_all.append(a if label == "win" else b)
                l_all.append(b if label == "win" else a)
    order = rng.permutation(len(s_all))
    s, w, l_ = (np.asarray(x, np.float32)[order] for x in (s_all, w_all, l_all))
    n_train = int(0.7 * len(s))
    policy, _ = train_dpo(ref, s[:n_train], w[:n_train], l_[:n_train], beta=100.0, steps=200, batch_size=28,
                          lr=1e-3, t_fraction=0.1)
    held = torch.stack([torch.as_tensor(w[n_train:]), torch.as_tensor(l_[n_train:])], dim=1)
    r = implicit_reward(policy, ref, torch.as_tensor(s[n_train:]), held, torch.Generator().manual_seed(0),
                        beta=100.0)
    correct = int((r[:, 0] > r[:, 1]).sum())
    untuned = implicit_reward(copy.deepcopy(ref), ref, torch.as_tensor(s[n_train:]), held,
                              torch.Generator().manual_seed(0), beta=100.0)
    assert int((untuned[:, 0] > untuned[:, 1]).sum()) == 0
    assert stats.binomtest(correct, len(held), 0.5, alternative="greater").pvalue < 0.05


@pytest.mark.slow
def test_trainer_runs_through_robo_reward_train_and_shares_cached_stages(tmp_path: Path) -> None:
    from robo_reward.config import load_config
    from robo_reward.runner import TrainingRun, train

    tiny = ["agent.kwargs.sft_episodes=2", "agent.kwargs.pref_episodes=2", "agent.kwargs.sft_steps=20",
            "agent.kwargs.dpo_steps=10", "agent.kwargs.head_steps=10", "agent.kwargs.pairs_per_state=2",
            "agent.kwargs.pref_candidates=2", "agent.kwargs.heldout_fraction=0.5", "agent.kwargs.hidden=16",
            "agent.kwargs.features=8", "agent.kwargs.annotator_kwargs={n_proposals: 16}",
            f"agent.kwargs.cache_dir={tmp_path / 'cache'}", "eval.episodes=2", "eval.n_envs=1",
            "env.kwargs.horizon=3"]
    root = Path(__file__).resolve().parents[1] / "configs" / "deformpam"
    cfg = load_config(root / "deformpam.yaml", tiny)
    summary = train(cfg, tmp_path / "ras", seed=0, progress=False)
    assert summary["timesteps"] == 12 and summary["final_progress"] is not None
    assert summary["final_info/steps_to_threshold"] is not None
    assert len(list((tmp_path / "cache").glob("prefs-s0-*/prefs.jsonl"))) == 1
    sft_files = list((tmp_path / "cache").glob("sft-s0-*/sft.pt"))
    stamp = sft_files[0].stat().st_mtime_ns
    train(load_config(root / "sft.yaml", tiny), tmp_path / "sft", seed=0, progress=False)
    assert list((tmp_path / "cache").glob("sft-s0-*/sft.pt")) == sft_files
    assert sft_files[0].stat().st_mtime_ns == stamp
    progress = (tmp_path / "ras" / "tb" / "progress.csv").read_text()
    assert "selection/seconds_per_step" in progress and "heldout/implicit_accuracy" in progress
    run = TrainingRun(load_config(tmp_path / "ras" / "config.yaml"), tmp_path / "ras", progress=False)
    run.restore()
    assert run.model is not None and run.model.dpo is not None  # type: ignore[attr-defined]
    a = run.model.predict(np.zeros((1, 300, 2), np.float32))[0]
    assert a.shape == (1, 5)


def test_trainer_rejects_bad_settings() -> None:
    from robo_reward.agents.deformpam import DeformPAM

    with pytest.raises(ValueError, match="unknown DeformPAM agent kwargs"):
        DeformPAM("MlpPolicy", None, beta_value=1.0)
    with pytest.raises(ValueError, match="selector"):
        DeformPAM("MlpPolicy", None, selector="best")
    with pytest.raises(ValueError, match="reference policy"):
        DeformPAM("MlpPolicy", None, sampler="annotator", selector="implicit")
