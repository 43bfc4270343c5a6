"""Learned reward models on torch, with the per-call overhead kept small.

:class:`TorchReward` is the base for rewards computed by a ``torch.nn.Module``: it builds the module once it knows
the env's spaces, runs it under ``torch.inference_mode`` on CPU float32 tensors made with ``torch.from_numpy``
(no copies when the input is already contiguous float32), and saves the module's weights with the run.
:class:`MLPReward` is the generic r(s, a, s') MLP used by several methods and by the speed benchmark.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from robo_reward.protocol import Obs, Reward, RewardError, RewardOutput, SpaceMismatchError, TransitionBatch


def as_tensor(x: np.ndarray) -> torch.Tensor:
    """A float32 CPU tensor sharing memory with ``x`` where possible."""
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


_ACTIVATIONS = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Identity: None}


class NumpyInference:
    """Forward pass of an ``nn.Sequential`` of Linear layers and ReLU/Tanh in numpy, on views of its parameters.

    For the small nets rewards use, torch's per-op dispatch costs more than the arithmetic (about 20 us for a
    2x64 MLP on 8 rows, against 7 us here). Past ``MAX_WIDTH`` units BLAS threading makes numpy the slower one,
    so wider nets stay on torch. The views share memory with the parameters, so in-place optimiser steps and
    ``load_state_dict`` are seen at once; a replaced parameter (or its ``.data``) is noticed by its data pointer
    and the views rebuilt. Parameters are read from each layer's ``_parameters`` dict: ``nn.Module.__getattr__``
    alone would cost a third of the arithmetic. Hidden activations go into buffers kept per batch size (one
    ``np.dot(..., out=)`` and in-place bias and activation per layer, no allocation); the output is a new array.
    """

    MAX_WIDTH = 128

    def __init__(self, net: nn.Sequential) -> None:
        self.net = net
        self._params: list[dict[str, Any]] = []
        self._acts: list[str | None] = []
        for m in net:
            if isinstance(m, nn.Linear):
                self._params.append(m._parameters)
                self._acts.append(None)
            elif type(m) in _ACTIVATIONS and self._params:
                if self._acts[-1] is not None and _ACTIVATIONS[type(m)] is not None:
                    raise TypeError(f"NumpyInference supports one activation after each Linear, got {net}")
                self._acts[-1] = self._acts[-1] or _ACTIVATIONS[type(m)]
            elif type(m) in _ACTIVATIONS:
                raise TypeError(f"NumpyInference needs a Linear layer first, got {m}")
            else:
                raise TypeError(f"NumpyInference supports Linear, ReLU, Tanh and Identity layers, not {m}")
        self._layers: list[tuple[np.ndarray, np.ndarray | None, str | None]] = []
        self._ptrs: list[int] = []
        self._buffers: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        self._head: np.ndarray | None = None
        self._head_bias: np.ndarray | None = None

    def _refresh(self) -> list[tuple[np.ndarray, np.ndarray | None, str | None]]:
        ptrs = [t.data_ptr() for p in self._params for t in p.values() if t is not None]
        if ptrs != self._ptrs:
            self._layers = [(p["weight"].detach().numpy().T,
                             None if p.get("bias") is None else p["bias"].detach().numpy().reshape(1, -1), act)
                            for p, act in zip(self._params, self._acts, strict=True)]
            w, b, act = self._layers[-1]
            self._head = w[:, 0] if w.shape[1] == 1 and act is None else None
            self._head_bias = None if b is None else b[0]
            self._ptrs = ptrs
            self._buffers.clear()
        return self._layers

    def _hidden(self, x: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray | None, str | None]]) -> np.ndarray:
        """Every layer but the last, into the buffers kept for this many rows.

        Biases are ``(1, units)`` views and ReLU compares with a kept zero array: numpy's fast paths for
        same-rank operands halve the cost of both at one row.
        """
        buffers = self._buffers.get(len(x))
        if buffers is None:
            buffers = self._buffers[len(x)] = [(np.empty((len(x), w.shape[1]), np.float32),
                                                np.zeros((len(x), w.shape[1]), np.float32)) for w, _, _ in layers[:-1]]
        h = x
        for (w, b, act), (out, zero) in zip(layers[:-1], buffers, strict=True):
            h = np.dot(h, w, out=out)
            if b is not None:
                h += b
            if act == "relu":
                np.maximum(h, zero, out=h)
            elif act == "tanh":
                np.tanh(h, out=h)
        return h

    def __call__(self, x: np.ndarray) -> np.ndarray:
        layers = self._refresh()
        w, b, act = layers[-1]
        h = np.dot(self._hidden(np.asarray(x, dtype=np.float32), layers), w)
        if b is not None:
            h += b
        if act == "relu":
            np.maximum(h, 0.0, out=h)
        elif act == "tanh":
            np.tanh(h, out=h)
        return h

    def scores(self, x: np.ndarray) -> np.ndarray:
        """A one-output net's value per row as a float64 ``(n,)`` array (the last bias add also casts)."""
        layers = self._refresh()
        if self._head is None:
            return self(x)[:, 0].astype(np.float64)
        out = np.dot(self._hidden(np.asarray(x, dtype=np.float32), layers), self._head)
        b = self._head_bias
        return out.astype(np.float64) if b is None else np.add(out, b, dtype=np.float64)


def flat(obs: Obs) -> np.ndarray:
    """Rows of a Box observation flattened to vectors (dict observations are refused with a clear error)."""
    if isinstance(obs, dict):
        raise SpaceMismatchError(f"this reward reads flat vector observations, got a dict with keys {sorted(obs)}")
    return obs if obs.ndim == 2 else obs.reshape(len(obs), -1)


class TorchReward(Reward):
    """Base for rewards computed by a torch module built from the env's spaces.

    Subclasses implement :meth:`build` (the module, given the spaces) and :meth:`forward` (batch -> tensor of
    rewards). Learning rewards also override :meth:`update`.
    """

    module: nn.Module | None = None

    @abc.abstractmethod
    def build(self, observation_space: gym.Space, action_space: gym.Space) -> nn.Module:
        """The module computing the reward, for these spaces."""

    @abc.abstractmethod
    def forward(self, batch: TransitionBatch) -> torch.Tensor:
        """Rewards of ``batch`` as a (n,) tensor, differentiable for training."""

    def bind(self, observation_space: gym.Space, action_space: gym.Space, num_envs: int) -> None:
        super().bind(observation_space, action_space, num_envs)
        if self.module is None:
            self.module = self.build(observation_space, action_space)

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        if self.module is None:
            raise RewardError(f"reward '{self.name}' is not bound to an env yet: wrap an env with it first")
        return self.infer(batch)

    def infer(self, batch: TransitionBatch) -> np.ndarray:
        """Rewards without gradients (the step-time path); subclasses may use a faster equivalent."""
        with torch.inference_mode():
            return self.forward(batch).numpy().astype(np.float64, copy=False)

    def state_dict(self) -> dict[str, Any]:
        if self.module is None:
            raise RewardError(f"reward '{self.name}' has no weights until it is bound to an env")
        return {"module": self.module.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if self.module is None:
            raise RewardError(f"bind reward '{self.name}' to an env before loading its weights")
        try:
            self.module.load_state_dict(state["module"])
        except RuntimeError as exc:
            raise RewardError(f"checkpoint does not match reward '{self.name}': {exc}") from exc


class MLPReward(TorchReward):
    """r(s, a, s') = MLP([s, a, s']) (each input optional), for Box observation and action spaces.

    :param hidden: hidden layer sizes. :param inputs: which of ``obs``, ``action``, ``next_obs`` feed the net.
    :param seed: seeds the initial weights, so two runs with the same config start from the same model.
    """

    name = "mlp"

    def __init__(self, *, hidden: Sequence[int] = (64, 64), inputs: Sequence[str] = ("obs", "action", "next_obs"),
                 seed: int = 0, label: str = "mlp") -> None:
        bad = set(inputs) - {"obs", "action", "next_obs"}
        if bad or not inputs:
            raise ValueError(f"MLPReward inputs must be a non-empty subset of obs, action, next_obs; got {inputs}")
        self.hidden, self.inputs, self.seed, self.name = tuple(hidden), tuple(inputs), seed, label

    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        for kind, space in (("observation", observation_space), ("action", action_space)):
            if not isinstance(space, gym.spaces.Box):
                raise SpaceMismatchError(f"MLPReward needs a Box {kind} space, got {space}")

    def build(self, observation_space: gym.Space, action_space: gym.Space) -> nn.Module:
        obs_size = int(np.prod(observation_space.shape or ()))
        sizes = {"obs": obs_size, "next_obs": obs_size, "action": int(np.prod(action_space.shape or ()))}
        dims = [sum(sizes[k] for k in self.inputs), *self.hidden, 1]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            layers: list[nn.Module] = []
            for i in range(len(dims) - 1):
                layers.append(nn.Linear(dims[i], dims[i + 1]))
                if i < len(dims) - 2:
                    layers.append(nn.ReLU())
            net = nn.Sequential(*layers)
        self._numpy = NumpyInference(net) if max(dims) <= NumpyInference.MAX_WIDTH else None
        return net.eval()

    def features(self, batch: TransitionBatch) -> np.ndarray:
        """The net's float32 input rows: the chosen inputs flattened and side by side."""
        arrays = [flat(getattr(batch, k)) for k in self.inputs]
        if len(arrays) == 1:
            return arrays[0].astype(np.float32, copy=False)
        return np.concatenate(arrays, axis=1, dtype=np.float32)

    def forward(self, batch: TransitionBatch) -> torch.Tensor:
        assert self.module is not None
        return self.module(as_tensor(self.features(batch))).squeeze(-1)

    def infer(self, batch: TransitionBatch) -> np.ndarray:
        if self._numpy is None:
            return super().infer(batch)
        return self._numpy.scores(self.features(batch))

    def evaluate(self, batch: TransitionBatch) -> RewardOutput:
        if self.module is None:
            raise RewardError(f"reward '{self.name}' is not bound to an env yet: wrap an env with it first")
        total = self.infer(batch)
        return RewardOutput(total, {self.name: total})
