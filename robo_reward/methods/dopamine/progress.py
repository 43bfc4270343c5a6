"""Progress models: batched hop queries H(start anchor, goal anchor, BEFORE views, AFTER views) in [-1, 1].

Three implementations share one interface, so everything downstream (fusion, shaping, training, VOC) runs
against any of them:

* :class:`OracleProgressModel`: the exact hop from the env's privileged progress, through the label formulas
  (tests of everything downstream; fused progress then equals true progress).
* :class:`LearnedGRM`: the small CPU-trainable stand-in for the paper's GRM (a per-view CNN shared across views,
  a task embedding, the 8-slot structure START, END, BEFORE x V, AFTER x V, and a tanh hop head).
* :class:`LearnedProgressHead`: a per-state progress head phi(s | START, END) with an ensemble; its hop is derived
  from phi through the label formula, so the three query modes share one forward pass (see its docstring).
* :class:`HttpGRM` (in ``http.py``): the released GRM (or any VLM) behind an OpenAI-compatible endpoint.

A model first *embeds* observations (per state: all views; per anchor: the anchor camera's image), and then
answers hop queries on embeddings. The reward embeds each new state once per vector step and keeps the
embeddings of s_{t-1}, s_0 and the anchors, so a step costs one encoder call and one hop call over all envs and
all three query modes, instead of re-encoding every image three times. The hop GRM's state embedding also carries
the state's share of the head's first layer (as BEFORE and as AFTER), so s_t's share is computed once and reused
as s_{t-1} at the next step; the progress head runs its ensemble as batched matrix products. Both inference
shortcuts cache rewritten weights until a parameter is written (``robo-reward perf --pixels`` measures the path).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from robo_reward.methods.dopamine.labels import hop_label

PER_STATE = "phi"


class ProgressModel(abc.ABC):
    """H(start, goal, before, after) for batches of embedded anchors and states.

    :param cameras: the views of a state, in slot order (the paper uses front, left wrist, right wrist).
    :param anchor_camera: the camera of the reference START/END images (front in the paper).
    """

    needs_privileged: bool = False

    def __init__(self, cameras: Sequence[str] = ("front", "wrist"), anchor_camera: str = "front") -> None:
        self.cameras, self.anchor_camera = tuple(cameras), anchor_camera

    def embed_states(self, views: Mapping[str, np.ndarray], progress: np.ndarray | None = None) -> np.ndarray:
        """One row per state from its camera images (``views[camera]``: (n, H, W, 3) uint8)."""
        missing = [c for c in self.cameras if c not in views]
        if missing:
            raise KeyError(f"progress model needs cameras {list(self.cameras)}; observation lacks {missing} "
                           f"(has {sorted(views)}); render them with obs_mode='state+pixels'")
        return np.stack([np.asarray(views[c]) for c in self.cameras], axis=1)

    def embed_anchors(self, images: np.ndarray, progress: np.ndarray | None = None) -> np.ndarray:
        """One row per reference anchor image ((n, H, W, 3) of the anchor camera)."""
        return np.asarray(images)

    def anchor_as_state(self, anchors: np.ndarray) -> np.ndarray:
        """A state whose every view is the anchor image (backward mode puts the goal in all BEFORE slots)."""
        return np.repeat(np.asarray(anchors)[:, None], len(self.cameras), axis=1)

    def anchor_of_state(self, states: np.ndarray) -> np.ndarray | None:
        """The anchor embedding of each state's anchor-camera view, read from its state embedding (what
        :meth:`embed_anchors` of that image returns), or None where the state embedding does not hold it.

        :param states: rows of :meth:`embed_states`.
        """
        return None

    @abc.abstractmethod
    def hop(self, start: np.ndarray, goal: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """H in [-1, 1] per row; ``start``/``goal`` may have one row, broadcast over the batch."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


class OracleProgressModel(ProgressModel):
    """Exact hops from privileged progress: embeddings are the env's progress values in [0, 1].

    Anchors are the demo's first and last frames, so their progress is 0 and 1.
    """

    needs_privileged = True

    def embed_states(self, views: Mapping[str, np.ndarray], progress: np.ndarray | None = None) -> np.ndarray:
        if progress is None:
            raise ValueError("the oracle progress model needs the env's privileged progress (info['progress'])")
        return np.clip(np.asarray(progress, dtype=np.float64), 0.0, 1.0)

    def embed_anchors(self, images: np.ndarray, progress: np.ndarray | None = None) -> np.ndarray:
        if progress is None:
            raise ValueError("oracle anchors need their progress (0 for START, 1 for END)")
        return np.asarray(progress, dtype=np.float64)

    def anchor_as_state(self, anchors: np.ndarray) -> np.ndarray:
        return np.asarray(anchors, dtype=np.float64)

    def hop(self, start: np.ndarray, goal: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        return hop_label(before, after)


def _conv_out(size: int) -> int:
    for kernel, stride in ((4, 2), (4, 2), (3, 1)):
        size = (size - kernel) // stride + 1
    return size


class _PixelModel(ProgressModel):
    """A learned progress model whose embeddings are its net's image encoder applied to every view."""

    net: Any

    def _encode_tensor(self, images: np.ndarray) -> torch.Tensor:
        """(..., H, W, 3) uint8 -> (prod(...), embed_dim); call under ``torch.inference_mode``."""
        flat = images.reshape(-1, *images.shape[-3:])
        if flat.shape[1:3] != (self.net.image_size, self.net.image_size):
            raise ValueError(f"GRM expects {self.net.image_size}x{self.net.image_size} images, got "
                             f"{flat.shape[1]}x{flat.shape[2]}; set the env's image_size to match")
        return self.net.encode(torch.from_numpy(np.ascontiguousarray(flat)))

    def _encode(self, images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = self._encode_tensor(images)
        return out.numpy().reshape(*images.shape[:-3], -1)

    def embed_states(self, views: Mapping[str, np.ndarray], progress: np.ndarray | None = None) -> np.ndarray:
        return self._encode(super().embed_states(views))

    def embed_anchors(self, images: np.ndarray, progress: np.ndarray | None = None) -> np.ndarray:
        return self._encode(np.asarray(images))

    def state_views(self, states: np.ndarray) -> np.ndarray:
        """The per-view encoder outputs (n, V, D) inside rows of :meth:`embed_states`."""
        return states

    def anchor_of_state(self, states: np.ndarray) -> np.ndarray | None:
        if self.anchor_camera not in self.cameras:
            return None
        return np.array(self.state_views(states)[:, self.cameras.index(self.anchor_camera)])


def _versions(params: Sequence[torch.Tensor]) -> tuple[tuple[int, int], ...]:
    """Identity and in-place version of each tensor: changes when an optimiser step or load_state_dict writes it."""
    return tuple((id(p), p._version) for p in params)


class GRMNet(nn.Module):
    """Per-view CNN encoder shared by all 2 + 2V slots, slot and task embeddings, and a tanh hop head."""

    def __init__(self, num_views: int, num_tasks: int = 1, image_size: int = 48, width: int = 16,
                 embed_dim: int = 128, task_dim: int = 16, hidden: int = 256) -> None:
        super().__init__()
        side = _conv_out(image_size)
        if side < 1:
            raise ValueError(f"image_size={image_size} is too small for the GRM encoder (needs >= 22)")
        self.encoder = nn.Sequential(
            nn.Conv2d(3, width, 4, 2), nn.ReLU(), nn.Conv2d(width, 2 * width, 4, 2), nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, 1), nn.ReLU(), nn.Flatten(),
            nn.Linear(2 * width * side * side, embed_dim), nn.LayerNorm(embed_dim),
        )
        self.num_views, self.image_size = num_views, image_size
        self.slots = nn.Parameter(torch.zeros(2 + 2 * num_views, embed_dim))
        self.task = nn.Embedding(num_tasks, task_dim)
        inputs = (2 + 3 * num_views) * embed_dim + task_dim
        self.head = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                  nn.Linear(hidden, 1))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, embed_dim)."""
        x = images.permute(0, 3, 1, 2).float().div_(255.0).sub_(0.5)
        return self.encoder(x)

    def hop(self, start: torch.Tensor, goal: torch.Tensor, before: torch.Tensor, after: torch.Tensor,
            task: torch.Tensor) -> torch.Tensor:
        """Embeddings (B, D), (B, D), (B, V, D), (B, V, D) and task ids (B,) -> H in [-1, 1], shape (B,)."""
        slots = torch.cat([start[:, None], goal[:, None], before, after], dim=1) + self.slots
        feats = torch.cat([slots.flatten(1), (after - before).flatten(1), self.task(task)], dim=1)
        return torch.tanh(self.head(feats)).squeeze(-1)

    def _split_first_layer(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The head's first layer rewritten for cached queries: (W_state (V D, 2 hidden), W_anchor (2 D + task_dim,
        hidden), constant (hidden,)), cached until a parameter is written (inference only).

        With W1 = [W_s | W_g | W_b | W_a | W_d | W_t] over [start, goal, before, after, after - before, task] plus the
        slot embeddings, W1 x + b1 = W_s s + W_g g + W_t t + (W_b - W_d) before + (W_a + W_d) after + const, so a
        state's contribution as BEFORE and as AFTER is computed once, when it is embedded.
        """
        first = self.head[0]
        assert isinstance(first, nn.Linear)
        key = _versions([first.weight, first.bias, self.slots])
        cached = getattr(self, "_first_layer", None)
        if cached is not None and cached[0] == key and torch.is_inference_mode_enabled():
            return cached[1]
        d, vd = self.slots.shape[1], self.num_views * self.slots.shape[1]
        w = first.weight
        w_b, w_a, w_d = w[:, 2 * d:2 * d + vd], w[:, 2 * d + vd:2 * d + 2 * vd], w[:, 2 * d + 2 * vd:2 * d + 3 * vd]
        w_state = torch.cat([w_b - w_d, w_a + w_d], dim=0).t().contiguous()
        w_anchor = torch.cat([w[:, :2 * d], w[:, 2 * d + 3 * vd:]], dim=1).t().contiguous()
        const = first.bias + w[:, :(2 + 2 * self.num_views) * d] @ self.slots.flatten()
        parts = (w_state, w_anchor, const)
        if torch.is_inference_mode_enabled():
            self._first_layer = (key, parts)
        return parts

    def project(self, states: torch.Tensor) -> torch.Tensor:
        """View embeddings (B, V, D) -> (B, 2 hidden): the state's first-layer term as BEFORE, then as AFTER."""
        return states.flatten(1) @ self._split_first_layer()[0]

    def hop_projected(self, start: torch.Tensor, goal: torch.Tensor, before: torch.Tensor, after: torch.Tensor,
                      task: torch.Tensor) -> torch.Tensor:
        """:meth:`hop` from :meth:`project` ed states: anchors (1 or B, D), BEFORE/AFTER terms (B, hidden), task ids
        (1 or B,) -> H (B,). Equal to :meth:`hop` up to float rounding; for inference (cached weights)."""
        _, w_anchor, const = self._split_first_layer()
        pre = torch.cat([start, goal, self.task(task)], dim=1) @ w_anchor + const
        return torch.tanh(self.head[1:](pre + before + after)).squeeze(-1)


class LearnedGRM(_PixelModel):
    """The small learned GRM (a stand-in for the paper's 3B/8B VLM; see :class:`GRMNet`).

    The paper's GRM reads all views in one prompt and prints a score; this one encodes each view with a shared
    CNN, adds learned slot embeddings (START, END, BEFORE per view, AFTER per view), appends the view-wise
    AFTER - BEFORE differences and a task embedding, and regresses H with tanh. It is trained with the paper's
    adaptation loss (MSE on hop labels), not the released code's token cross-entropy.
    """

    def __init__(self, cameras: Sequence[str] = ("front", "wrist"), anchor_camera: str = "front", *,
                 tasks: Sequence[str] = ("default",), task: str | None = None, image_size: int = 48,
                 seed: int = 0, **net_kwargs: Any) -> None:
        super().__init__(cameras, anchor_camera)
        self.tasks = tuple(tasks)
        self.task_id = self.tasks.index(task) if task is not None else 0
        self.net_kwargs = dict(net_kwargs, image_size=image_size)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = GRMNet(len(self.cameras), len(self.tasks), **self.net_kwargs)
        self.net.eval()

    def _state_rows(self, views: torch.Tensor) -> np.ndarray:
        """(n, V, D) view embeddings -> rows [views | BEFORE term | AFTER term] (see :meth:`GRMNet.project`)."""
        return torch.cat([views.flatten(1), self.net.project(views)], dim=1).numpy()

    def embed_states(self, views: Mapping[str, np.ndarray], progress: np.ndarray | None = None) -> np.ndarray:
        """One row per state: its V view embeddings, then its first-layer terms as BEFORE and as AFTER, so a state
        embedded once serves as AFTER now and as BEFORE at the next step without touching its images again."""
        images = ProgressModel.embed_states(self, views)
        with torch.inference_mode():
            enc = self._encode_tensor(images).view(len(images), len(self.cameras), -1)
            return self._state_rows(enc)

    def anchor_as_state(self, anchors: np.ndarray) -> np.ndarray:
        views = np.repeat(np.asarray(anchors, dtype=np.float32)[:, None], len(self.cameras), axis=1)
        with torch.inference_mode():
            return self._state_rows(torch.from_numpy(views))

    def state_views(self, states: np.ndarray) -> np.ndarray:
        d = self.net.slots.shape[1]
        return states[:, :len(self.cameras) * d].reshape(len(states), len(self.cameras), d)

    def hop(self, start: np.ndarray, goal: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """H for rows of :meth:`embed_states` (``before``, ``after``) and of :meth:`embed_anchors`."""
        hidden, vd = self.net.head[0].out_features, len(self.cameras) * self.net.slots.shape[1]
        for name, x in (("before", before), ("after", after)):
            if x.ndim != 2 or x.shape[1] != vd + 2 * hidden:
                raise ValueError(f"LearnedGRM.hop: {name} has shape {x.shape}; it takes rows of "
                                 f"embed_states/anchor_as_state of width {vd + 2 * hidden}")
        t = torch.from_numpy
        rows = max(len(start), len(goal))
        with torch.inference_mode():
            out = self.net.hop_projected(t(np.broadcast_to(start, (rows, start.shape[-1])).copy()),
                                         t(np.broadcast_to(goal, (rows, goal.shape[-1])).copy()),
                                         t(before[:, vd:vd + hidden]), t(after[:, vd + hidden:]),
                                         torch.full((rows,), self.task_id, dtype=torch.long))
        return out.numpy().astype(np.float64)

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "tasks": self.tasks, "cameras": self.cameras,
                "anchor_camera": self.anchor_camera, "net_kwargs": self.net_kwargs}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if tuple(state["cameras"]) != self.cameras:
            raise ValueError(f"GRM checkpoint was trained on cameras {list(state['cameras'])}, this model uses "
                             f"{list(self.cameras)}; set cameras to match")
        self.tasks = tuple(state["tasks"])
        self.net_kwargs = dict(state["net_kwargs"])
        self.net = GRMNet(len(self.cameras), len(self.tasks), **self.net_kwargs)
        self.net.load_state_dict(state["net"])
        self.net.eval()

    @classmethod
    def load(cls, path: str, *, task: str | None = None, beta: float | None = None) -> ProgressModel:
        """A GRM saved by :func:`robo_reward.methods.dopamine.training.save_grm` (either kind of model)."""
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state.get("kind") == PER_STATE:
            if task is not None:
                raise ValueError("a per-state progress head has no task embedding; drop model.task")
            head = LearnedProgressHead.from_state(state)
            if beta is not None:
                head.beta = float(beta)
            return head
        if beta is not None:
            raise ValueError("beta (pessimism) applies to a per-state progress head; this checkpoint is a hop GRM")
        model = cls(state["cameras"], state["anchor_camera"], tasks=state["tasks"], **state["net_kwargs"])
        model.load_state_dict(state)
        if task is not None:
            if task not in model.tasks:
                raise ValueError(f"task {task!r} is not one the GRM was trained on: {list(model.tasks)}")
            model.task_id = model.tasks.index(task)
        return model


class SpatialSoftmax(nn.Module):
    """Feature maps (B, K, H, W) -> the expected image coordinates of each map's softmax, (B, 2K) in [-1, 1]
    (the keypoint encoder of Levine et al. 2016, "End-to-end training of deep visuomotor policies")."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, k, h, w = x.shape
        attn = torch.softmax(x.flatten(2), dim=-1).view(b, k, h, w)
        ys = torch.linspace(-1.0, 1.0, h, device=x.device)
        xs = torch.linspace(-1.0, 1.0, w, device=x.device)
        return torch.cat([(attn.sum(2) * xs).sum(-1), (attn.sum(3) * ys).sum(-1)], dim=1)


class PhiNet(nn.Module):
    """Per-view CNN shared by all slots and an ensemble of MLP heads phi_k(s | START, END) in [0, 1].

    The head reads the START and END anchor embeddings, the state's view embeddings and the differences of the
    anchor-camera view from both anchors. ``encoder="conv"``: a strided CNN with a LayerNorm'd linear embedding;
    ``encoder="spatial"``: a stride-1 CNN whose ``embed_dim / 2`` maps become keypoint coordinates through a
    spatial softmax, so an embedding says where things are in the image (what a distance-like progress needs).
    """

    def __init__(self, num_views: int, image_size: int = 48, width: int = 16, embed_dim: int = 64,
                 hidden: int = 128, ensemble: int = 5, encoder: str = "conv") -> None:
        super().__init__()
        side = _conv_out(image_size)
        if side < 1:
            raise ValueError(f"image_size={image_size} is too small for the GRM encoder (needs >= 22)")
        if ensemble < 1:
            raise ValueError(f"ensemble={ensemble} must be >= 1")
        if encoder == "conv":
            self.encoder = nn.Sequential(
                nn.Conv2d(3, width, 4, 2), nn.ReLU(), nn.Conv2d(width, 2 * width, 4, 2), nn.ReLU(),
                nn.Conv2d(2 * width, 2 * width, 3, 1), nn.ReLU(), nn.Flatten(),
                nn.Linear(2 * width * side * side, embed_dim), nn.LayerNorm(embed_dim),
            )
        elif encoder == "spatial":
            if embed_dim % 2:
                raise ValueError(f"a spatial-softmax encoder needs an even embed_dim, got {embed_dim}")
            self.encoder = nn.Sequential(
                nn.Conv2d(3, width, 4, 2), nn.ReLU(), nn.Conv2d(width, width, 3, 1), nn.ReLU(),
                nn.Conv2d(width, embed_dim // 2, 3, 1), SpatialSoftmax(),
            )
        else:
            raise ValueError(f"encoder must be 'conv' or 'spatial', got {encoder!r}")
        self.num_views, self.image_size, self.ensemble = num_views, image_size, ensemble
        inputs = (4 + num_views) * embed_dim
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                          nn.Linear(hidden, 1)) for _ in range(ensemble))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, embed_dim)."""
        x = images.permute(0, 3, 1, 2).float().div_(255.0).sub_(0.5)
        return self.encoder(x)

    def phi(self, start: torch.Tensor, goal: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """Embeddings (B, D), (B, D), (B, V, D) -> per-member progress logits (B, K); view 0 is the anchor camera."""
        front = state[:, 0]
        feats = torch.cat([start, goal, state.flatten(1), front - start, front - goal], dim=1)
        if not torch.is_inference_mode_enabled():
            return torch.cat([h(feats) for h in self.heads], dim=1)
        x = feats.expand(self.ensemble, *feats.shape)
        for k, (weight, bias) in enumerate(self._stacked_heads()):
            x = torch.baddbmm(bias, x, weight)
            if k < 2:
                x = torch.relu_(x)
        return x.squeeze(-1).t()

    def _stacked_heads(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each head layer of all K members as one (K, in, out) weight and (K, 1, out) bias, so the ensemble is three
        batched matrix products instead of 3 K layer calls; cached until a parameter is written (inference)."""
        params = list(self.heads.parameters())
        cached = getattr(self, "_stacked", None)
        if cached is not None and cached[0] == _versions(params):
            return cached[1]
        linears = [[m for m in h.modules() if isinstance(m, nn.Linear)] for h in self.heads]
        layers = [(torch.stack([member[i].weight.t() for member in linears]).contiguous(),
                   torch.stack([member[i].bias[None] for member in linears]).contiguous()) for i in range(3)]
        self._stacked = (_versions(params), layers)
        return layers


class LearnedProgressHead(_PixelModel):
    """Per-state progress phi(s | START, END) with pessimism; hops derived from it (departs from the paper).

    The paper's GRM regresses the hop H(BEFORE, AFTER) directly. Here an ensemble of K heads predicts the
    progress of ONE state given the START anchor (the episode's own first frame, so Reach's progress, a distance
    ratio to the start distance, is computable from the query) and the END anchor (a demo's last frame for the
    same goal); the potential is ``mean_k phi_k - beta * std_k phi_k`` clipped to [0, 1] (pessimism: the
    ensemble disagrees off its data, and the reward then pays less, not more). The hop is the label formula
    applied to two such values, H(p, q) = hop_label(phi(p), phi(q)), so every query mode is consistent with the
    others by construction, the incremental mode cannot drift away from phi (the label round trip is exact), and
    the reward computes phi once per new state instead of three hop queries. Trained by MSE on the simulator's
    progress of every visited state (pretraining variants only) and one-shot adapted on the held-out demo's
    step-aware labels i/M (no privileged labels on the held-out task); see ``training.train_progress_head``.

    :param beta: pessimism weight on the ensemble's standard deviation (0: the mean).
    """

    per_state = True

    def __init__(self, cameras: Sequence[str] = ("front", "wrist"), anchor_camera: str = "front", *,
                 image_size: int = 48, beta: float = 1.0, seed: int = 0, **net_kwargs: Any) -> None:
        super().__init__(cameras, anchor_camera)
        if self.cameras[0] != anchor_camera:
            raise ValueError(f"the progress head expects the anchor camera {anchor_camera!r} as the first of "
                             f"cameras {list(self.cameras)}")
        self.beta = float(beta)
        self.net_kwargs = dict(net_kwargs, image_size=image_size)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = PhiNet(len(self.cameras), **self.net_kwargs)
        self.net.eval()

    def members(self, start: np.ndarray, goal: np.ndarray, states: np.ndarray) -> np.ndarray:
        """Each ensemble member's progress (n, K) for embedded states; anchors may have one row."""
        n = len(states)
        t = torch.from_numpy
        with torch.inference_mode():
            logits = self.net.phi(t(np.broadcast_to(start, (n, start.shape[-1])).copy()),
                                  t(np.broadcast_to(goal, (n, goal.shape[-1])).copy()),
                                  t(np.array(states, copy=True)))
        return torch.sigmoid(logits).numpy().astype(np.float64)

    def progress(self, start: np.ndarray, goal: np.ndarray, states: np.ndarray) -> np.ndarray:
        """The pessimistic progress mean - beta * std over the ensemble, clipped to [0, 1]."""
        m = self.members(start, goal, states)
        return np.clip(m.mean(axis=1) - self.beta * m.std(axis=1), 0.0, 1.0)

    def anchor_as_state(self, anchors: np.ndarray) -> np.ndarray:
        return np.repeat(np.asarray(anchors)[:, None], len(self.cameras), axis=1)

    def hop(self, start: np.ndarray, goal: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        return hop_label(self.progress(start, goal, before), self.progress(start, goal, after))

    def state_dict(self) -> dict[str, Any]:
        return {"kind": PER_STATE, "net": self.net.state_dict(), "cameras": self.cameras,
                "anchor_camera": self.anchor_camera, "net_kwargs": self.net_kwargs, "beta": self.beta}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if tuple(state["cameras"]) != self.cameras:
            raise ValueError(f"GRM checkpoint was trained on cameras {list(state['cameras'])}, this model uses "
                             f"{list(self.cameras)}; set cameras to match")
        self.net_kwargs = dict(state["net_kwargs"])
        self.net = PhiNet(len(self.cameras), **self.net_kwargs)
        self.net.load_state_dict(state["net"])
        self.net.eval()

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> LearnedProgressHead:
        head = cls(state["cameras"], state["anchor_camera"], beta=state["beta"], **state["net_kwargs"])
        head.load_state_dict(state)
        return head
