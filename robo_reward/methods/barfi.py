"""BARFI: bi-level learning of how to blend a primary and an auxiliary reward (Gupta et al., NeurIPS 2023).

"Behavior Alignment via Reward Function Optimization". The learned reward and discount are

    r_phi(s, a) = r_p + phi1(s) + phi2(s) * r_aux,        gamma_phi = sigmoid(psi),

an inner policy-gradient learner maximises the return of r_phi under gamma_phi, and the outer loop moves
(phi, psi) to raise the *primary* return of the resulting policy with the implicit gradient (Lorraine et al.,
AISTATS 2020)

    dJ/dphi = -grad_theta J^T [H]^-1 d/dphi grad_theta J_phi,   H = hess_theta J_phi,

whose inverse Hessian is a Neumann series: for a negative-definite H and a small alpha,
H^-1 v = -alpha * sum_j (I + alpha H)^j v, so dJ/dphi ~= alpha * [sum_{j<=L} (I + alpha H)^j v]^T d/dphi grad J_phi.

This module holds the parts a reward term and the trainer (:mod:`robo_reward.agents.barfi`) share:

* :class:`Features` (grid one-hot, Fourier basis, or scaled linear features) and :class:`BlendHead` (phi1, phi2,
  psi) on them; :func:`implicit_hypergradient`, the Neumann-series vector-Jacobian product;
* reward terms: :class:`BlendedReward` (a trained blend, for an SB3 learner), :class:`AuxReward` (the naive
  r_p + r_aux baseline) and :class:`AuxPotentialShaping` (r_aux as a potential).

Departures (specs/barfi.md, "small-scale faithful build"): phi is a linear head on fixed features (the paper's
GridWorld learns the features too); a potential read from ``info`` is the aux of the transition that *entered*
the state, with Phi(s_0) = 0 since the reset observation carries no info.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from robo_reward.potentials import Potential
from robo_reward.protocol import Reward, RewardError, RewardOutput, SpaceMismatchError, TransitionBatch
from robo_reward.shaping import PotentialShaping

PSI_INIT = 4.6  # sigmoid(4.6) ~= 0.990, the paper's initial gamma_phi


class Features(nn.Module):
    """Fixed state features for the linear policy and the blend head.

    * ``grid``: one-hot of the cell of an ``bins`` x ``bins`` grid over the first two observation dims (tabular);
    * ``fourier``: the order-``order`` Fourier cosine basis of the observation scaled to [0, 1] (Konidaris 2011);
    * ``linear``: the observation divided by ``scale``, plus a constant 1.

    :param kind: ``grid``, ``fourier`` or ``linear``.
    :param low: lower bounds of the observation (grid, fourier).
    :param high: upper bounds of the observation (grid, fourier).
    :param bins: cells per dim (grid).
    :param order: basis order (fourier).
    :param scale: per-dim divisor (linear).
    """

    low: torch.Tensor
    span: torch.Tensor
    scale: torch.Tensor
    coeffs: torch.Tensor

    def __init__(self, kind: Literal["grid", "fourier", "linear"], obs_dim: int, *, low: Sequence[float] | None = None,
                 high: Sequence[float] | None = None, bins: int = 10, order: int = 3,
                 scale: Sequence[float] | None = None) -> None:
        super().__init__()
        if kind not in ("grid", "fourier", "linear"):
            raise ValueError(f"features kind={kind!r}; use 'grid', 'fourier' or 'linear'")
        if kind in ("grid", "fourier") and (low is None or high is None):
            raise ValueError(f"{kind} features need finite observation bounds: give features.low and features.high")
        if kind == "grid" and obs_dim < 2:
            raise ValueError(f"grid features need an observation with >= 2 dims, got {obs_dim}")
        self.kind, self.obs_dim, self.bins, self.order = kind, int(obs_dim), int(bins), int(order)
        self.config = {"kind": kind, "obs_dim": obs_dim, "low": None if low is None else list(map(float, low)),
                       "high": None if high is None else list(map(float, high)), "bins": bins, "order": order,
                       "scale": None if scale is None else list(map(float, scale))}
        dims = 2 if kind == "grid" else obs_dim
        lo = torch.tensor(low if low is not None else [0.0] * obs_dim, dtype=torch.float32)[:dims]
        hi = torch.tensor(high if high is not None else [1.0] * obs_dim, dtype=torch.float32)[:dims]
        self.register_buffer("low", lo)
        self.register_buffer("span", hi - lo)
        divisor = torch.tensor(scale if scale is not None else [1.0] * obs_dim, dtype=torch.float32)
        if divisor.numel() != obs_dim:
            raise ValueError(f"features.scale has {divisor.numel()} entries, the observation has {obs_dim} dims")
        self.register_buffer("scale", divisor)
        coeffs = torch.tensor(list(itertools.product(range(order + 1), repeat=obs_dim)), dtype=torch.float32)
        self.register_buffer("coeffs", coeffs if kind == "fourier" else torch.zeros(0))
        self.dim = {"grid": self.bins**2, "fourier": len(coeffs), "linear": obs_dim + 1}[kind]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Features:
        return cls(**dict(config))

    @classmethod
    def for_space(cls, space: gym.Space, spec: Mapping[str, Any]) -> Features:
        """Features for a flat Box observation space; bounds default to the space's where they are finite."""
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise SpaceMismatchError(f"BARFI needs a flat Box observation space, got {space}")
        spec = dict(spec)
        kind = spec.pop("kind", "linear")
        if kind in ("grid", "fourier"):
            for key, bound in (("low", space.low), ("high", space.high)):
                if key not in spec:
                    if not np.isfinite(bound).all():
                        raise ValueError(f"the observation space {space} is unbounded; give features.{key}")
                    spec[key] = bound.tolist()
        return cls(kind, int(space.shape[0]), **spec)

    def transform(self, obs: np.ndarray) -> np.ndarray:
        """The same features in numpy (float32), for the per-step path where torch's call overhead dominates."""
        obs = np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)
        if self.kind == "linear":
            return np.concatenate([obs / self._np["scale"], np.ones((len(obs), 1), np.float32)], axis=1)
        if self.kind == "fourier":
            unit = np.minimum(np.maximum((obs - self._np["low"]) / self._np["span"], 0.0), 1.0)
            return np.cos(np.pi * unit @ self._np["coeffs"].T).astype(np.float32)
        unit = np.minimum(np.maximum((obs[:, :2] - self._np["low"]) / self._np["span"], 0.0), 1.0 - 1e-6)
        cell = (unit * self.bins).astype(np.int64)
        out = np.zeros((len(obs), self.dim), np.float32)
        out[np.arange(len(obs)), cell[:, 0] * self.bins + cell[:, 1]] = 1.0
        return out

    @property
    def _np(self) -> dict[str, np.ndarray]:
        if not hasattr(self, "_np_cache"):
            self._np_cache = {k: getattr(self, k).numpy() for k in ("low", "span", "scale", "coeffs")}
        return self._np_cache

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.kind == "linear":
            return torch.cat([obs / self.scale, torch.ones_like(obs[:, :1])], dim=1)
        if self.kind == "fourier":
            unit = ((obs - self.low) / self.span).clamp(0.0, 1.0)
            return torch.cos(math.pi * unit @ self.coeffs.T)
        unit = ((obs[:, :2] - self.low) / self.span).clamp(0.0, 1.0 - 1e-6)
        cell = (unit * self.bins).long()
        index = cell[:, 0] * self.bins + cell[:, 1]
        return torch.nn.functional.one_hot(index, self.dim).to(obs.dtype)


class BlendHead(nn.Module):
    """phi1(s), phi2(s) (a linear head on fixed features) and psi, with gamma_phi = sigmoid(psi).

    At initialisation phi1 = 0 and phi2 = 1 everywhere, so r_phi = r_p + r_aux exactly, and gamma_phi ~= 0.990.

    :param features: the state features.
    :param psi: initial psi.
    """

    def __init__(self, features: Features, psi: float = PSI_INIT) -> None:
        super().__init__()
        self.features = features
        self.weight = nn.Parameter(torch.zeros(2, features.dim))
        self.bias = nn.Parameter(torch.tensor([0.0, 1.0]))
        self.psi = nn.Parameter(torch.tensor(float(psi)))

    def reward_parameters(self) -> list[nn.Parameter]:
        return [self.weight, self.bias]

    def phi(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(phi1, phi2) for a batch of feature rows."""
        out = feats @ self.weight.T + self.bias
        return out[:, 0], out[:, 1]

    def gamma(self) -> torch.Tensor:
        return torch.sigmoid(self.psi)

    def reward(self, feats: torch.Tensor, r_p: torch.Tensor, r_aux: torch.Tensor) -> torch.Tensor:
        """r_phi = r_p + phi1(s) + phi2(s) * r_aux (rows of the same shape)."""
        phi1, phi2 = self.phi(feats.reshape(-1, feats.shape[-1]))
        return r_p + phi1.reshape(r_p.shape) + phi2.reshape(r_p.shape) * r_aux

    def export(self) -> dict[str, Any]:
        """Plain data that :class:`BlendedReward` rebuilds the head from."""
        return {"features": dict(self.features.config),
                "state": {k: v.detach().clone() for k, v in self.state_dict().items()}}

    @classmethod
    def from_export(cls, data: Mapping[str, Any]) -> BlendHead:
        head = cls(Features.from_config(data["features"]))
        head.load_state_dict(data["state"])
        return head


def implicit_hypergradient(outer_grad: Sequence[torch.Tensor], inner_grad: Sequence[torch.Tensor],
                           theta: Sequence[torch.Tensor], phi: Sequence[torch.Tensor], *, alpha: float,
                           loops: int) -> list[torch.Tensor]:
    """dJ/dphi by the implicit function theorem with a Neumann-series inverse Hessian (Lorraine et al. 2020).

    With v = grad_theta J (the outer objective's gradient), g = grad_theta J_phi (the inner objective's, built with
    ``create_graph=True`` so that it depends on theta and phi) and H = dg/dtheta (negative definite near an inner
    maximum): p = sum_{j=0}^{L} (I + alpha H)^j v, computed as u <- u + alpha H u, p <- p + u, and the result is
    the vector-Jacobian product alpha * p^T dg/dphi. ``loops=0`` is the first-order variant, alpha * v^T dg/dphi.
    The recursion is derived from the series, not from Lorraine et al.'s pseudo-code (which has typos).

    :param outer_grad: grad_theta J, one tensor per theta tensor (no graph needed).
    :param inner_grad: grad_theta J_phi with a graph through theta and phi.
    :param theta: the inner parameters.
    :param phi: the outer parameters (the reward head and psi).
    :param alpha: Neumann step; the series converges when alpha * |eigenvalues of H| < 2.
    :param loops: L, the number of Hessian-vector products.
    :returns: dJ/dphi, one tensor per phi tensor (ascent direction).
    """
    if loops < 0 or alpha <= 0:
        raise ValueError(f"Neumann series needs loops >= 0 and alpha > 0, got loops={loops}, alpha={alpha}")
    term = [v.detach().clone() for v in outer_grad]
    total = [v.clone() for v in term]
    for _ in range(loops):
        hvp = torch.autograd.grad(inner_grad, theta, grad_outputs=term, retain_graph=True)
        term = [u + alpha * h for u, h in zip(term, hvp, strict=True)]
        total = [p + u for p, u in zip(total, term, strict=True)]
    grads = torch.autograd.grad(inner_grad, phi, grad_outputs=[alpha * p for p in total], retain_graph=True,
                                allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for x, g in zip(phi, grads, strict=True)]


def _aux(batch: TransitionBatch, key: str) -> np.ndarray:
    if not batch.infos:
        raise RewardError(f"the auxiliary reward is read from info[{key!r}] but this batch has no infos; use the "
                          "term through a VecEnv wrapper (the robo_reward adapters pass infos)")
    try:
        return np.fromiter((info[key] for info in batch.infos), dtype=np.float64, count=batch.num)
    except KeyError:
        raise RewardError(f"the env does not report info[{key!r}]; use a task with an auxiliary reward "
                          "(robo_reward/GridWorldBadAux-v0, ...) or set aux_key") from None


class AuxReward(Reward):
    """The designer's auxiliary reward read from ``info[aux_key]``, scaled: the naive r_p + r_aux baseline.

    :param aux_key: the info key holding r_aux.
    :param scale: multiplies r_aux.
    """

    name = "aux"
    needs_infos = True

    def __init__(self, aux_key: str = "aux_reward", scale: float = 1.0) -> None:
        self.aux_key, self.scale = aux_key, float(scale)

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        return self.scale * _aux(batch, self.aux_key)


class InfoAuxPotential(Potential):
    """Phi(s') = scale * r_aux of the transition that entered s' (read from ``info``); Phi(s_0) = 0."""

    stateless = False

    def __init__(self, aux_key: str = "aux_reward", scale: float = 1.0) -> None:
        self.aux_key, self.scale = aux_key, float(scale)

    def initial(self, obs: Any, env_mask: np.ndarray) -> np.ndarray:
        return np.zeros(int(np.count_nonzero(env_mask)))

    def next(self, batch: TransitionBatch) -> np.ndarray:
        return self.scale * _aux(batch, self.aux_key)


class AuxPotentialShaping(PotentialShaping):
    """Potential-based shaping with the auxiliary reward as the potential, F = gamma Phi(s') - Phi(s).

    The paper's "potential" baselines; the package's terminal rule applies (Phi = 0 on termination, kept on
    truncation) and gamma comes from the learner. Where r_aux depends on the action (CartPole's PD agreement),
    Phi is not a function of the state alone and the invariance guarantee does not hold; the paper uses it anyway.

    :param aux_key: the info key holding r_aux.
    :param scale: multiplies r_aux.
    :param gamma: leave unset to take the learner's.
    """

    needs_infos = True

    def __init__(self, aux_key: str = "aux_reward", scale: float = 1.0, gamma: float | None = None,
                 label: str = "aux_shaping") -> None:
        super().__init__(InfoAuxPotential(aux_key, scale), gamma=gamma, label=label)


class BlendedReward(Reward):
    """A blend learned by BARFI, phi1(s) + phi2(s) * r_aux, as a reward term for any learner (e.g. SB3 PPO).

    With the env's reward kept (``extrinsic_weight: 1``) the agent is paid the full r_phi = r_p + phi1 + phi2 r_aux.
    ``source`` is a BARFI run folder (its latest checkpoint), a checkpoint's ``agent.zip``, or a file written by
    :meth:`robo_reward.agents.barfi.BARFI.export_blend`. ``gamma_phi`` holds the learned discount: BARFI's learner
    optimised r_phi under it, so set the SB3 agent's gamma to it to reproduce the inner problem.

    :param source: where the trained blend is.
    :param aux_key: the info key holding r_aux.
    """

    name = "blend"
    needs_infos = True

    def __init__(self, source: str, aux_key: str = "aux_reward") -> None:
        self.source, self.aux_key = str(source), aux_key
        self.head = BlendHead.from_export(load_blend(source))
        self.gamma_phi = float(self.head.gamma())

    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        shape = getattr(observation_space, "shape", None)
        if shape != (self.head.features.obs_dim,):
            raise SpaceMismatchError(f"the blend in {self.source} was learned on {self.head.features.obs_dim}-dim "
                                     f"observations, the env has {observation_space}")

    def evaluate(self, batch: TransitionBatch) -> RewardOutput:
        with torch.no_grad():
            feats = self.head.features(torch.as_tensor(np.asarray(batch.obs), dtype=torch.float32))
            phi1, phi2 = (x.double().numpy() for x in self.head.phi(feats))
        aux = _aux(batch, self.aux_key)
        total = phi1 + phi2 * aux
        return RewardOutput(total, {self.name: total, f"{self.name}/phi1": phi1, f"{self.name}/phi2": phi2})

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        return self.evaluate(batch).total


def load_blend(source: str | Path) -> dict[str, Any]:
    """The exported blend (``{"features", "state"}``) from a run folder, a BARFI checkpoint or an export file."""
    path = Path(source)
    if path.is_dir():
        pointer = path / "checkpoints" / "latest"
        if not pointer.exists():
            raise FileNotFoundError(f"{path} is not a BARFI run folder with checkpoints/latest; give the run folder "
                                    "of a finished robo-reward train run or a blend file")
        path = path / "checkpoints" / pointer.read_text().strip() / "agent.zip"
    if not path.exists():
        raise FileNotFoundError(f"no BARFI blend at {path}; train one with robo-reward train configs/barfi/...")
    data = torch.load(path, map_location="cpu", weights_only=False)
    blend = data.get("blend", data) if isinstance(data, dict) else None
    if not isinstance(blend, dict) or "features" not in blend:
        raise ValueError(f"{path} holds no BARFI blend (expected a BARFI checkpoint or an export_blend file)")
    return blend
