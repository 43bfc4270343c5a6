"""The annotation worker: labels messages in the background so the RL loop never waits for the LLM.

ONI (Zheng et al., arXiv 2410.23022) runs its LLM in a separate worker that repeatedly takes the *newest* batch
of unlabelled messages (at most ``batch_size``), drops backlog beyond a cap (10K in the paper), and sends labels
back. Here the worker is a thread (the annotator's time is spent sleeping or in HTTP calls, which release the
GIL) with two newest-first queues, messages to label and message pairs to rank, and a label table behind a lock:

* :meth:`submit` enqueues each message once: a message already labelled, queued or in flight is skipped.
* When a queue is full the oldest entry is dropped (and may be submitted again later).
* :meth:`drain_labels` / :meth:`drain_ranks` hand new results to the reward at step time without blocking.
* ``synchronous=True`` starts no thread: :meth:`flush` labels everything queued in the caller, at points the
  reward fixes (its updates), so seeded runs are reproducible (the spec's test mode).

:meth:`state_dict` holds the queues, labels, rankings and counters, so a resumed run continues where it stopped.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from robo_reward.methods.oni.annotator import Annotator, check_goal


class AnnotationWorker:
    """Background (or synchronous) annotation of messages and message pairs.

    :param annotator: who labels and ranks.
    :param goal: goal name the prompts are conditioned on.
    :param batch_size: most messages (or pairs) per annotator call (the paper: ``llm_batch_size`` = 100).
    :param backlog: most queued entries per queue; older ones are dropped (the paper: 10K).
    :param synchronous: no thread; :meth:`flush` annotates in the caller.
    """

    def __init__(self, annotator: Annotator, *, goal: str = "defaultgoal", batch_size: int = 100,
                 backlog: int = 10_000, synchronous: bool = False) -> None:
        if batch_size < 1 or backlog < 1:
            raise ValueError(f"batch_size and backlog must be >= 1, got {batch_size} and {backlog}")
        self.annotator, self.goal = annotator, check_goal(goal)
        self.batch_size, self.backlog, self.synchronous = int(batch_size), int(backlog), bool(synchronous)
        self._lock = threading.Condition()
        self._queue: deque[str] = deque()
        self._pairs: deque[tuple[str, str]] = deque()
        self._in_flight: set[str] = set()
        self._queued: set[str] = set()
        self.labels: dict[str, int] = {}
        self.ranks: list[tuple[str, str, int | None]] = []
        self._new_labels: list[tuple[str, int]] = []
        self._new_ranks: list[tuple[str, str, int | None]] = []
        self.counters = {"enqueued": 0, "labelled": 0, "dropped": 0, "pairs_enqueued": 0, "pairs_ranked": 0,
                         "pairs_dropped": 0, "batches": 0, "errors": 0}
        self.busy_time = 0.0
        self._thread: threading.Thread | None = None
        self._stop = False

    # -- producer side (RL loop) ---------------------------------------------------------------------------
    def submit(self, messages: Sequence[str]) -> int:
        """Queue the messages not yet labelled, queued or in flight; returns how many were queued."""
        added = 0
        with self._lock:
            for m in messages:
                if m in self.labels or m in self._queued or m in self._in_flight:
                    continue
                if len(self._queue) >= self.backlog:
                    self._queued.discard(self._queue.popleft())
                    self.counters["dropped"] += 1
                self._queue.append(m)
                self._queued.add(m)
                added += 1
            self.counters["enqueued"] += added
            if added:
                self._lock.notify()
        self._ensure_thread()
        return added

    def submit_pairs(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Queue message pairs for ranking (newest first, same cap)."""
        with self._lock:
            for pair in pairs:
                if len(self._pairs) >= self.backlog:
                    self._pairs.popleft()
                    self.counters["pairs_dropped"] += 1
                self._pairs.append((str(pair[0]), str(pair[1])))
            self.counters["pairs_enqueued"] += len(pairs)
            if pairs:
                self._lock.notify()
        self._ensure_thread()

    def drain_labels(self) -> list[tuple[str, int]]:
        """Labels published since the last call (never waits on the annotator)."""
        if not self._new_labels:
            return []
        with self._lock:
            new, self._new_labels = self._new_labels, []
        return new

    def drain_ranks(self) -> list[tuple[str, str, int | None]]:
        if not self._new_ranks:
            return []
        with self._lock:
            new, self._new_ranks = self._new_ranks, []
        return new

    def label_now(self, messages: Sequence[str]) -> None:
        """Label ``messages`` in the caller, blocking (the offline reference arm; never used by the online arms).

        :param messages: texts to label; those labelled, queued or in flight already are skipped.
        """
        with self._lock:
            fresh = [m for m in dict.fromkeys(messages)
                     if m not in self.labels and m not in self._queued and m not in self._in_flight]
            self._in_flight.update(fresh)
        if fresh:
            self._annotate(fresh, [])

    def pending(self) -> int:
        """Entries queued or in flight (the backlog)."""
        with self._lock:
            return len(self._queue) + len(self._in_flight) + len(self._pairs)

    # -- consumer side ---------------------------------------------------------------------------------------
    def _take(self) -> tuple[list[str], list[tuple[str, str]]]:
        """The newest batch of messages (newest first) and, if none, the newest batch of pairs."""
        messages: list[str] = []
        while self._queue and len(messages) < self.batch_size:
            m = self._queue.pop()
            self._queued.discard(m)
            messages.append(m)
        self._in_flight.update(messages)
        pairs: list[tuple[str, str]] = []
        while not messages and self._pairs and len(pairs) < self.batch_size:
            pairs.append(self._pairs.pop())
        return messages, pairs

    def _annotate(self, messages: list[str], pairs: list[tuple[str, str]]) -> None:
        start = time.perf_counter()
        labels: list[int] = []
        ranks: list[int | None] = []
        try:
            labels = self.annotator.label(messages, self.goal) if messages else []
            ranks = self.annotator.rank(pairs, self.goal) if pairs else []
        except Exception:
            with self._lock:
                self.counters["errors"] += 1
                self._in_flight.difference_update(messages)
            raise
        finally:
            self.busy_time += time.perf_counter() - start
        with self._lock:
            for m, y in zip(messages, labels, strict=True):
                self.labels[m] = int(y)
                self._new_labels.append((m, int(y)))
            self._in_flight.difference_update(messages)
            done = [(a, b, r) for (a, b), r in zip(pairs, ranks, strict=True)]
            self.ranks.extend(done)
            self._new_ranks.extend(done)
            self.counters["labelled"] += len(messages)
            self.counters["pairs_ranked"] += len(done)
            self.counters["batches"] += 1

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._stop and not self._queue and not self._pairs:
                    self._lock.wait()
                if self._stop:
                    return
                messages, pairs = self._take()
            try:
                self._annotate(messages, pairs)
            except Exception:  # an annotator without a fallback failed: keep serving, the error is counted
                time.sleep(0.1)

    def _ensure_thread(self) -> None:
        if self.synchronous or (self._thread is not None and self._thread.is_alive()):
            return
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="oni-annotator", daemon=True)
        self._thread.start()

    def flush(self) -> None:
        """Annotate everything queued now, in the caller (synchronous mode; in threaded mode a no-op)."""
        if not self.synchronous:
            return
        while True:
            with self._lock:
                messages, pairs = self._take()
            if not messages and not pairs:
                return
            self._annotate(messages, pairs)

    def close(self) -> None:
        """Stop the thread (queued entries stay queued and are saved by :meth:`state_dict`)."""
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    # -- metrics and persistence ---------------------------------------------------------------------------
    def metrics(self) -> dict[str, float]:
        with self._lock:
            out = {k: float(v) for k, v in self.counters.items()}
            out["backlog"] = float(len(self._queue) + len(self._in_flight))
            out["pair_backlog"] = float(len(self._pairs))
            out["known"] = float(len(self.labels))
        out["busy_time"] = self.busy_time
        out.update({f"annotator_{k}": v for k, v in self.annotator.stats().items()})
        return out

    def state_dict(self) -> dict[str, Any]:
        """Queue (in-flight messages first, so they are labelled again), labels, rankings and counters."""
        with self._lock:
            queue = sorted(self._in_flight) + list(self._queue)
            return {"queue": queue, "pairs": list(self._pairs), "labels": dict(self.labels),
                    "ranks": list(self.ranks), "counters": dict(self.counters), "busy_time": self.busy_time}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        with self._lock:
            self.labels = {str(k): int(v) for k, v in state["labels"].items()}
            self.ranks = [(str(a), str(b), None if r is None else int(r)) for a, b, r in state["ranks"]]
            self._queue = deque(m for m in state["queue"] if m not in self.labels)
            self._queued = set(self._queue)
            self._in_flight = set()
            self._pairs = deque((str(a), str(b)) for a, b in state["pairs"])
            self.counters.update({k: int(v) for k, v in state["counters"].items()})
            self.busy_time = float(state.get("busy_time", 0.0))
            self._new_labels = list(self.labels.items())
            self._new_ranks = list(self.ranks)
            if self._queue or self._pairs:
                self._lock.notify()
        if self._queue or self._pairs:
            self._ensure_thread()
