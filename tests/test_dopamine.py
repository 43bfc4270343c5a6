"""Robo-Dopamine: label algebra, the sampler, progress fusion, shaping, batching and the HTTP adapter."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robo_reward.methods.dopamine.http import HttpGRM, parse_score
from robo_reward.methods.dopamine.labels import (
    anchor_episodes,
    hop_label,
    incremental_update,
    point_progress,
    sample_pairs,
    sample_points,
)
from robo_reward.methods.dopamine.progress import ProgressModel
from robo_reward.methods.dopamine.reward import DopamineReward, ProgressPotential
from robo_reward.protocol import TransitionBatch
from robo_reward.testing import value_iteration

CAMS = ("front", "wrist")
OBS = gym.spaces.Dict({c: gym.spaces.Box(0, 255, (4, 4, 3), np.uint8) for c in CAMS})
ACT = gym.spaces.Box(-1, 1, (1,))


# -- labels -----------------------------------------------------------------------------------------------
@given(st.floats(0, 1), st.floats(0, 1))
@settings(max_examples=300, deadline=None)
def test_label_round_trip_progress_and_regress(phi_p, phi_q) -> None:
    if (phi_q > phi_p and phi_p == 1.0) or (phi_q < phi_p and phi_p == 0.0):
        return
    h = hop_label(phi_p, phi_q)
    assert -1.0 <= h <= 1.0
    assert incremental_update(phi_p, h) == pytest.approx(phi_q, abs=1e-12)


def test_endpoints_and_zero_denominators() -> None:
    phi = point_progress(11)
    p, q = np.meshgrid(np.arange(11), np.arange(11), indexing="ij")
    ok = ~(((q > p) & (p == 10)) | ((q < p) & (p == 0)))
    h = hop_label(phi[p[ok]], phi[q[ok]])
    assert np.array_equal(np.isclose(h, 1.0), (q[ok] == 10) & (p[ok] != 10))
    assert np.array_equal(np.isclose(h, -1.0), (q[ok] == 0) & (p[ok] != 0))
    with pytest.raises(ValueError, match="zero denominator"):
        hop_label(0.0, -0.5)


def test_equal_points_per_segment_and_keyframe_progress() -> None:
    keyframes = [0, 7, 19, 26, 60]
    points = sample_points(keyframes)
    phi = point_progress(len(points))
    m = (len(points) - 1) // (len(keyframes) - 1)
    for j, k in enumerate(keyframes):
        i = int(np.flatnonzero(points == k)[0])
        assert phi[i] == pytest.approx(j / (len(keyframes) - 1), abs=1 / (len(points) - 1))
    segments = np.searchsorted(keyframes, points[1:], side="left")
    assert np.all(np.bincount(segments)[1:] == m)
    assert len(np.unique(points)) == len(points)


def test_sampler_proportions_endpoints_and_cap(rng) -> None:
    points = sample_points([0, 20, 45, 60, 99])
    pairs = sample_pairs(points, rng, max_pairs=1000)
    assert len(pairs) == 1000
    assert pairs.zero.mean() == pytest.approx(0.05, abs=0.005)
    spacing = np.diff(points).max()
    assert np.all(np.abs(pairs.after[pairs.zero] - pairs.before[pairs.zero]) <= 0.075 * spacing + 0.5)
    assert np.all(pairs.label[pairs.zero] == 0.0)
    moved = ~pairs.zero
    assert not np.any((pairs.after[moved] > pairs.before[moved]) & (pairs.before[moved] == points[-1]))
    assert not np.any((pairs.after[moved] < pairs.before[moved]) & (pairs.before[moved] == points[0]))
    assert not np.any(np.isin(pairs.before[pairs.zero], points[[0, -1]]))
    counts = np.histogram(pairs.label[moved], bins=25, range=(-1, 1))[0]
    assert counts.min() > 0, "every hop bin gets pairs"
    small = sample_pairs(sample_points([0, 3, 6]), rng, max_pairs=1000)
    assert len(small) <= 1000


def test_anchor_swap_rate(rng) -> None:
    episodes = rng.integers(0, 10, size=20_000)
    anchors = anchor_episodes(episodes, 10, rng, swap_probability=0.75)
    assert (anchors != episodes).mean() == pytest.approx(0.75, abs=0.01)
    assert np.array_equal(anchor_episodes(episodes[:5] * 0, 1, rng), episodes[:5] * 0)


@given(st.lists(st.floats(-1, 1), min_size=1, max_size=60))
@settings(max_examples=200, deadline=None)
def test_incremental_progress_stays_in_unit_interval(hops) -> None:
    phi = 0.0
    for h in hops:
        phi = float(incremental_update(phi, h))
        assert 0.0 <= phi <= 1.0


# -- progress and fusion ---------------------------------------------------------------------------------
def step(potential_reward, progress, done=None, terminated=None, n=None) -> np.ndarray:
    n = len(progress)
    obs = {c: np.zeros((n, 4, 4, 3), np.uint8) for c in CAMS}
    term = np.zeros(n, bool) if terminated is None else np.asarray(terminated)
    batch = TransitionBatch(obs, np.zeros((n, 1)), obs, np.zeros(n), term, np.zeros(n, bool),
                            infos=[{"progress": p, "is_success": p >= 1.0} for p in progress])
    return potential_reward(batch)


def oracle_reward(**kw) -> DopamineReward:
    reward = DopamineReward(cameras=CAMS, **kw)
    reward.bind(OBS, ACT, 3)
    reward.set_discount(0.9)
    reward.reset({c: np.zeros((3, 4, 4, 3), np.uint8) for c in CAMS}, np.ones(3, bool))
    return reward


def test_oracle_fusion_equals_true_progress_and_uses_two_model_calls_per_step(rng) -> None:
    reward = oracle_reward()
    calls0 = reward.potential.calls
    for _t in range(20):
        progress = rng.uniform(0, 1, size=3)
        out = reward.evaluate(TransitionBatch(
            {c: np.zeros((3, 4, 4, 3), np.uint8) for c in CAMS}, np.zeros((3, 1)),
            {c: np.zeros((3, 4, 4, 3), np.uint8) for c in CAMS}, np.zeros(3), np.zeros(3, bool), np.zeros(3, bool),
            infos=[{"progress": p} for p in progress]))
        np.testing.assert_allclose(out.terms["dopamine/phi"], progress, atol=1e-12)
        for mode in ("incremental", "forward", "backward"):
            np.testing.assert_allclose(out.terms[f"dopamine/phi_{mode}"], progress, atol=1e-12)
    assert reward.potential.calls - calls0 <= 3 * 20


class ConstantHop(ProgressModel):
    """A model answering the same hop for every query (to exercise fusion and clamping)."""

    def __init__(self, value: float) -> None:
        super().__init__(CAMS)
        self.value = value

    def hop(self, start, goal, before, after) -> np.ndarray:
        return np.full(len(after), self.value)


def test_clamp_removes_backward_progress_above_one() -> None:
    potential = ProgressPotential(ConstantHop(0.6), modes=["backward"], anchors=(np.zeros((4, 4, 3)),) * 2)
    potential.bind(OBS, 2)
    obs = {c: np.zeros((2, 4, 4, 3), np.uint8) for c in CAMS}
    potential.initial(obs, np.ones(2, bool))
    batch = TransitionBatch(obs, np.zeros((2, 1)), obs, np.zeros(2), np.zeros(2, bool), np.zeros(2, bool))
    assert np.all(potential.next(batch) == 1.0)
    assert np.allclose(potential.last["backward"], 1.6)
    unclamped = ProgressPotential(ConstantHop(0.6), modes=["backward"], anchors=(np.zeros((4, 4, 3)),) * 2,
                                  clamp=False)
    unclamped.bind(OBS, 2)
    unclamped.initial(obs, np.ones(2, bool))
    assert np.allclose(unclamped.next(batch), 1.6)


def test_terminated_episode_shaping_sums_to_minus_phi0_and_naive_does_not() -> None:
    gamma = 0.9
    trajectory = [0.2, 0.5, 0.4, 0.8, 1.0]
    sums = {}
    for shaping in ("pbrs", "naive"):
        reward = oracle_reward(shaping=shaping, gold="none")
        total = 0.0
        for t, p in enumerate(trajectory):
            terminated = [t == len(trajectory) - 1] * 3
            out = reward.evaluate(TransitionBatch(
                {c: np.zeros((3, 4, 4, 3), np.uint8) for c in CAMS}, np.zeros((3, 1)),
                {c: np.zeros((3, 4, 4, 3), np.uint8) for c in CAMS}, np.zeros(3), np.array(terminated),
                np.zeros(3, bool), infos=[{"progress": p}] * 3))
            total += gamma**t * out.terms["dopamine/shaping"][0]
        sums[shaping] = total
    assert sums["pbrs"] == pytest.approx(0.0, abs=1e-12)  # -Phi*(s_0), and Phi*(s_0) = 0
    assert abs(sums["naive"]) > 0.05  # the naive difference pays for when progress was made


def test_gold_is_paid_once_per_episode_at_threshold() -> None:
    reward = oracle_reward(gold="threshold", threshold=0.95)
    paid = []
    for p in (0.5, 0.96, 0.97, 0.99):
        out = reward.evaluate(TransitionBatch(
            {c: np.zeros((3, 4, 4, 3), np.uint8) for c in CAMS}, np.zeros((3, 1)),
            {c: np.zeros((3, 4, 4, 3), np.uint8) for c in CAMS}, np.zeros(3), np.zeros(3, bool), np.zeros(3, bool),
            infos=[{"progress": p}] * 3))
        paid.append(out.terms["dopamine/gold"][0])
    assert paid == [0.0, 1.0, 0.0, 0.0]


def test_gamma_mismatch_raises() -> None:
    reward = DopamineReward(cameras=CAMS, gamma=0.9)
    with pytest.raises(ValueError, match=r"learner uses gamma=0\.99"):
        reward.set_discount(0.99)


def test_space_without_cameras_is_refused() -> None:
    from robo_reward.protocol import SpaceMismatchError

    learned = DopamineReward(cameras=CAMS, model=ConstantHop(0.0))
    learned.potential.anchor_images = (np.zeros((4, 4, 3)),) * 2
    with pytest.raises(SpaceMismatchError, match=r"cameras \['front', 'wrist'\]"):
        learned.bind(gym.spaces.Box(-1, 1, (3,)), ACT, 1)
    DopamineReward(cameras=CAMS).bind(gym.spaces.Box(-1, 1, (3,)), ACT, 1)  # the oracle needs no images


def parking_values(shaping: str, gamma: float = 0.99) -> np.ndarray:
    """Q at the near-goal state P of start -> P (park or go) -> goal, with Dopamine's shaping from the oracle.

    Shaping values come from the reward itself: each (s, s') pair is one env row stepped from s to s'.
    """
    progress = {"start": 0.0, "P": 0.9, "goal": 1.0}
    reward = DopamineReward(cameras=CAMS, shaping=shaping, gold="none")
    pairs = [("start", "P", False), ("start", "start", False), ("P", "goal", True), ("P", "P", False)]
    n = len(pairs)
    reward.bind(OBS, ACT, n)
    reward.set_discount(gamma)
    obs = {c: np.zeros((n, 4, 4, 3), np.uint8) for c in CAMS}
    reward.reset(obs, np.ones(n, bool))

    def batch(prog, term):
        return TransitionBatch(obs, np.zeros((n, 1)), obs, np.zeros(n), np.array(term), np.zeros(n, bool),
                               infos=[{"progress": p} for p in prog])

    reward.evaluate(batch([progress[s] for s, _, _ in pairs], [False] * n))
    f = reward.evaluate(batch([progress[s2] for _, s2, _ in pairs], [t for *_, t in pairs])).terms["dopamine/shaping"]
    go, park = 0, 1
    p = np.zeros((3, 2, 3))
    r = np.zeros((3, 2, 3))
    p[0, go, 1] = p[0, park, 0] = p[1, go, 2] = p[1, park, 1] = 1.0
    p[2, :, 2] = 1.0
    r[1, go, 2] = 0.5  # the task's sparse success reward
    r[0, go, 1], r[0, park, 0], r[1, go, 2], r[1, park, 1] = f[0], f[1], r[1, go, 2] + f[2], f[3]
    return value_iteration(p, r, gamma, terminal=np.array([False, False, True]))[1]


def test_parking_trap_naive_parks_pbrs_keeps_optimum() -> None:
    go, park = 0, 1
    assert parking_values("pbrs").argmax() == go
    assert parking_values("naive").argmax() == park


# -- HTTP adapter -----------------------------------------------------------------------------------------
def test_parse_score() -> None:
    assert parse_score("progress <score>+35%</score>") == pytest.approx(0.35)
    assert parse_score("<score>-120%</score>") == -1.0
    with pytest.raises(ValueError, match="no <score>"):
        parse_score("I think it moved forward")


def test_http_grm_request_and_parse_against_loopback_server() -> None:
    answers = iter(["<score>+25%</score>", "<score>-40%</score>"])
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            reply = {"choices": [{"message": {"content": next(answers)}}]}
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        grm = HttpGRM(url=f"http://127.0.0.1:{server.server_port}/v1", task="pick the cube", cameras=CAMS,
                      workers=1)
        img = np.zeros((1, 8, 8, 3), np.uint8)
        views = {c: np.zeros((2, 8, 8, 3), np.uint8) for c in CAMS}
        after = grm.embed_states(views)
        hops = grm.hop(grm.embed_anchors(img), grm.embed_anchors(img), after, after)
    finally:
        server.shutdown()
    assert sorted(hops.tolist()) == [-0.4, 0.25]
    content = seen[0]["messages"][0]["content"]
    assert content[0]["type"] == "text" and "pick the cube" in content[0]["text"]
    images = [c for c in content if c["type"] == "image_url"]
    assert len(images) == 2 + 2 * len(CAMS) and images[0]["image_url"]["url"].startswith("data:image/png;base64,")


def test_oracle_reward_in_a_pixel_vec_env_tracks_true_progress() -> None:
    """PickPlace with the scripted expert through the SB3 adapter: Phi* equals the env's privileged progress,
    and a vector step costs at most 3 batched model calls."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    import robo_reward  # noqa: F401
    from robo_reward.envs.experts import make_expert
    from robo_reward.sb3 import RewardVecEnvWrapper

    def make():
        return gym.make("robo_reward/PickPlace-v0", obs_mode="state+pixels", cameras=CAMS, image_size=24)

    venv = DummyVecEnv([make, make])
    reward = DopamineReward(cameras=CAMS)
    wrapped = RewardVecEnvWrapper(venv, reward)
    reward.set_discount(0.99)
    venv.seed(3)
    wrapped.reset()
    experts = [make_expert(e, seed=i) for i, e in enumerate(venv.envs)]
    for e in experts:
        e.reset()
    for _ in range(60):
        calls = reward.potential.calls
        actions = np.stack([e.act().action for e in experts])
        _, _, dones, infos = wrapped.step(actions)
        assert reward.potential.calls - calls <= 3
        for i, info in enumerate(infos):
            progress = info["progress"]
            assert info["reward/dopamine/phi"] == pytest.approx(progress, abs=1e-9)
            if dones[i]:
                experts[i].reset()
    assert max(info["progress"] for info in infos) > 0
    wrapped.close()


@pytest.mark.slow
def test_one_shot_adaptation_raises_voc_on_a_heldout_variant() -> None:
    """A small GRM pretrained on two Push variants, adapted from ONE demo of a held-out variant (purple object
    among distractors): VOC on other held-out demos rises, and the reversed videos get negative VOC."""
    import copy

    from robo_reward.envs.demos import collect_demos
    from robo_reward.methods.dopamine.progress import LearnedGRM
    from robo_reward.methods.dopamine.training import build_hop_dataset, train_grm, voc


    def demos(n, seed, **kw):
        return collect_demos("robo_reward/Push-v0", episodes=n, pixels=True, cameras=CAMS, image_size=24, seed=seed,
                             env_kwargs=kw)

    train = demos(4, 0) + demos(4, 10, object_color="blue")
    heldout = {"object_color": "purple", "num_distractors": 2}
    reference, evaluation = demos(1, 100, **heldout)[0], demos(3, 200, **heldout)
    rng = np.random.default_rng(0)
    model = LearnedGRM(CAMS, image_size=24, seed=0)
    train_grm(model, build_hop_dataset(train, [0] * len(train), CAMS, "front", rng, max_pairs=300), steps=200, seed=0)
    start, goal = reference.frames("front")[0], reference.frames("front")[-1]
    zero_shot = np.mean([voc(model, d, start, goal, np.random.default_rng(0)) for d in evaluation], axis=0)
    adapted = copy.deepcopy(model)
    train_grm(adapted, build_hop_dataset([reference], [0], CAMS, "front", rng, max_pairs=300), steps=100, lr=1e-4,
              seed=1)
    after = np.mean([voc(adapted, d, start, goal, np.random.default_rng(0)) for d in evaluation], axis=0)
    assert after[0] > zero_shot[0]
    assert after[1] < 0 and zero_shot[1] < 0


@pytest.mark.slow
def test_grm_pipeline_runs_caches_and_feeds_the_reward(tmp_path) -> None:
    """``robo-reward dopamine-grm`` end to end at toy size; the adapted GRM then drives the reward in a pixel env."""
    import yaml
    from stable_baselines3.common.vec_env import DummyVecEnv

    from robo_reward.cli import main
    from robo_reward.methods.dopamine.progress import LearnedGRM
    from robo_reward.sb3 import RewardVecEnvWrapper

    cfg = {"env_id": "robo_reward/Push-v0", "cameras": list(CAMS), "image_size": 24,
           "train_variants": {"default": {}}, "heldout_variant": {"object_color": "purple"},
           "demos_per_variant": 2, "heldout_eval_demos": 1, "pretrain": {"steps": 20, "batch_size": 8},
           "adapt": {"steps": 10, "batch_size": 8}, "run_dir": str(tmp_path / "elsewhere"), "max_pairs": 50}
    path = tmp_path / "grm.yaml"
    path.write_text(yaml.safe_dump({"kind": "grm_pipeline", **cfg}))
    out = tmp_path / "grm"
    args = ["dopamine-grm", str(path), "--run-dir", str(out), "--set", "adapt.batch_size=4"]
    assert main(args) == 0
    assert not (tmp_path / "elsewhere").exists(), "--run-dir overrides the config's run_dir"
    for f in ("config.yaml", "checkpoints/grm_pretrained.pt", "checkpoints/grm_adapted.pt", "voc.csv", "report.md",
              "pretrain.csv", "curves.png"):
        assert (out / f).exists(), f
    assert yaml.safe_load((out / "config.yaml").read_text())["adapt"]["batch_size"] == 4, "--set reaches the run"
    adapted = out / "checkpoints" / "grm_adapted.pt"
    stamp = adapted.stat().st_mtime_ns
    assert main(args) == 0
    assert adapted.stat().st_mtime_ns == stamp, "a finished stage is not redone"
    first = (out / "voc.csv").read_text()
    adapted.unlink()
    assert main(args) == 0
    assert (out / "voc.csv").read_text() == first, "adapting after a cached pretrain gives the same GRM"

    grm = LearnedGRM.load(str(adapted))
    reloaded = LearnedGRM.load(str(adapted))
    views = {c: np.random.default_rng(0).integers(0, 255, (3, 24, 24, 3), dtype=np.uint8) for c in CAMS}
    emb = grm.embed_states(views)
    np.testing.assert_array_equal(emb, reloaded.embed_states(views))
    reference = out / "minari" / "robo_reward" / "dopamine" / "heldout-reference-v0"
    reward = DopamineReward(cameras=CAMS, model={"name": "grm", "checkpoint": str(adapted)},
                            reference={"dataset": str(reference)})

    def make():
        return gym.make("robo_reward/Push-v0", obs_mode="state+pixels", cameras=CAMS, image_size=24,
                        object_color="purple")

    venv = RewardVecEnvWrapper(DummyVecEnv([make, make]), reward)
    reward.set_discount(0.99)
    venv.reset()
    for _ in range(5):
        _, r, _, infos = venv.step(np.zeros((2, 4), dtype=np.float32))
        assert np.isfinite(r).all() and 0.0 <= infos[0]["reward/dopamine/phi"] <= 1.0
    venv.close()
