"""G-RA gating, Clip/Delta process rewards, PAR, running normalisation, weighted sums."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robo_reward.protocol import FunctionReward, TransitionBatch
from robo_reward.shaping import (
    Extrinsic,
    GatedAccumulation,
    PreferenceSigmoid,
    ProcessRewardClip,
    ProcessRewardDelta,
    RunningNormalize,
    WeightedSum,
    process_delta,
)

OBS = gym.spaces.Box(-1, 1, (1,))
ACT = gym.spaces.Box(-1, 1, (1,))


def batch_of(values: np.ndarray, done: np.ndarray | None = None, reward: np.ndarray | None = None,
             infos: tuple = ()) -> TransitionBatch:
    n = len(values)
    obs = np.asarray(values, dtype=np.float64).reshape(n, 1)
    return TransitionBatch(obs=obs, action=np.zeros((n, 1)), next_obs=obs,
                           reward=np.zeros(n) if reward is None else reward,
                           terminated=np.zeros(n, bool) if done is None else done, truncated=np.zeros(n, bool),
                           infos=infos)


def step_term() -> FunctionReward:
    """A 'process reward' read from the observation, so tests can feed any sequence."""
    return FunctionReward(lambda b: b.next_obs[:, 0], label="process")


def run_episode(term, values, reward=None) -> np.ndarray:
    term.bind(OBS, ACT, 1)
    term.reset(np.zeros((1, 1)), np.array([True]))
    out = []
    for k, v in enumerate(values):
        done = np.array([k == len(values) - 1])
        r = None if reward is None else np.array([reward[k]])
        out.append(term(batch_of(np.array([v]), done, r))[0])
    return np.array(out)


# -- G-RA ------------------------------------------------------------------------------------------------
@given(st.lists(st.floats(-5, 5), min_size=1, max_size=12), st.floats(-3, 3), st.floats(-3, 3))
@settings(max_examples=60, deadline=None)
def test_gated_accumulation_counts_steps_only_past_the_gate(steps, outcome_return, tau) -> None:
    extrinsic = np.zeros(len(steps))
    extrinsic[-1] = outcome_return
    paid = run_episode(GatedAccumulation([step_term()], thresholds=[tau]), steps, extrinsic)
    episode_return = extrinsic.sum() + paid.sum()
    if outcome_return >= tau:
        assert episode_return == pytest.approx(outcome_return + sum(steps))
    else:
        assert episode_return == outcome_return
    assert np.all(paid[:-1] == 0.0)


def test_gated_accumulation_two_levels_upper_gate_zeroes_everything_below() -> None:
    mid = FunctionReward(lambda b: np.full(b.num, 1.0), label="mid")
    low = FunctionReward(lambda b: np.full(b.num, 10.0), label="low")
    gate = GatedAccumulation([mid, low], thresholds=[0.5, 2.0])
    fail = run_episode(gate, [0, 0, 0], np.array([0, 0, 0.0]))
    assert fail.sum() == 0.0
    ok = run_episode(gate, [0, 0, 0], np.array([0, 0, 1.0]))
    assert ok.sum() == pytest.approx(3.0 + 30.0)
    lower_closed = run_episode(GatedAccumulation([mid, low], thresholds=[0.5, 5.0]), [0, 0, 0], np.array([0, 0, 1.0]))
    assert lower_closed.sum() == pytest.approx(3.0)


def test_gated_accumulation_success_outcome_reads_info() -> None:
    gate = GatedAccumulation([step_term()], thresholds=[1.0], outcome="success")
    gate.bind(OBS, ACT, 2)
    gate.reset(np.zeros((2, 1)), np.ones(2, bool))
    done = np.array([True, True])
    paid = gate(batch_of(np.array([2.0, 2.0]), done, infos=({"is_success": True}, {"is_success": False})))
    assert paid.tolist() == [2.0, 0.0]


# -- Clip / Delta -----------------------------------------------------------------------------------------
@given(st.lists(st.floats(-5, 5), min_size=1, max_size=15), st.floats(-1, 1))
@settings(max_examples=60, deadline=None)
def test_clip_is_nonpositive_and_padding_never_raises_return(values, eta) -> None:
    clipped = run_episode(ProcessRewardClip(step_term(), eta=eta), values)
    assert np.all(clipped <= 0.0)
    padded = run_episode(ProcessRewardClip(step_term(), eta=eta), [*values, *values])
    assert padded.sum() <= clipped.sum() + 1e-12


@given(st.lists(st.floats(-5, 5), min_size=1, max_size=15))
@settings(max_examples=60, deadline=None)
def test_delta_sums_to_first_process_reward(values) -> None:
    assert process_delta(np.array(values)).sum() == pytest.approx(values[0], abs=1e-9)
    paid = run_episode(ProcessRewardDelta(step_term()), values)
    v = np.array(values)
    expected = np.zeros(len(v))
    expected[1:] = v[:-1] - v[1:]
    expected[-1] += v[-1]
    np.testing.assert_allclose(paid, expected, atol=1e-9)
    assert paid.sum() == pytest.approx(values[0], abs=1e-9)


def test_delta_restarts_per_env_episode() -> None:
    delta = ProcessRewardDelta(step_term())
    delta.bind(OBS, ACT, 2)
    delta.reset(np.zeros((2, 1)), np.ones(2, bool))
    first = delta(batch_of(np.array([3.0, 5.0])))
    assert first.tolist() == [0.0, 0.0]
    delta.reset(np.zeros((2, 1)), np.array([True, False]))
    second = delta(batch_of(np.array([1.0, 1.0])))
    assert second.tolist() == [0.0, 4.0]


# -- PAR ------------------------------------------------------------------------------------------------
@given(st.lists(st.floats(-20, 20), min_size=2, max_size=20, unique=True), st.floats(-5, 5))
@settings(max_examples=60, deadline=None)
def test_preference_sigmoid_is_bounded_centred_increasing(values, ref) -> None:
    par = PreferenceSigmoid(step_term(), reference=ref)
    x = np.sort(np.array(values))
    out = par(batch_of(x))
    assert np.all((out >= 0) & (out <= 1))
    assert np.all(np.diff(out) >= 0)
    assert par(batch_of(np.array([ref])))[0] == pytest.approx(0.5)


def test_preference_sigmoid_many_references_is_mean_of_single() -> None:
    refs = [-1.0, 0.5, 2.0]
    x = np.linspace(-3, 3, 7)
    multi = PreferenceSigmoid(step_term(), reference=refs)(batch_of(x))
    singles = np.mean([PreferenceSigmoid(step_term(), reference=r)(batch_of(x)) for r in refs], axis=0)
    np.testing.assert_allclose(multi, singles)


# -- normalisation ----------------------------------------------------------------------------------------
def test_running_normalize_matches_numpy_mean_std(rng) -> None:
    norm = RunningNormalize(step_term(), clip=None)
    chunks = [rng.normal(3.0, 2.0, size=rng.integers(1, 9)) for _ in range(50)]
    for c in chunks:
        norm(batch_of(c))
    everything = np.concatenate(chunks)
    assert norm.mean == pytest.approx(everything.mean())
    assert norm.var == pytest.approx(everything.var())
    x = np.array([1.0, 5.0])
    expected = (x - everything.mean()) / np.sqrt(everything.var() + 1e-8)
    np.testing.assert_allclose(norm.transform_stored(x, batch_of(x)), expected)


def test_running_normalize_ema_and_clip(rng) -> None:
    norm = RunningNormalize(step_term(), mode="ema", decay=0.9, clip=1.0)
    m, sq = None, None
    for _ in range(30):
        c = rng.normal(size=4)
        norm(batch_of(c))
        m = c.mean() if m is None else 0.9 * m + 0.1 * c.mean()
        sq = np.mean(c**2) if sq is None else 0.9 * sq + 0.1 * np.mean(c**2)
    assert norm.mean == pytest.approx(m)
    assert norm.var == pytest.approx(sq - m**2)
    assert np.all(np.abs(norm(batch_of(np.array([100.0, -100.0])))) <= 1.0)


def test_weighted_sum_reports_contributions_that_add_up() -> None:
    total = WeightedSum([Extrinsic(), step_term()], weights=[2.0, -1.0])
    b = batch_of(np.array([1.0, 4.0]), reward=np.array([3.0, 0.5]))
    out = total.evaluate(b)
    np.testing.assert_allclose(out.total, [5.0, -3.0])
    np.testing.assert_allclose(out.terms["extrinsic"] + out.terms["process"], out.total)
    with pytest.raises(ValueError, match="2 terms but 1 weights"):
        WeightedSum([Extrinsic(), step_term()], weights=[1.0])


class _StoredStateReward(FunctionReward):
    """Stateful, but relabels from what it stores beside each buffer slot (as KAGI does)."""

    stateless = False

    @property
    def can_relabel(self) -> bool:  # type: ignore[override]
        return True


def test_composites_relabel_exactly_when_every_term_can() -> None:
    stored = _StoredStateReward(lambda b: b.reward * 2.0, label="stored")
    stateful = FunctionReward(lambda b: b.reward, label="stateful")
    stateful.stateless = False
    assert WeightedSum([stored, FunctionReward(lambda b: b.reward, label="plain")]).can_relabel
    assert not WeightedSum([stored, stateful]).can_relabel
    assert RunningNormalize(stored).can_relabel
    batch = TransitionBatch(np.zeros((2, 1)), np.zeros((2, 1)), np.zeros((2, 1)), np.array([1.0, 2.0]),
                            np.zeros(2, bool), np.zeros(2, bool))
    np.testing.assert_allclose(WeightedSum([stored], weights=[0.5]).relabel(batch), [1.0, 2.0])
    with pytest.raises(Exception, match="stateful"):
        WeightedSum([stored, stateful]).relabel(batch)
