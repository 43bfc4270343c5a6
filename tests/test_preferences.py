"""The JSON-lines preference store and the score-gain labels shared by preference-trained rewards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robo_reward.preferences import PreferencePair, PreferenceStore, label_by_gain


def test_label_by_gain_orders_and_ties() -> None:
    assert label_by_gain(0.3, 0.1) == "win"
    assert label_by_gain(0.1, 0.3) == "lose"
    assert label_by_gain(0.2, 0.205, eps=0.01) == "equal"
    assert label_by_gain(0.2, 0.215, eps=0.01) == "lose"
    with pytest.raises(ValueError, match="eps"):
        label_by_gain(0.0, 0.0, eps=-1.0)


def test_store_round_trips_float32_exactly_and_appends(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pairs = [PreferencePair(rng.random((7, 2)), rng.normal(size=5), rng.normal(size=5), label,
                            {"gain_first": 0.1 * i}) for i, label in enumerate(["win", "lose", "equal"])]
    store = PreferenceStore(tmp_path / "sub" / "p.jsonl")
    store.append(pairs[:2])
    store.append(pairs[2:])
    back = store.load()
    assert len(store) == 3 and store.counts() == {"win": 1, "lose": 1, "equal": 1}
    for a, b in zip(pairs, back, strict=True):
        assert a.context is not None and b.context is not None
        np.testing.assert_array_equal(a.context, b.context)
        np.testing.assert_array_equal(a.first, b.first)
        np.testing.assert_array_equal(a.second, b.second)
        assert (a.label, a.meta) == (b.label, b.meta)


def test_winner_loser_orients_pairs_and_drops_equal(tmp_path: Path) -> None:
    store = PreferenceStore(tmp_path / "p.jsonl")
    store.append([PreferencePair(np.zeros(1), [1.0], [2.0], "win"), PreferencePair(np.ones(1), [3.0], [4.0], "lose"),
                  PreferencePair(np.ones(1), [5.0], [6.0], "equal")])
    context, winners, losers = store.winner_loser()
    assert context is not None
    assert winners.ravel().tolist() == [1.0, 4.0] and losers.ravel().tolist() == [2.0, 3.0]
    assert context.ravel().tolist() == [0.0, 1.0]


def test_store_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="label 'better'"):
        PreferencePair(None, [1.0], [2.0], "better")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="same shape"):
        PreferencePair(None, [1.0], [2.0, 3.0], "win")
    path = tmp_path / "p.jsonl"
    store = PreferenceStore(path)
    with pytest.raises(ValueError, match="no win/lose pair"):
        store.winner_loser()
    store.append([PreferencePair(None, [1.0], [2.0], "win"), PreferencePair(np.zeros(1), [1.0], [2.0], "win")])
    with pytest.raises(ValueError, match="mixes pairs"):
        store.winner_loser()
    with open(path, "a") as fh:
        fh.write("{not json\n")
    with pytest.raises(ValueError, match=r"p.jsonl:3"):
        store.load()
