"""Preference data: pairwise labels, ranked triplets, an oracle, an append-only JSON-lines store.

Preference-trained rewards (DeformPAM's Diffusion-DPO, RAPL's preference-aligned representations) learn from
pairs ``(first, second)`` of actions or trajectories, optionally from one shared ``context`` (the state both were
proposed in), labelled ``win`` / ``lose`` / ``equal`` from the point of view of ``first``. The store keeps one
JSON object per line, so a labelling session can be appended to, inspected with ``head`` and read back exactly
(float32 arrays round-trip bit for bit).

>>> import tempfile, numpy as np
>>> store = PreferenceStore(tempfile.mkdtemp() + "/prefs.jsonl")
>>> store.append([PreferencePair(np.zeros(2), np.ones(1), -np.ones(1), "win")])
>>> context, winners, losers = store.winner_loser()
>>> winners.tolist(), losers.tolist()
([[1.0]], [[-1.0]])
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

Label = Literal["win", "lose", "equal"]
LABELS: tuple[str, ...] = get_args(Label)


def label_by_gain(first: float, second: float, eps: float = 0.0) -> Label:
    """``win`` if ``first`` scores more than ``second`` by more than ``eps``, ``lose`` if less, else ``equal``."""
    if eps < 0:
        raise ValueError(f"eps={eps} must be >= 0")
    diff = first - second
    return "equal" if abs(diff) <= eps else ("win" if diff > 0 else "lose")


@dataclass
class PreferencePair:
    """One labelled comparison; ``label`` says how ``first`` fared against ``second``.

    :param context: what both items were proposed from (a state), or None for context-free pairs.
    :param first: the first item (an action, a trajectory), any shape.
    :param second: the second item, same shape as ``first``.
    :param label: ``win``, ``lose`` or ``equal``.
    :param meta: JSON-able extras (scores, who labelled it, episode and step).
    """

    context: np.ndarray | None
    first: np.ndarray
    second: np.ndarray
    label: Label
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ValueError(f"label {self.label!r} is not one of {', '.join(LABELS)}")
        self.first, self.second = np.asarray(self.first, np.float32), np.asarray(self.second, np.float32)
        if self.first.shape != self.second.shape:
            raise ValueError(f"first {self.first.shape} and second {self.second.shape} must have the same shape")
        if self.context is not None:
            self.context = np.asarray(self.context, np.float32)

    def to_json(self) -> str:
        return json.dumps({"context": None if self.context is None else self.context.tolist(),
                           "first": self.first.tolist(), "second": self.second.tolist(), "label": self.label,
                           "meta": self.meta})

    @classmethod
    def from_json(cls, line: str) -> PreferencePair:
        row = json.loads(line)
        context = None if row["context"] is None else np.asarray(row["context"], np.float32)
        return cls(context, np.asarray(row["first"], np.float32), np.asarray(row["second"], np.float32),
                   row["label"], row.get("meta", {}))


class PreferenceStore:
    """Preference pairs in a JSON-lines file (one pair per line, appended).

    :param path: the ``.jsonl`` file; created on the first :meth:`append`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def append(self, pairs: Iterable[PreferencePair]) -> None:
        """Add pairs at the end of the file (flushed to disk before returning)."""
        lines = [p.to_json() + "\n" for p in pairs]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as fh:
            fh.writelines(lines)
            fh.flush()
            os.fsync(fh.fileno())

    def __iter__(self) -> Iterator[PreferencePair]:
        if not self.path.exists():
            return
        with open(self.path) as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    yield PreferencePair.from_json(line)
                except (json.JSONDecodeError, KeyError, ValueError) as exc:
                    raise ValueError(f"{self.path}:{number}: not a preference pair ({exc}); each line must be "
                                     "a JSON object with context, first, second and label") from None

    def load(self) -> list[PreferencePair]:
        return list(self)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def counts(self) -> dict[str, int]:
        """How many pairs carry each label."""
        out = dict.fromkeys(LABELS, 0)
        for pair in self:
            out[pair.label] += 1
        return out

    def winner_loser(self) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """Stacked ``(context, winners, losers)`` of the decided pairs (``equal`` ones left out).

        ``context`` is None when the pairs have none; mixing pairs with and without context is an error.
        """
        decided = [p for p in self if p.label != "equal"]
        if not decided:
            raise ValueError(f"{self.path} holds no win/lose pair to train on ({self.counts()})")
        with_context = {p.context is not None for p in decided}
        if len(with_context) > 1:
            raise ValueError(f"{self.path} mixes pairs with and without a context; keep one kind per store")
        winners = np.stack([p.first if p.label == "win" else p.second for p in decided])
        losers = np.stack([p.second if p.label == "win" else p.first for p in decided])
        context = np.stack([p.context for p in decided]) if with_context == {True} else None  # type: ignore[misc]
        return context, winners, losers


@dataclass(frozen=True)
class RankedTriplet:
    """Three items ranked best to worst (``ranking = (pos, neu, neg)``, item ids), or all three ``equal``.

    RAPL (Tian et al., ICLR 2024) learns from such triplets; in a :class:`PreferenceStore` a triplet is kept as
    its three ordered pairs (pos/neu, pos/neg, neu/neg, items as one-element id arrays), each carrying the whole
    ranking in ``meta``, so pairwise learners read the same store.
    """

    ranking: tuple[int, int, int]
    equal: bool = False
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if len(set(self.ranking)) != 3:
            raise ValueError(f"a triplet ranks three distinct items, got {self.ranking}")

    def pairs(self, uid: str) -> list[PreferencePair]:
        label: Label = "equal" if self.equal else "win"
        meta = {**self.meta, "triplet": uid, "ranking": [int(i) for i in self.ranking], "equal": self.equal}
        pos, neu, neg = (np.array([i], np.float32) for i in self.ranking)
        return [PreferencePair(None, a, b, label, meta) for a, b in ((pos, neu), (pos, neg), (neu, neg))]


def append_triplets(store: PreferenceStore, triplets: Iterable[RankedTriplet], prefix: str = "t") -> None:
    """Write triplets to ``store`` (ids ``<prefix><n>``, numbered after the triplets already there)."""
    start = len(load_triplets(store))
    store.append([p for k, t in enumerate(triplets) for p in t.pairs(f"{prefix}{start + k}")])


def load_triplets(store: PreferenceStore) -> list[RankedTriplet]:
    """The triplets in ``store``, in the order they were written (pairs without a triplet id are skipped)."""
    seen: dict[str, RankedTriplet] = {}
    for pair in store:
        uid = pair.meta.get("triplet")
        if uid is None or uid in seen:
            continue
        meta = {k: v for k, v in pair.meta.items() if k not in ("triplet", "ranking", "equal")}
        seen[uid] = RankedTriplet(tuple(int(i) for i in pair.meta["ranking"]),  # type: ignore[arg-type]
                                  bool(pair.meta.get("equal", False)), meta)
    return list(seen.values())


class PreferenceOracle:
    """A simulated labeller: ranks random triplets of items by a privileged score (RAPL's simulated human).

    :param scores: one score per item (e.g. each rollout's privileged preference return); higher is preferred.
    :param tie_eps: a triplet whose best and worst scores differ by at most this is labelled ``equal``.
    :param seed: seeds which triplets are drawn.
    """

    def __init__(self, scores: Sequence[float] | np.ndarray, *, tie_eps: float = 0.0, seed: int = 0) -> None:
        self.scores = np.asarray(scores, dtype=np.float64)
        if self.scores.ndim != 1 or len(self.scores) < 3:
            raise ValueError(f"the oracle needs a score for each of at least 3 items, got shape {self.scores.shape}")
        if tie_eps < 0:
            raise ValueError(f"tie_eps={tie_eps} must be >= 0")
        self.tie_eps = float(tie_eps)
        self.rng = np.random.default_rng(seed)

    def rank(self, items: Iterable[int]) -> RankedTriplet:
        """The oracle's ranking of three items."""
        order = sorted((int(i) for i in items), key=lambda i: -self.scores[i])
        equal = bool(self.scores[order[0]] - self.scores[order[2]] <= self.tie_eps)
        return RankedTriplet((order[0], order[1], order[2]), equal, {"labeller": "oracle"})

    def triplets(self, budget: int) -> list[RankedTriplet]:
        """``budget`` triplets of distinct random items, each ranked."""
        if budget < 1:
            raise ValueError(f"budget={budget} must be >= 1 triplet")
        return [self.rank(self.rng.choice(len(self.scores), 3, replace=False)) for _ in range(budget)]


def triplet_arrays(triplets: Sequence[RankedTriplet]) -> tuple[np.ndarray, np.ndarray]:
    """``(rankings (M, 3) int, equal (M,) bool)`` for training."""
    return (np.array([t.ranking for t in triplets], dtype=np.int64).reshape(-1, 3),
            np.array([t.equal for t in triplets], dtype=bool))
