"""ONI rewards: intrinsic rewards for in-game messages from asynchronous LLM feedback.

Zheng, Henaff, Zhang, Grover, Amos, "Online Intrinsic Rewards for Decision Making Agents from Large Language
Model Feedback", arXiv 2410.23022. The agent is paid

    r = c_ext * r_ext + c_int * r_int(msg) * N(msg)^(-beta)

where ``N(msg)`` is how often the message has appeared in the episode (read from the observation's
``message_count``, which the env restarts at every reset, so vector-env autoresets restart it too) and
``r_int`` comes from one of three models of the annotator's feedback:

* :class:`ONIRetrieval` (the paper's ``online_cls``): a hash table message -> label. An unseen message pays 0
  and is queued for labelling once; it pays its label from the step the label arrives.
* :class:`ONIClassification` (``online_cls_reward_model``): a char-level CNN trained on the labels so far;
  pays 1 exactly when p(FOO) > 0.5, so it generalises to messages the annotator has not seen.
* :class:`ONIRanking` (``online_motif``): a Bradley-Terry model trained on the annotator's pair preferences,
  normalised by a running mean/std and set to 0 below ``threshold`` (-0.5) on the standardised scale.

``c_ext`` is the run's ``reward.extrinsic_weight`` (0: reward-free); ``c_int`` is this reward's ``c_int``.
Labelling runs in an :class:`~robo_reward.methods.oni.worker.AnnotationWorker` thread, so stepping never waits
for the annotator and the reward is non-stationary by design. ``synchronous=True`` labels at each ``update``
instead (reproducible runs; the spec's test mode). The annotator's throughput and backlog are returned by
``update`` and logged under ``reward_update/annotator/``. Messages are matched by a 64-bit hash of their bytes,
so the step path is vectorised; only rows with a message the reward has not met before are decoded.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.running_mean_std import RunningMeanStd

from robo_reward.methods.oni.annotator import Annotator, build_annotator
from robo_reward.methods.oni.models import CharCNN, encode, train_bradley_terry, train_classifier
from robo_reward.methods.oni.worker import AnnotationWorker
from robo_reward.protocol import Reward, RewardOutput, SpaceMismatchError, TransitionBatch

_MULT = np.random.default_rng(20241030).integers(1, 2**63, size=1024, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


def message_hash(messages: np.ndarray) -> np.ndarray:
    """One uint64 per row of zero-padded message bytes (0 for an empty message); bytes after a 0 are ignored."""
    msgs = np.asarray(messages, dtype=np.uint8)
    if msgs.shape[1] > len(_MULT):
        raise ValueError(f"messages longer than {len(_MULT)} bytes are not supported, got {msgs.shape[1]}")
    live = np.cumsum(msgs == 0, axis=1) == 0
    return (np.where(live, msgs, 0).astype(np.uint64) * _MULT[:msgs.shape[1]]).sum(axis=1, dtype=np.uint64)


def _text(row: np.ndarray) -> str:
    """The text of one zero-padded message row."""
    return bytes(row).split(b"\0", 1)[0].decode("latin-1")


def text_hash(texts: list[str], length: int) -> np.ndarray:
    """:func:`message_hash` of texts as an env with ``length``-byte messages would hold them."""
    return message_hash(encode(texts, length))


class ONIReward(Reward, abc.ABC):
    """Shared machinery of the three ONI variants: message hashing, count decay, the annotation worker.

    :param annotator: ``"keyword"``, ``{"name": "keyword", "latency": 1.0}``, ``{"name": "llm", "base_url": ...}``
        or an :class:`~robo_reward.methods.oni.annotator.Annotator`.
    :param goal: prompt goal (``defaultgoal``, ``combat``, ``gold``, ``stairs``; ``keydoor`` for the DoorKey grid).
    :param c_int: intrinsic coefficient (the paper: 0.4).
    :param beta: count exponent (the paper's ``beta_count_exponent`` = 3).
    :param batch_size: most messages per annotator call; :param backlog: queue cap (older entries dropped).
    :param synchronous: label at ``update`` in the caller instead of in a background thread (tests).
    :param update_every: vector steps between updates (sync point, model training, metrics).
    :param message_key: / :param count_key: observation keys of the message bytes and its per-episode count.
    :param offline: label every unseen message in the step path, blocking, so each message pays its label the
        first time it appears: with a deterministic annotator this is a fully pre-computed label table, the
        spec's offline (Motif-like) upper reference, not ONI (with an LLM, stepping waits for every new batch).
        Retrieval and classification only; ranking learns from pairs, not labels.
    """

    name = "oni"
    stateless = False

    def __init__(self, *, annotator: Annotator | str | Mapping[str, Any] = "keyword", goal: str = "defaultgoal",
                 c_int: float = 0.4, beta: float = 3.0, batch_size: int = 100, backlog: int = 10_000,
                 synchronous: bool = False, update_every: int = 128, message_key: str = "message",
                 count_key: str = "message_count", offline: bool = False) -> None:
        if beta < 0:
            raise ValueError(f"beta (the count exponent) must be >= 0, got {beta}")
        if update_every < 1:
            raise ValueError(f"update_every must be >= 1 vector steps, got {update_every}")
        self.c_int, self.beta, self.update_every = float(c_int), float(beta), int(update_every)
        self.message_key, self.count_key, self.offline = message_key, count_key, bool(offline)
        self.worker = AnnotationWorker(build_annotator(annotator), goal=goal, batch_size=batch_size,
                                       backlog=backlog, synchronous=synchronous)
        self.message_bytes = 256
        self._label_keys = np.zeros(0, np.uint64)
        self._label_vals = np.zeros(0, np.float64)
        self._labels: dict[int, float] = {}
        self._submitted: set[int] = set()
        self._dropped_seen = 0
        self._rows = self._known_rows = 0
        self._last_metrics_time = time.perf_counter()
        self._last_labelled = 0.0

    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        keys = (self.message_key, self.count_key)
        is_dict = isinstance(observation_space, gym.spaces.Dict)
        if not is_dict or any(k not in observation_space.spaces for k in keys):  # type: ignore[attr-defined]
            have = list(observation_space.spaces) if is_dict else observation_space  # type: ignore[attr-defined]
            raise SpaceMismatchError(f"ONI reads observation keys {list(keys)} (message bytes and per-episode count) "
                                     f"but the env observes {have}; use a robo_reward/NetHack*-v0 or "
                                     "robo_reward/TextDoorKey*-v0 env or set "
                                     "message_key/count_key")
        self.message_bytes = int((observation_space[self.message_key].shape or (256,))[-1])  # type: ignore[index]

    # -- the step path ------------------------------------------------------------------------------------
    def _refresh_labels(self) -> None:
        new = self.worker.drain_labels()
        if not new:
            return
        hashes = text_hash([m for m, _ in new], self.message_bytes)
        self._labels.update(zip(hashes.tolist(), (float(y) for _, y in new), strict=True))
        keys = np.fromiter(self._labels.keys(), np.uint64, len(self._labels))
        order = np.argsort(keys)
        self._label_keys = keys[order]
        self._label_vals = np.fromiter(self._labels.values(), np.float64, len(self._labels))[order]

    def _lookup(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(known, label) per row from the label table."""
        if not len(self._label_keys):
            return np.zeros(len(hashes), bool), np.zeros(len(hashes))
        idx = np.minimum(np.searchsorted(self._label_keys, hashes), len(self._label_keys) - 1)
        known = self._label_keys[idx] == hashes
        return known, np.where(known, self._label_vals[idx], 0.0)

    def _queue_unlabelled(self, msgs: np.ndarray, hashes: np.ndarray, rows: np.ndarray) -> None:
        """Submit the messages in ``rows`` (unlabelled) to the worker, each once while it is pending."""
        dropped = self.worker.counters["dropped"]
        if dropped != self._dropped_seen:
            self._submitted.clear()
            self._dropped_seen = dropped
        fresh = [int(i) for i in rows if int(hashes[i]) not in self._submitted]
        if not fresh:
            return
        texts: dict[int, str] = {}
        for i in fresh:
            texts.setdefault(int(hashes[i]), _text(msgs[i]))
        self._submitted.update(texts)
        self.worker.submit(list(texts.values()))

    def _labelled(self, msgs: np.ndarray, hashes: np.ndarray, live: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Refresh the table, queue unseen live messages; returns (known, label) per row."""
        self._refresh_labels()
        known, labels = self._lookup(hashes)
        unseen = np.flatnonzero(live & ~known)
        if len(unseen) and self.offline:
            self.worker.label_now([_text(msgs[i]) for i in unseen])
            self._refresh_labels()
            known, labels = self._lookup(hashes)
        elif len(unseen):
            self._queue_unlabelled(msgs, hashes, unseen)
        self._rows += int(live.sum())
        self._known_rows += int((live & known).sum())
        return known, labels

    @abc.abstractmethod
    def intrinsic(self, msgs: np.ndarray, hashes: np.ndarray, live: np.ndarray) -> np.ndarray:
        """r_int per row (before the count decay and c_int); rows without a message are ignored."""

    def evaluate(self, batch: TransitionBatch) -> RewardOutput:
        obs = batch.next_obs
        assert isinstance(obs, dict)
        msgs = np.asarray(obs[self.message_key], np.uint8)
        hashes = message_hash(msgs)
        live = hashes != 0
        counts = np.asarray(obs[self.count_key], np.float64).reshape(len(hashes), -1)[:, 0]
        r_int = self.intrinsic(msgs, hashes, live)
        decay = np.where(live, np.maximum(counts, 1.0) ** -self.beta, 0.0)
        paid = self.c_int * r_int * decay
        return RewardOutput(paid, {self.name: paid})

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        return self.evaluate(batch).total

    # -- updates, metrics, persistence --------------------------------------------------------------------
    def update(self, batch: TransitionBatch) -> dict[str, float]:
        """Sync point: flush the queue (synchronous mode), pull labels, train the model; returns metrics."""
        self.worker.flush()
        self._refresh_labels()
        metrics = self.train_model()
        now = time.perf_counter()
        stats = self.worker.metrics()
        metrics.update({f"annotator/{k}": v for k, v in stats.items()})
        metrics["annotator/throughput"] = (stats["labelled"] - self._last_labelled) / max(now - self._last_metrics_time,
                                                                                          1e-9)
        metrics["oni/known_fraction"] = self._known_rows / max(self._rows, 1)
        self._last_metrics_time, self._last_labelled = now, stats["labelled"]
        self._rows = self._known_rows = 0
        return metrics

    def train_model(self) -> dict[str, float]:
        """Learn from the labels or rankings so far (retrieval has nothing to learn)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"worker": self.worker.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.worker.load_state_dict(state["worker"])
        self._labels.clear()
        self._submitted.clear()
        self._refresh_labels()

    def close(self) -> None:
        """Stop the annotation thread."""
        self.worker.close()


class ONIRetrieval(ONIReward):
    """ONI-Retrieval: the label table itself is the reward (unseen messages pay 0 until labelled).

    >>> r = ONIRetrieval(synchronous=True)
    >>> msg = np.zeros((1, 256), np.uint8); msg[0, :14] = np.frombuffer(b"You kill it!  ", np.uint8)
    >>> obs = {"message": msg, "message_count": np.ones((1, 1), np.int32)}
    >>> b = TransitionBatch(obs, np.zeros((1, 1)), obs, np.zeros(1), np.zeros(1, bool), np.zeros(1, bool))
    >>> r(b).tolist(), r.worker.counters["enqueued"]
    ([0.0], 1)
    >>> _ = r.update(b); r(b).tolist()
    [0.4]
    """

    name = "oni_retrieval"

    def intrinsic(self, msgs: np.ndarray, hashes: np.ndarray, live: np.ndarray) -> np.ndarray:
        return self._labelled(msgs, hashes, live)[1]


class _LearnedONI(ONIReward):
    """A reward model over message bytes with a per-message prediction cache (cleared after each training)."""

    def __init__(self, *, lr: float = 1e-4, grad_steps: int = 32, train_batch: int = 256, seed: int = 0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if lr <= 0 or grad_steps < 1 or train_batch < 1:
            raise ValueError(f"lr must be > 0, grad_steps and train_batch >= 1; got {lr}, {grad_steps}, {train_batch}")
        self.grad_steps, self.train_batch, self.seed = int(grad_steps), int(train_batch), int(seed)
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            self.model = CharCNN(self.outputs)
        self.optimiser = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.trained = False
        self._cache: dict[int, float] = {}

    outputs = 2
    token_length = 64

    @abc.abstractmethod
    def _predict(self, tokens: torch.Tensor) -> np.ndarray:
        """The model's raw output per message."""

    def predict(self, msgs: np.ndarray, hashes: np.ndarray, live: np.ndarray) -> np.ndarray:
        """Cached raw predictions per row (0 for rows without a message or before the first training)."""
        out = np.zeros(len(hashes))
        if not self.trained:
            return out
        rows = np.flatnonzero(live)
        missing = {int(hashes[i]): int(i) for i in rows if int(hashes[i]) not in self._cache}
        if missing:
            idx = np.fromiter(missing.values(), np.int64, len(missing))
            live_bytes = np.where(np.cumsum(msgs[idx] == 0, axis=1) == 0, msgs[idx], 0)[:, :self.token_length]
            with torch.no_grad():
                values = self._predict(torch.as_tensor(np.ascontiguousarray(live_bytes)))
            self._cache.update(zip(missing, values.tolist(), strict=True))
        out[rows] = [self._cache[int(hashes[i])] for i in rows]
        return out

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "model": self.model.state_dict(), "optimiser": self.optimiser.state_dict(),
                "generator": self.generator.get_state(), "trained": self.trained}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.model.load_state_dict(state["model"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.generator.set_state(state["generator"])
        self.trained = bool(state["trained"])
        self._cache.clear()


class ONIClassification(_LearnedONI):
    """ONI-Classification: a char-CNN distils the labels; pays 1 exactly when p(FOO) > 0.5.

    :param lr: / :param grad_steps: / :param train_batch: Adam learning rate, gradient steps per update and
        minibatch size (the paper: 1e-4, 32, 256).
    :param seed: seeds the network's initialisation and minibatch sampling.
    """

    name = "oni_classification"

    def _predict(self, tokens: torch.Tensor) -> np.ndarray:
        return torch.softmax(self.model(tokens), dim=1)[:, 1].numpy()

    def intrinsic(self, msgs: np.ndarray, hashes: np.ndarray, live: np.ndarray) -> np.ndarray:
        self._labelled(msgs, hashes, live)
        return (self.predict(msgs, hashes, live) > 0.5).astype(np.float64)

    def train_model(self) -> dict[str, float]:
        labels = self.worker.labels
        if not labels:
            return {}
        texts = list(labels)
        tokens, y = encode(texts, self.token_length), np.array([labels[t] for t in texts])
        loss = train_classifier(self.model, self.optimiser, tokens, y, steps=self.grad_steps,
                                batch_size=self.train_batch, generator=self.generator)
        self.trained = True
        self._cache.clear()
        with torch.no_grad():
            accuracy = float(((self._predict(torch.as_tensor(tokens)) > 0.5) == (y > 0)).mean())
        return {"oni/loss": loss, "oni/train_accuracy": accuracy, "oni/labels": float(len(texts))}


class ONIRanking(_LearnedONI):
    """ONI-Ranking: Bradley-Terry on the annotator's pair preferences, normalised, then thresholded.

    Each update samples ``pairs_per_update`` pairs of distinct messages seen so far (the paper subsamples the
    online dataset) and queues them for ranking; the model trains on every ranking received (a tie is a
    0.5/0.5 target). The paid value is ``(r - mean) / std`` under a running mean/std of the raw scores of the
    messages paid, set to 0 where it is below ``threshold`` (the paper's ``eps_threshold_quantile`` = -0.5,
    read as a threshold on the standardised scale, as the spec's open point allows).

    :param pairs_per_update: pairs queued per update; :param pool: most distinct messages kept for sampling.
    :param threshold: standardised value below which the reward is 0.
    """

    name = "oni_ranking"
    outputs = 1

    def __init__(self, *, pairs_per_update: int = 64, pool: int = 10_000, threshold: float = -0.5,
                 **kwargs: Any) -> None:
        if kwargs.get("offline"):
            raise ValueError("offline labelling is for oni_retrieval and oni_classification; oni_ranking learns from "
                             "the annotator's pair rankings, which have no pre-computed table: drop offline")
        super().__init__(**kwargs)
        if pairs_per_update < 1 or pool < 2:
            raise ValueError(f"pairs_per_update must be >= 1 and pool >= 2, got {pairs_per_update} and {pool}")
        self.pairs_per_update, self.pool_size, self.threshold = int(pairs_per_update), int(pool), float(threshold)
        self.pool: dict[int, str] = {}
        self.norm = RunningMeanStd(shape=())
        self.rng = np.random.default_rng(self.seed)

    def _predict(self, tokens: torch.Tensor) -> np.ndarray:
        return self.model(tokens)[:, 0].numpy()

    def _remember(self, msgs: np.ndarray, hashes: np.ndarray, live: np.ndarray) -> None:
        for i in np.flatnonzero(live):
            h = int(hashes[i])
            if h not in self.pool:
                if len(self.pool) >= self.pool_size:
                    self.pool.pop(next(iter(self.pool)))
                self.pool[h] = _text(msgs[i])

    def intrinsic(self, msgs: np.ndarray, hashes: np.ndarray, live: np.ndarray) -> np.ndarray:
        self._remember(msgs, hashes, live)
        if not self.trained:
            return np.zeros(len(hashes))
        raw = self.predict(msgs, hashes, live)
        if live.any():
            self.norm.update(raw[live])
        z = (raw - self.norm.mean) / np.sqrt(self.norm.var + 1e-8)
        return np.where(live & (z >= self.threshold), z, 0.0)

    def normalised(self, raw: np.ndarray) -> np.ndarray:
        """Raw scores on the standardised scale, thresholded (what a message pays before count decay and c_int)."""
        z = (np.asarray(raw, np.float64) - self.norm.mean) / np.sqrt(self.norm.var + 1e-8)
        return np.where(z >= self.threshold, z, 0.0)

    def train_model(self) -> dict[str, float]:
        texts = list(self.pool.values())
        if len(texts) >= 2:
            i = self.rng.integers(len(texts), size=self.pairs_per_update)
            j = (i + self.rng.integers(1, len(texts), size=self.pairs_per_update)) % len(texts)
            self.worker.submit_pairs([(texts[a], texts[b]) for a, b in zip(i, j, strict=True)])
            self.worker.flush()
        self.worker.drain_ranks()
        ranks = self.worker.ranks
        if not ranks:
            return {}
        first = encode([a for a, _, _ in ranks], self.token_length)
        second = encode([b for _, b, _ in ranks], self.token_length)
        prefs = np.array([0.5 if r is None else float(r == 1) for _, _, r in ranks])
        loss = train_bradley_terry(self.model, self.optimiser, first, second, prefs, steps=self.grad_steps,
                                   batch_size=self.train_batch, generator=self.generator)
        self.trained = True
        self._cache.clear()
        return {"oni/loss": loss, "oni/pairs": float(len(ranks))}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "pool": dict(self.pool), "rng": self.rng.bit_generator.state,
                "norm": {"mean": self.norm.mean, "var": self.norm.var, "count": self.norm.count}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.pool = {int(k): str(v) for k, v in state["pool"].items()}
        self.rng.bit_generator.state = state["rng"]
        self.norm.mean, self.norm.var, self.norm.count = (state["norm"][k] for k in ("mean", "var", "count"))
