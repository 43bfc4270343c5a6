"""ONI rewards and the annotation worker on hand-made message batches (no NetHack needed)."""

from __future__ import annotations

import threading
import time

import gymnasium as gym
import numpy as np
import pytest

from robo_reward.checkpoint import load_reward_state, save_reward
from robo_reward.methods.oni import (
    AnnotationWorker,
    KeywordAnnotator,
    ONIClassification,
    ONIRanking,
    ONIRetrieval,
    build_annotator,
)
from robo_reward.methods.oni.models import encode
from robo_reward.methods.oni.reward import message_hash
from robo_reward.protocol import SpaceMismatchError, TransitionBatch
from robo_reward.registry import make_reward

SPACE = gym.spaces.Dict({"message": gym.spaces.Box(0, 255, (256,), np.uint8),
                         "message_count": gym.spaces.Box(0, 2**31 - 1, (1,), np.int32)})


def batch(messages: list[str], counts: list[int] | None = None) -> TransitionBatch:
    counts = counts if counts is not None else [1 if m else 0 for m in messages]
    obs = {"message": encode(messages, 256), "message_count": np.array(counts, np.int32).reshape(-1, 1)}
    n = len(messages)
    return TransitionBatch(obs, np.zeros((n, 1)), obs, np.zeros(n), np.zeros(n, bool), np.zeros(n, bool))


def retrieval(**kwargs: object) -> ONIRetrieval:
    r = ONIRetrieval(synchronous=True, **kwargs)  # type: ignore[arg-type]
    r.bind(SPACE, gym.spaces.Discrete(2), 4)
    return r


def test_unseen_message_pays_zero_is_queued_once_then_pays_its_label() -> None:
    r = retrieval(c_int=0.4)
    b = batch(["You kill the newt!", "You kill the newt!", "It's a wall.", ""])
    for _ in range(3):
        np.testing.assert_array_equal(r(b), 0.0)
    assert r.worker.counters["enqueued"] == 2 and r.worker.pending() == 2  # two distinct messages, each once
    r.update(b)
    np.testing.assert_allclose(r(b), [0.4, 0.4, 0.0, 0.0])
    assert r.worker.labels == {"You kill the newt!": 1, "It's a wall.": 0}
    assert r.worker.counters["enqueued"] == 2  # labelled messages are never queued again


@pytest.mark.parametrize("beta", [3.0, 1.5])
def test_count_exponent(beta: float) -> None:
    r = retrieval(c_int=2.0, beta=beta)
    b = batch(["You kill the newt!"] * 4, [1, 2, 3, 4])
    r(b)
    r.update(b)
    np.testing.assert_allclose(r(b), 2.0 * np.arange(1, 5) ** -beta)


def test_default_exponent_is_the_papers() -> None:
    r = retrieval()
    assert (r.beta, r.c_int) == (3.0, 0.4)
    b = batch(["You kill the newt!"] * 2, [1, 2])
    r(b)
    r.update(b)
    np.testing.assert_allclose(r(b), [0.4, 0.4 / 8])


def test_queue_drops_oldest_and_hands_out_the_newest_batch_first() -> None:
    seen: list[list[str]] = []

    class Recorder(KeywordAnnotator):
        def label(self, messages, goal):  # type: ignore[no-untyped-def]
            seen.append(list(messages))
            return super().label(messages, goal)

    worker = AnnotationWorker(Recorder(), batch_size=2, backlog=3, synchronous=True)
    assert worker.submit([f"m{i}" for i in range(5)]) == 5
    assert worker.counters["dropped"] == 2 and worker.pending() == 3
    worker.flush()
    assert seen == [["m4", "m3"], ["m2"]]
    assert worker.submit(["m0"]) == 1  # a dropped message may be queued again


def test_worker_thread_labels_in_background() -> None:
    worker = AnnotationWorker(KeywordAnnotator(latency=0.2), goal="combat")
    start = time.perf_counter()
    worker.submit(["You kill the jackal!", "It's a wall."])
    assert time.perf_counter() - start < 0.1  # submit returns at once; the label is pending
    assert worker.labels == {}
    deadline = time.time() + 10
    while len(worker.labels) < 2 and time.time() < deadline:
        time.sleep(0.02)
    assert worker.labels == {"You kill the jackal!": 1, "It's a wall.": 0}
    worker.close()


def test_synchronous_runs_are_deterministic() -> None:
    rng = np.random.default_rng(0)
    pool = ["You kill the newt!", "It's a wall.", "You see here a dagger.", "Welcome to experience level 2.",
            "You hit the jackal.", "", "You find a hidden passage."]
    stream = [[pool[i] for i in rng.integers(len(pool), size=4)] for _ in range(40)]
    traces = []
    for _ in range(2):
        r = ONIClassification(synchronous=True, update_every=5, lr=1e-3, grad_steps=4, seed=3)
        r.bind(SPACE, gym.spaces.Discrete(2), 4)
        trace = []
        for t, messages in enumerate(stream):
            b = batch(messages)
            trace.append(r(b))
            if t % 5 == 4:
                r.update(b)
        traces.append(np.stack(trace))
    assert np.array_equal(traces[0], traces[1]) and traces[0].any()


TRAIN = {"You kill the newt!": 1, "You kill the jackal!": 1, "You kill the sewer rat!": 1,
         "Welcome to experience level 2.": 1, "Welcome to experience level 3.": 1, "You see here a dagger.": 1,
         "You see here 5 gold pieces.": 1, "You find a hidden passage.": 1,
         "It's a wall.": 0, "It's solid stone.": 0, "You can't go down here.": 0, "You can't go up here.": 0,
         "Unknown command '^M'.": 0, "Never mind.": 0, "What do you want to eat? [fg or ?*]": 0,
         "In what direction?": 0}
HELD_OUT = {"You kill the grid bug!": 1, "You kill the fox!": 1, "Welcome to experience level 4.": 1,
            "You see here a ring mail.": 1, "You see here an orcish helm.": 1,
            "You can't move diagonally here.": 0, "Unknown command '^J'.": 0,
            "What do you want to eat? [hij or ?*]": 0, "It's a wall!": 0, "You cannot pass here.": 0}


def test_classifier_generalises_to_held_out_paraphrases() -> None:
    r = ONIClassification(synchronous=True, lr=3e-3, grad_steps=40, train_batch=64, seed=0)
    r.bind(SPACE, gym.spaces.Discrete(2), 4)
    b = batch(list(TRAIN))
    r(b)
    for _ in range(4):
        metrics = r.update(b)
    assert metrics["oni/train_accuracy"] == 1.0
    held = batch(list(HELD_OUT))
    assert r.worker.counters["enqueued"] == len(TRAIN)
    paid = r(held)
    truth = np.array(list(HELD_OUT.values()), float)
    assert (paid > 0).astype(float).tolist() != [0.0] * len(HELD_OUT)
    accuracy = float(((paid > 0) == (truth > 0)).mean())
    assert accuracy >= 0.8, accuracy
    assert r.worker.counters["enqueued"] == len(TRAIN) + len(HELD_OUT)  # paid by the model, still queued for labels
    msgs = held.next_obs["message"]
    p = r.predict(msgs, message_hash(msgs), np.ones(len(HELD_OUT), bool))
    np.testing.assert_array_equal(paid, 0.4 * (p > 0.5))  # reward is 1 exactly when p(FOO) > 0.5


def test_ranking_orders_pairs_like_the_priorities_and_zeroes_below_threshold() -> None:
    messages = ["Welcome to experience level 2.", "You kill the newt!", "You find a hidden passage.",
                "You see here a dagger.", "It's a wall.", "You can't go down here.", "Never mind."]
    r = ONIRanking(synchronous=True, lr=3e-3, grad_steps=30, train_batch=32, pairs_per_update=40, seed=0)
    r.bind(SPACE, gym.spaces.Discrete(2), 4)
    b = batch(messages)
    r(b)
    for _ in range(5):
        r.update(b)
    assert r.trained and len(r.worker.ranks) == 200
    msgs = b.next_obs["message"]
    scores = r.predict(msgs, message_hash(msgs), np.ones(len(messages), bool))
    keyword = KeywordAnnotator()
    priority = [keyword.score(m, "defaultgoal") for m in messages]
    agree = [np.sign(scores[i] - scores[j]) == np.sign(priority[i] - priority[j])
             for i in range(len(messages)) for j in range(i + 1, len(messages)) if priority[i] != priority[j]]
    assert np.mean(agree) >= 0.9, np.mean(agree)
    paid = r(b)
    z = (scores - r.norm.mean) / np.sqrt(r.norm.var + 1e-8)
    np.testing.assert_allclose(paid, np.where(z >= -0.5, 0.4 * z, 0.0), atol=1e-9)
    assert (z < -0.5).any() and (paid[z < -0.5] == 0).all()
    np.testing.assert_array_equal(r.normalised(np.array([r.norm.mean - 10.0])), [0.0])


def test_state_dict_restores_labels_queue_and_counters() -> None:
    r = retrieval()
    b = batch(["You kill the newt!", "It's a wall."])
    r(b)
    r.update(b)
    r(batch(["You see here a dagger."]))  # queued, not yet labelled
    state = r.state_dict()
    fresh = retrieval()
    fresh.load_state_dict(state)
    np.testing.assert_allclose(fresh(b), [0.4, 0.0])
    assert fresh.worker.pending() == 1 and fresh.worker.counters == r.worker.counters
    fresh.update(b)
    np.testing.assert_allclose(fresh(batch(["You see here a dagger."])), [0.4])


def test_checkpoint_round_trip_of_the_classifier(tmp_path) -> None:  # type: ignore[no-untyped-def]
    r = make_reward("oni_classification", synchronous=True, lr=3e-3, grad_steps=20)
    r.bind(SPACE, gym.spaces.Discrete(2), 4)
    b = batch(list(TRAIN))
    r(b)
    r.update(b)
    save_reward(r, tmp_path / "reward.pt")
    other = make_reward("oni_classification", synchronous=True, lr=3e-3, grad_steps=20, seed=5)
    other.bind(SPACE, gym.spaces.Discrete(2), 4)
    load_reward_state(other, tmp_path / "reward.pt")
    held = batch(list(HELD_OUT))
    np.testing.assert_array_equal(other(held), r(held))
    assert other.worker.labels == r.worker.labels


def test_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="unknown ONI goal"):
        ONIRetrieval(goal="ascend")
    with pytest.raises(ValueError, match="unknown annotator"):
        build_annotator({"name": "gpt"})
    with pytest.raises(SpaceMismatchError, match="message_count"):
        ONIRetrieval().bind(gym.spaces.Box(0, 1, (3,)), gym.spaces.Discrete(2), 1)
    with pytest.raises(ValueError, match="beta"):
        ONIRetrieval(beta=-1)


def test_close_stops_the_thread() -> None:
    r = ONIRetrieval(annotator={"name": "keyword", "latency": 0.01})
    r.bind(SPACE, gym.spaces.Discrete(2), 4)
    r(batch(["You kill the newt!"]))
    assert any(t.name == "oni-annotator" for t in threading.enumerate())
    r.close()
    assert r.worker._thread is None
