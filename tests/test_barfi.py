"""BARFI: the Neumann hypergradient against the closed form, the schedule, the tasks, the reward terms, the trainer."""

from __future__ import annotations

import itertools
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

import robo_reward  # noqa: F401
from robo_reward.agents.barfi import BARFI, discounted_returns
from robo_reward.envs.barfi.tasks import CartPoleAux, ContinuousGridWorld, MountainCarBangAux
from robo_reward.methods.barfi import (
    AuxPotentialShaping,
    BlendedReward,
    BlendHead,
    Features,
    implicit_hypergradient,
)
from robo_reward.protocol import TransitionBatch
from robo_reward.registry import make_reward
from robo_reward.sb3 import RewardCallback, RewardVecEnvWrapper

UP, DOWN, LEFT, RIGHT = 0, 1, 2, 3


# -- a quadratic bilevel toy with a closed-form implicit gradient ---------------------------------------------------
class Quadratic:
    """Inner J_phi(theta) = -1/2 (theta - A phi)^T Q (theta - A phi), so theta*(phi) = A phi; outer
    J(theta) = -1/2 ||theta - target||^2, so dJ/dphi = A^T (target - A phi)."""

    def __init__(self, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.Q = torch.tensor([[2.0, 0.3, 0.0], [0.3, 1.0, 0.1], [0.0, 0.1, 1.5]])
        self.A = torch.randn(3, 2, generator=g)
        self.target = torch.randn(3, generator=g)

    def grads(self, phi: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        theta = torch.nn.Parameter((self.A @ phi).detach().clone())
        diff = theta - self.A @ phi
        inner = -0.5 * diff @ self.Q @ diff
        g = list(torch.autograd.grad(inner, [theta], create_graph=True))
        v = list(torch.autograd.grad(self.outer(theta), [theta]))
        return v, g, theta

    def outer(self, theta: torch.Tensor) -> torch.Tensor:
        return -0.5 * ((theta - self.target) ** 2).sum()

    def closed_form(self, phi: torch.Tensor) -> torch.Tensor:
        return self.A.T @ (self.target - self.A @ phi.detach())


def test_neumann_hypergradient_matches_closed_form_and_error_shrinks_with_loops() -> None:
    toy = Quadratic()
    phi = torch.tensor([0.3, -0.7], requires_grad=True)
    exact = toy.closed_form(phi)
    errors = []
    for loops in (0, 1, 5, 20, 100):
        v, g, theta = toy.grads(phi)
        (hyper,) = implicit_hypergradient(v, g, [theta], [phi], alpha=0.3, loops=loops)
        errors.append(float((hyper - exact).norm() / exact.norm()))
    assert all(b < a for a, b in itertools.pairwise(errors)), errors
    assert errors[-1] < 1e-4
    assert errors[0] > 0.05  # the first-order variant is an approximation, not the answer


def test_first_order_variant_is_alpha_v_times_the_mixed_jacobian() -> None:
    toy = Quadratic(seed=1)
    phi = torch.tensor([1.0, 0.5], requires_grad=True)
    v, g, theta = toy.grads(phi)
    (hyper,) = implicit_hypergradient(v, g, [theta], [phi], alpha=0.05, loops=0)
    mixed = toy.Q @ toy.A  # d/dphi grad_theta J_phi
    assert torch.allclose(hyper, 0.05 * mixed.T @ v[0], atol=1e-6)
    assert torch.dot(hyper, toy.closed_form(phi)) > 0  # an ascent direction for this positive-definite Q


def test_outer_step_along_the_hypergradient_increases_primary_return() -> None:
    toy = Quadratic(seed=2)
    phi = torch.tensor([-0.4, 0.9], requires_grad=True)
    v, g, theta = toy.grads(phi)
    (hyper,) = implicit_hypergradient(v, g, [theta], [phi], alpha=0.3, loops=20)
    before = float(toy.outer(toy.A @ phi.detach()))
    for step in (1e-3, 1e-2, 5e-2):
        after = float(toy.outer(toy.A @ (phi.detach() + step * hyper)))
        assert after > before
    assert float(toy.outer(toy.A @ (phi.detach() - 1e-2 * hyper))) < before


def test_hypergradient_rejects_bad_series_settings() -> None:
    toy = Quadratic()
    phi = torch.zeros(2, requires_grad=True)
    v, g, theta = toy.grads(phi)
    with pytest.raises(ValueError, match="loops"):
        implicit_hypergradient(v, g, [theta], [phi], alpha=0.0, loops=1)


# -- initialisation, features, returns ---------------------------------------------------------------------------
def test_initial_blend_is_the_naive_sum_and_gamma_about_0_99() -> None:
    head = BlendHead(Features("grid", 2, low=[0, 0], high=[1, 1], bins=4))
    assert 0.989 < float(head.gamma()) < 0.991
    feats = head.features(torch.rand(6, 2))
    r_p, r_aux = torch.randn(6), torch.randn(6)
    assert torch.equal(head.reward(feats, r_p, r_aux), r_p + r_aux)


@pytest.mark.parametrize("spec", [{"kind": "grid", "bins": 5}, {"kind": "fourier", "order": 2},
                                  {"kind": "linear", "scale": [2.0, 0.5]}])
def test_numpy_features_equal_torch_features(spec: dict[str, Any], rng: np.random.Generator) -> None:
    feats = Features.for_space(gym.spaces.Box(0.0, 1.0, (2,), np.float32), spec)
    obs = rng.random((50, 2)).astype(np.float32)
    np.testing.assert_allclose(feats.transform(obs), feats(torch.from_numpy(obs)).numpy(), atol=1e-6)


def test_grid_features_put_the_centre_square_in_its_own_cells() -> None:
    feats = Features("grid", 2, low=[0, 0], high=[1, 1], bins=10)
    cells = feats.transform(np.array([[0.45, 0.55], [0.59, 0.41], [0.65, 0.5]])).argmax(1)
    assert set(cells[:2].tolist()) <= {44, 45, 54, 55} and cells[2] not in {44, 45, 54, 55}


def test_discounted_returns_and_their_gamma_gradient() -> None:
    gamma = torch.tensor(0.5, requires_grad=True)
    returns = discounted_returns(torch.tensor([[1.0, 2.0, 4.0]]), gamma)
    assert torch.allclose(returns, torch.tensor([[3.0, 4.0, 4.0]]))
    returns[0, 0].backward()
    assert float(gamma.grad) == pytest.approx(2.0 + 2 * 0.5 * 4.0)


# -- the tasks ----------------------------------------------------------------------------------------------------
def test_gridworld_goal_pays_100_once_and_terminates() -> None:
    env = ContinuousGridWorld(aux="bad", noise=0.0)
    env.reset(seed=0)
    rewards, terminated, steps = [], False, 0
    for action in [RIGHT] * 4 + [UP] * 10:
        _, r, terminated, _, info = env.step(action)
        rewards.append(r)
        steps += 1
        if terminated:
            break
    assert terminated and info["is_success"] and info["goal_reached"] == 1.0
    assert sum(rewards) == pytest.approx(100.0 - 0.1 * steps)
    assert sum(r > 50 for r in rewards) == 1


def test_gridworld_bad_aux_pays_50_per_step_inside_the_centre_only() -> None:
    env = ContinuousGridWorld(aux="bad", noise=0.0)
    env.reset(seed=0)
    auxes, positions = [], []
    for action in [RIGHT, RIGHT, UP, UP, LEFT, RIGHT, UP]:
        obs, _, _, _, info = env.step(action)
        auxes.append(info["aux_reward"])
        positions.append(obs.copy())
    inside = [bool(np.all((p >= 0.4) & (p <= 0.6))) for p in positions]
    assert any(inside) and not all(inside)
    assert auxes == [50.0 if i else 0.0 for i in inside]
    assert info["centre_steps"] == sum(inside)


def test_gridworld_good_aux_and_the_x_only_parity_flag() -> None:
    full, x_only = ContinuousGridWorld(aux="good", noise=0.0), ContinuousGridWorld(aux="good", noise=0.0, x_only=True)
    for env in (full, x_only):
        env.reset(seed=0)
    full.step(UP)
    info_full = full.step(DOWN)[4]
    assert info_full["aux_reward"] == pytest.approx(-((0.125 - 0.87) ** 2) - (0.125 - 0.87) ** 2)
    x_only.step(UP)
    assert x_only.step(UP)[4]["aux_reward"] == pytest.approx(-((0.125 - 0.87) ** 2))


def test_gridworld_noise_and_wall_clipping() -> None:
    env = ContinuousGridWorld(aux="none", noise=1.0)
    env.reset(seed=3)
    moved = {tuple(np.round(env.step(LEFT)[0], 3)) for _ in range(30)}
    assert len(moved) > 3  # random actions, not always left
    env = ContinuousGridWorld(aux="none", noise=0.0)
    env.reset(seed=0)
    assert env.step(LEFT)[0][0] == 0.0
    with pytest.raises(ValueError, match="aux"):
        ContinuousGridWorld(aux="great")


def test_cartpole_aux_rewards_agreement_with_the_pd_controller() -> None:
    good, bad = CartPoleAux("good"), CartPoleAux("bad")
    for env in (good, bad):
        env.reset(seed=1)
    for _ in range(5):
        pd = good.pd_action(np.asarray(good.state))
        assert good.step(pd)[4]["aux_reward"] == 1.0
        assert good.step(1 - good.pd_action(np.asarray(good.state)))[4]["aux_reward"] == 0.0
        agree = bad.step(bad.pd_action(np.asarray(bad.state)))[4]["aux_reward"]
        disagree = bad.step(1 - bad.pd_action(np.asarray(bad.state)))[4]["aux_reward"]
        assert -5.0 <= agree <= 0.0 and 1.0 <= disagree <= 2.0


def test_mountain_car_bang_bang_aux_and_sparse_primary() -> None:
    env = MountainCarBangAux()
    env.reset(seed=0)
    env.unwrapped.state = np.array([-0.5, 0.01])
    _, r, _, _, info = env.step(2)
    assert info["aux_reward"] == 5.0 and r == 0.0
    env.unwrapped.state = np.array([-0.5, 0.01])
    assert env.step(0)[4]["aux_reward"] == -5.0
    assert env.step(1)[4]["aux_reward"] == -5.0
    env.unwrapped.state = np.array([0.55, 0.05])
    _, r, terminated, _, _ = env.step(2)
    assert r == 1.0 and terminated


@pytest.mark.parametrize("env_id", ["robo_reward/GridWorldBadAux-v0", "robo_reward/CartPolePDAux-v0",
                                    "robo_reward/MountainCarBangAux-v0"])
def test_registered_tasks_pass_the_checker_and_report_aux(env_id: str) -> None:
    from gymnasium.utils.env_checker import check_env

    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    env.reset(seed=0)
    assert "aux_reward" in env.step(env.action_space.sample())[4]


# -- the reward terms ---------------------------------------------------------------------------------------------
def _venv(env_id: str, n: int = 2, **kwargs: Any) -> DummyVecEnv:
    venv = DummyVecEnv([lambda: Monitor(gym.make(env_id, **kwargs)) for _ in range(n)])
    venv.seed(0)
    return venv


def test_aux_reward_term_pays_r_p_plus_r_aux() -> None:
    venv = RewardVecEnvWrapper(_venv("robo_reward/GridWorldBadAux-v0", noise=0.0), {"name": "aux_reward"})
    venv.reset()
    for action in (RIGHT, RIGHT, UP, UP):
        _, rewards, _, infos = venv.step(np.array([action, action]))
        expected = [info["original_env_rew"] + info["aux_reward"] for info in infos]
        np.testing.assert_allclose(rewards, expected, rtol=1e-6)
    assert any(info["aux_reward"] == 50.0 for info in infos)


def test_aux_potential_shaping_is_gamma_phi_next_minus_phi() -> None:
    shaping = make_reward("aux_potential", gamma=0.9)
    assert isinstance(shaping, AuxPotentialShaping)
    venv = RewardVecEnvWrapper(_venv("robo_reward/GridWorldBadAux-v0", n=1, noise=0.0), shaping)
    venv.reset()
    previous, paid = 0.0, []
    for action in [RIGHT, RIGHT, UP, UP, RIGHT, UP]:
        _, rewards, _, infos = venv.step(np.array([action]))
        aux = infos[0]["aux_reward"]
        paid.append(float(rewards[0]) - infos[0]["original_env_rew"])
        assert paid[-1] == pytest.approx(0.9 * (0.0 if infos[0]["is_success"] else aux) - previous, abs=1e-4)
        previous = aux
    assert max(paid) == pytest.approx(45.0, abs=1e-4) and min(paid) < -40  # entering and leaving the centre


def test_aux_terms_name_a_missing_info_key() -> None:
    batch = TransitionBatch(np.zeros((1, 2)), np.zeros((1, 1)), np.zeros((1, 2)), np.zeros(1), np.zeros(1, bool),
                            np.zeros(1, bool), infos=[{}])
    with pytest.raises(Exception, match="aux_reward"):
        make_reward("aux_reward")(batch)


# -- the trainer --------------------------------------------------------------------------------------------------
class Chain(gym.Env):
    """Step 0: action 0 pays ``now`` and ends; action 1 walks ``k`` more steps and pays ``later`` at the end.

    The observation puts step t in its own cell of a (k + 1)-bin grid, so the choice at step 0 has its own weights.
    """

    def __init__(self, now: float = 1.0, later: float = 3.0, k: int = 4) -> None:
        self.now, self.later, self.k = now, later, k
        self.observation_space = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.t = 0

    def _obs(self) -> np.ndarray:
        return np.array([(self.t + 0.5) / (self.k + 1), 0.5], np.float32)

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self.t == 0 and int(action) == 0:
            return self._obs(), self.now, True, False, {"aux_reward": 0.0}
        self.t += 1
        done = self.t >= self.k
        return self._obs(), self.later if done else 0.0, done, False, {"aux_reward": 0.0}


def _chain_trainer(gamma: float, psi: float, episodes: int = 90, delta: int = 30, **kwargs: Any) -> BARFI:
    venv = DummyVecEnv([lambda: Monitor(gym.wrappers.TimeLimit(Chain(**kwargs), 10))])
    model = BARFI("LinearSoftmax", venv, seed=0, gamma=gamma, psi_init=psi, first_mul=10**6, buffer_size=2 * delta,
                  delta=delta, horizon=10, features={"kind": "grid", "bins": 5}, actor_lr=1e-9, actor_reg=0.0)
    while model.episodes < episodes:
        model.learn(10, reset_num_timesteps=False)
    return model


@pytest.mark.parametrize(("gamma", "psi", "sign"), [(0.99, 0.0, 1.0), (0.5, 4.6, -1.0)])
def test_learned_gamma_moves_where_the_primary_return_asks(gamma: float, psi: float, sign: float) -> None:
    """gamma_phi = 0.5 makes the inner learner prefer 1 now over 3 later (3 * 0.5^4), which the primary gamma 0.99
    does not: the hypergradient raises psi. With primary gamma 0.5 (1 now beats 3 * 0.5^4 later) and gamma_phi = 0.99
    (which prefers 3 * 0.99^4) it lowers psi."""
    model = _chain_trainer(gamma, psi)
    order = model.buffer.order()
    grads = model.hypergradient(model.buffer.batch(order[-30:]), model.buffer.batch(order[:-30]))
    assert sign * float(grads[-1]) > 0
    before = model.gamma_phi
    for _ in range(5):
        model.outer_step()
    assert sign * (model.gamma_phi - before) > 0


def test_outer_gradient_reads_the_primary_reward_only_and_disjoint_buffers() -> None:
    model = _chain_trainer(0.99, 0.0, delta=3, episodes=30)
    order = model.buffer.order()
    recent, older = model.buffer.batch(order[-3:]), model.buffer.batch(order[:-3])
    base = model.hypergradient(recent, older)
    noisy_aux = recent._replace(r_aux=recent.r_aux + 100.0 * torch.randn_like(recent.r_aux))
    for a, b in zip(base, model.hypergradient(noisy_aux, older), strict=True):
        assert torch.equal(a, b)
    shifted = recent._replace(r_p=recent.r_p + 5.0 * recent.mask)
    assert any(not torch.allclose(a, b) for a, b in zip(base, model.hypergradient(shifted, older), strict=True))
    seen: list[np.ndarray] = []
    batch = model.buffer.batch
    model.buffer.batch = lambda idx: (seen.append(np.asarray(idx)), batch(idx))[1]  # type: ignore[method-assign]
    model.outer_step()
    assert set(seen[0].tolist()) == set(order[-3:].tolist())
    assert not set(seen[1].tolist()) & set(order[-3:].tolist())


def test_schedule_warm_up_then_burst_then_outer_plus_inner_steps() -> None:
    venv = DummyVecEnv([lambda: Monitor(gym.wrappers.TimeLimit(Chain(now=1.0, later=1.0, k=0), 5))])
    model = BARFI("LinearSoftmax", venv, seed=0, first_mul=9, delta=3, inner_mul=5, buffer_size=30,
                  horizon=5, features={"kind": "linear"})
    log: list[tuple[str, int]] = []
    inner, outer = model.inner_step, model.outer_step
    model.inner_step = lambda batch, naive=False: (log.append(("naive" if naive else "inner", model.episodes)),  # type: ignore[method-assign]
                                                   inner(batch, naive=naive))[1]
    model.outer_step = lambda: (log.append(("outer", model.episodes)), outer())[1]  # type: ignore[method-assign]
    model.learn(2 * 21)  # each episode is 1 or 2 steps; stop well past the warm-up
    calls = [kind for kind, _ in log]
    assert all(kind == "naive" for kind, ep in log if ep <= 9) and calls[:3] == ["naive"] * 3
    first_inner = calls.index("inner")
    assert calls[first_inner:first_inner + 24] == ["inner"] * 24  # 3 * 5 + first_mul
    rest = calls[first_inner + 24:]
    assert rest and rest[0] == "outer"
    blocks = "".join("o" if c == "outer" else "i" for c in rest).split("o")[1:]
    assert blocks and all(b == "i" * 15 for b in blocks[:-1])
    episodes_at_outer = [ep for kind, ep in log if kind == "outer"]
    assert all(b - a == 3 for a, b in itertools.pairwise(episodes_at_outer))


def test_save_load_round_trip_and_export_to_a_reward_term(tmp_path: Any) -> None:
    venv = _venv("robo_reward/GridWorldBadAux-v0", n=1)
    model = BARFI("LinearSoftmax", venv, seed=0, first_mul=6, buffer_size=20, features={"kind": "grid", "bins": 5})
    model.learn(600)
    assert model.outer_steps > 0 and model.num_timesteps >= 600
    with torch.no_grad():
        model.head.weight[1, 12] = -2.0
    model.save(tmp_path / "agent.zip")
    loaded = BARFI.load(tmp_path / "agent.zip", env=venv)
    assert torch.equal(loaded.theta, model.theta) and loaded.outer_steps == model.outer_steps
    assert loaded.buffer.added == model.buffer.added and loaded.num_timesteps == model.num_timesteps
    obs = np.random.default_rng(0).random((20, 2)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    blend = BlendedReward(str(tmp_path / "agent.zip"))
    assert blend.gamma_phi == pytest.approx(model.gamma_phi)
    centre, corner = np.array([[0.5, 0.5]]), np.array([[0.1, 0.1]])
    for obs_row in (centre, corner):
        batch = TransitionBatch(obs_row, np.zeros((1, 1)), obs_row, np.zeros(1), np.zeros(1, bool), np.zeros(1, bool),
                                infos=[{"aux_reward": 50.0}])
        feats = model.features(torch.as_tensor(obs_row, dtype=torch.float32))
        expected = model.head.reward(feats, torch.zeros(1), torch.full((1,), 50.0)).detach().numpy()
        np.testing.assert_allclose(blend(batch), expected, rtol=1e-5)
    assert blend(TransitionBatch(centre, np.zeros((1, 1)), centre, np.zeros(1), np.zeros(1, bool),
                                 np.zeros(1, bool), infos=[{"aux_reward": 50.0}]))[0] < 0  # phi2(centre) < 0 exported


def test_trainer_rejects_what_it_cannot_learn() -> None:
    with pytest.raises(ValueError, match=r"agent\.policy"):
        BARFI("MlpPolicy", _venv("robo_reward/GridWorldBadAux-v0", n=1))
    with pytest.raises(ValueError, match="Discrete"):
        BARFI("LinearSoftmax", DummyVecEnv([lambda: gym.make("Pendulum-v1")]))
    with pytest.raises(ValueError, match="buffer_size"):
        BARFI("LinearSoftmax", _venv("robo_reward/GridWorldBadAux-v0", n=1), buffer_size=3, delta=3)


@pytest.mark.parametrize("config", ["mountaincar/barfi.yaml", "mountaincar/naive.yaml", "gridworld/good/barfi.yaml",
                                    "cartpole/bad/potential.yaml"])
def test_configs_build_a_trainer_that_steps(config: str) -> None:
    from pathlib import Path

    from robo_reward.config import load_config
    from robo_reward.runner import TrainingRun

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "barfi" / config)
    run = TrainingRun(cfg, "unused", seed=0)
    venv = run._build_env()
    model = BARFI(cfg.agent.policy, venv, seed=0, **cfg.agent.kwargs)
    callback = RewardCallback() if run.reward is not None else None
    model.learn(40, callback=callback)
    assert model.num_timesteps == 40 and model.features.dim > 0
    if callback is not None:
        assert run.reward.gamma == model.gamma  # type: ignore[union-attr]
