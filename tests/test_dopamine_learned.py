"""Robo-Dopamine with models that read their inputs: slot wiring, the per-state progress head, consistency.

The oracle and constant-hop models of ``test_dopamine.py`` ignore images, anchors and slot order, so a potential
that swapped START and END, BEFORE and AFTER, or never looked at the new state would still pass there. Here the
models compute progress from pixels relative to their anchors, so each of those faults fails a test.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from scipy import stats

from robo_reward.methods.dopamine.labels import hop_label
from robo_reward.methods.dopamine.progress import LearnedProgressHead, ProgressModel
from robo_reward.methods.dopamine.reward import DopamineReward, ProgressPotential, consistency_update
from robo_reward.methods.dopamine.training import ProgressData, head_progress, train_progress_head
from robo_reward.protocol import TransitionBatch

CAMS = ("front", "wrist")
SIZE = 24
OBS = gym.spaces.Dict({c: gym.spaces.Box(0, 255, (SIZE, SIZE, 3), np.uint8) for c in CAMS})
ACT = gym.spaces.Box(-1, 1, (1,))


def render(x: np.ndarray, goal: np.ndarray) -> dict[str, np.ndarray]:
    """Two views of a 1-D reach: a red 3x3 dot at the grip position x and a green one at the goal (both in
    [0, 1]); the wrist view is the front view mirrored."""
    x, goal = np.atleast_1d(x), np.atleast_1d(goal)
    img = np.zeros((len(x), SIZE, SIZE, 3), np.uint8)
    for i, (a, g) in enumerate(zip(x, goal, strict=True)):
        ca, cg = 2 + round(a * (SIZE - 5)), 2 + round(g * (SIZE - 5))
        img[i, 6:9, ca - 1:ca + 2, 0] = 255
        img[i, 15:18, cg - 1:cg + 2, 1] = 255
    return {"front": img, "wrist": img[:, :, ::-1].copy()}


def true_progress(x: np.ndarray, x0: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """Reach-like progress: the fraction of the start distance covered (0 at the start, 1 at the goal)."""
    return np.clip(1.0 - np.abs(x - goal) / np.abs(x0 - goal), 0.0, 1.0)


def _red(images: np.ndarray) -> np.ndarray:
    col = images[:, 6:9, :, 0].max(axis=1).argmax(axis=1) + 1
    return (col - 2) / (SIZE - 5)


class PixelReader(ProgressModel):
    """Reads the red dot's position from pixels: a state's embedding is its front view's x, an anchor's is its
    x; the hop is the label formula on progress relative to the START and END anchors. It depends on every slot."""

    def embed_states(self, views, progress=None) -> np.ndarray:
        return _red(np.asarray(views["front"]))

    def embed_anchors(self, images, progress=None) -> np.ndarray:
        return _red(np.asarray(images))

    def anchor_as_state(self, anchors) -> np.ndarray:
        return np.asarray(anchors)

    def progress(self, start, goal, states) -> np.ndarray:
        return true_progress(states, start, goal)

    def hop(self, start, goal, before, after) -> np.ndarray:
        return hop_label(self.progress(start, goal, before), self.progress(start, goal, after))


class PerStatePixelReader(PixelReader):
    per_state = True


def _episode(rng: np.random.Generator, n: int, steps: int = 12):
    goal = np.full(n, 0.8)
    x0 = rng.uniform(0.0, 0.4, size=n)
    path = [x0]
    for _ in range(steps):
        path.append(np.clip(path[-1] + rng.uniform(-0.05, 0.15, size=n), 0.0, 1.0))
    return goal, x0, path


@pytest.mark.parametrize("model_cls", [PixelReader, PerStatePixelReader])
@pytest.mark.parametrize("consistency", [False, True])
def test_fused_progress_follows_pixels_relative_to_the_episode_start_and_goal(model_cls, consistency, rng) -> None:
    """Phi* equals the true progress of each env's own episode in every mode; a potential that swapped START and
    END (progress from the goal), BEFORE and AFTER (hop sign), used the reference start, or skipped the new
    state's images would not."""
    n = 3
    goal, x0, path = _episode(rng, n)
    reference_start = render(np.array([0.0]), goal[:1])["front"][0]
    reference_goal = render(goal[:1], goal[:1])["front"][0]
    potential = ProgressPotential(model_cls(CAMS), anchors=(reference_start, reference_goal), start="episode",
                                  consistency=consistency)
    potential.bind(OBS, n)
    potential.initial(render(x0, goal), np.ones(n, bool))
    for x in path[1:]:
        obs = render(x, goal)
        batch = TransitionBatch(obs, np.zeros((n, 1)), obs, np.zeros(n), np.zeros(n, bool), np.zeros(n, bool))
        phi = potential.next(batch)
        expected = true_progress(_red(obs["front"]), _red(render(x0, goal)["front"]), _red(reference_goal[None]))
        np.testing.assert_allclose(phi, expected, atol=1e-9)
        for mode in ("incremental", "forward", "backward"):
            np.testing.assert_allclose(potential.last[mode], expected, atol=1e-9)
    assert expected.max() > 0.5


def test_reference_start_is_the_papers_and_differs_from_the_episodes(rng) -> None:
    """With the paper's START (the reference demo's first frame) the backward mode's progress of the same state
    differs from the one relative to the episode's own start; the option is not a no-op. (The forward mode's
    label-formula hop from s_0 cancels the START for a distance-ratio progress, so it cannot show this.)"""
    goal, x0, path = _episode(rng, 2)
    anchors = (render(np.array([0.0]), goal[:1])["front"][0], render(goal[:1], goal[:1])["front"][0])
    out = {}
    for start in ("reference", "episode"):
        potential = ProgressPotential(PixelReader(CAMS), anchors=anchors, start=start, modes=["backward"])
        potential.bind(OBS, 2)
        potential.initial(render(x0, goal), np.ones(2, bool))
        obs = render(path[3], goal)
        out[start] = potential.next(TransitionBatch(obs, np.zeros((2, 1)), obs, np.zeros(2), np.zeros(2, bool),
                                                    np.zeros(2, bool)))
    assert np.abs(out["reference"] - out["episode"]).max() > 0.05
    with pytest.raises(ValueError, match="start must be"):
        ProgressPotential(PixelReader(CAMS), anchors=anchors, start="demo")


def test_consistency_update_equals_fusion_when_modes_agree_and_damps_disagreement() -> None:
    """With agreeing, exact modes the paper's update lands on the progress; when forward and backward disagree the
    step shrinks by w = exp(-alpha Delta^2)."""
    prev, target = np.array([0.2]), np.array([0.5])
    agree = consistency_update(prev, target, target, target - prev)
    np.testing.assert_allclose(agree, target)
    f, b = np.array([0.2]), np.array([0.8])
    disagree = consistency_update(prev, f, b, target - prev, alpha=2.0, eps=0.05)
    delta = 0.6 / (0.5 + 0.05)
    np.testing.assert_allclose(disagree - prev, np.exp(-2.0 * delta**2) * (agree - prev), rtol=1e-12)
    assert 0 < disagree[0] - prev[0] < 0.1 * (agree[0] - prev[0])


# -- the learned per-state head ----------------------------------------------------------------------------
def synthetic_data(rng: np.random.Generator, episodes: int, steps: int = 10) -> ProgressData:
    """Random 1-D reaches (goal anywhere, start >= 0.3 away), every state labelled with its true progress."""
    frames = {c: [] for c in CAMS}
    progress, episode, start_row, ends = [], [], [], []
    for e in range(episodes):
        goal = rng.uniform(0, 1)
        x0 = np.clip(goal + rng.choice([-1, 1]) * rng.uniform(0.3, 0.8), 0, 1)
        if abs(x0 - goal) < 0.3:
            x0 = 0.0 if goal > 0.5 else 1.0
        xs = np.concatenate([[x0], rng.uniform(0, 1, size=steps)])
        start_row.append(len(progress))
        for c, f in render(xs, np.full(len(xs), goal)).items():
            frames[c].append(f)
        progress += true_progress(xs, x0, goal).tolist()
        episode += [e] * len(xs)
        ends.append(render(np.array([goal]), np.array([goal]))["front"][0])
    return ProgressData({c: np.concatenate(f) for c, f in frames.items()}, np.asarray(progress),
                        np.asarray(episode), np.asarray(start_row), np.stack(ends))


@pytest.fixture(scope="module")
def trained_head():
    rng = np.random.default_rng(0)
    head = LearnedProgressHead(CAMS, image_size=SIZE, beta=0.0, seed=0, ensemble=3, width=8, embed_dim=16, hidden=64,
                               encoder="spatial")
    train_progress_head(head, synthetic_data(rng, 120), steps=250, batch_size=32, lr=2e-3, seed=0)
    return head, synthetic_data(np.random.default_rng(1), 30)


@pytest.mark.slow
def test_learned_head_tracks_progress_on_unseen_states(trained_head) -> None:
    head, test = trained_head
    pred = head_progress(head, test)
    assert stats.spearmanr(pred, test.progress).statistic > 0.8
    assert np.mean((pred - test.progress) ** 2) < 0.25 * np.var(test.progress)


@pytest.mark.slow
def test_learned_head_reads_its_anchors_and_its_images(trained_head) -> None:
    """The progress depends on the START anchor (the start distance) and the END anchor (the goal): given another
    episode's anchors, or a blank state, the head's error grows several-fold."""
    head, test = trained_head
    base = np.mean((head_progress(head, test) - test.progress) ** 2)
    rolled = np.roll(np.arange(len(test.start_row)), 1)
    other_start = ProgressData(test.frames, test.progress, test.episode, test.start_row[rolled], test.end_anchor)
    other_goal = ProgressData(test.frames, test.progress, test.episode, test.start_row, test.end_anchor[rolled])
    blank = ProgressData({c: np.zeros_like(f) for c, f in test.frames.items()}, test.progress, test.episode,
                         test.start_row, test.end_anchor)
    for wrong in (other_start, other_goal):
        assert np.mean((head_progress(head, wrong) - test.progress) ** 2) > 2.0 * base
    rho = stats.spearmanr(head_progress(head, blank), test.progress).statistic
    assert np.isnan(rho) or abs(rho) < 0.3, "a blank state must not rank like the real one"


@pytest.mark.slow
def test_pessimism_lowers_progress_by_beta_std_and_hops_follow_the_label_formula(trained_head) -> None:
    head, test = trained_head
    idx = np.arange(40)
    start = head.embed_anchors(test.frames["front"][test.start_row[test.episode[idx]]])
    goal = head.embed_anchors(test.end_anchor[test.episode[idx]])
    states = head.embed_states({c: test.frames[c][idx] for c in CAMS})
    members = head.members(start, goal, states)
    head.beta = 2.0
    try:
        np.testing.assert_allclose(head.progress(start, goal, states),
                                   np.clip(members.mean(1) - 2.0 * members.std(1), 0, 1))
        p, q = head.progress(start[1:], goal[1:], states[:-1]), head.progress(start[1:], goal[1:], states[1:])
        np.testing.assert_allclose(head.hop(start[1:], goal[1:], states[:-1], states[1:]), hop_label(p, q))
        assert members.std(1).max() > 0.01, "ensemble members must differ"
    finally:
        head.beta = 0.0


@pytest.mark.slow
def test_learned_reward_pays_for_moving_towards_the_goal_and_saves_and_loads(trained_head, tmp_path) -> None:
    """The Dopamine reward on the learned head, with the episode's START: the shaping is positive on steps
    towards the goal and negative away from it, and a saved checkpoint reloads to the same reward."""
    from robo_reward.methods.dopamine.training import save_grm

    head, _ = trained_head
    path = save_grm(head, tmp_path / "head.pt")
    n, goal = 4, np.full(4, 0.8)
    rewards = []
    for model in (head, {"name": "grm", "checkpoint": str(path), "beta": 0.0}):
        reward = DopamineReward(model=model, cameras=CAMS, scale=1.0, gold="none")
        reward.potential.anchor_images = (render(np.zeros(1), goal[:1])["front"][0],
                                          render(goal[:1], goal[:1])["front"][0])
        reward.bind(OBS, ACT, n)
        reward.set_discount(1.0)
        x = np.array([0.1, 0.2, 0.3, 0.35])
        reward.reset(render(x, goal), np.ones(n, bool))
        out = []
        for dx in (0.15, 0.15, -0.15):
            x = x + dx
            obs = render(x, goal)
            out.append(reward(TransitionBatch(obs, np.zeros((n, 1)), obs, np.zeros(n), np.zeros(n, bool),
                                              np.zeros(n, bool))))
        rewards.append(np.array(out))
    np.testing.assert_allclose(rewards[0], rewards[1], atol=1e-9)
    assert (rewards[0][:2] > 0.02).all() and (rewards[0][2] < -0.02).all()


def test_progress_head_pipeline_runs_and_feeds_the_reward(tmp_path) -> None:
    """``robo-reward dopamine-grm`` with ``model: phi`` at toy size: rollout data of every behaviour, the head,
    its adaptation and report; the adapted head then drives the reward in a Reach pixel env with the episode's
    START."""
    import yaml
    from stable_baselines3.common.vec_env import DummyVecEnv

    from robo_reward.cli import main
    from robo_reward.methods.dopamine.progress import LearnedGRM
    from robo_reward.sb3 import RewardVecEnvWrapper

    cams = ["top", "wrist"]
    cfg = {"kind": "grm_pipeline", "model": "phi", "env_id": "robo_reward/Reach-v0", "cameras": cams,
           "anchor_camera": "top", "image_size": 24, "train_variants": {"default": {}},
           "heldout_variant": {"num_distractors": 2}, "heldout_eval_demos": 1, "validation_every": 2,
           "data": {"episodes": {"expert": 2, "dart": 2, "decoy": 2, "random": 2, "failed": 2}},
           "head": {"ensemble": 2, "encoder": "spatial", "embed_dim": 8, "hidden": 16, "width": 4},
           "pretrain": {"steps": 5, "batch_size": 8}, "adapt": {"steps": 3, "batch_size": 8}}
    path = tmp_path / "grm.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "grm"
    assert main(["dopamine-grm", str(path), "--run-dir", str(out)]) == 0
    for f in ("progress_data.npz", "checkpoints/grm_pretrained.pt", "checkpoints/grm_adapted.pt", "report.md"):
        assert (out / f).exists(), f
    data = np.load(out / "progress_data.npz")
    assert len(data["start_row"]) == 10 and data["progress"].min() >= 0 and data["progress"].max() <= 1
    assert data["progress"][data["start_row"]].max() == 0.0, "every rollout starts at progress 0"
    assert "spearman_random" in (out / "report.md").read_text()
    adapted = out / "checkpoints" / "grm_adapted.pt"
    assert isinstance(LearnedGRM.load(str(adapted)), LearnedProgressHead)
    reward = DopamineReward(cameras=cams, anchor_camera="top", model={"name": "grm", "checkpoint": str(adapted)},
                            reference={"dataset": str(out / "minari/robo_reward/dopamine/heldout-reference-v0")})
    assert reward.potential.start == "episode"

    def make():
        return gym.make("robo_reward/Reach-v0", obs_mode="state+pixels", cameras=cams, image_size=24)

    venv = RewardVecEnvWrapper(DummyVecEnv([make, make]), reward)
    reward.set_discount(0.99)
    venv.reset()
    calls = reward.potential.calls
    for _ in range(4):
        _, r, _, infos = venv.step(np.zeros((2, 4), dtype=np.float32))
        assert np.isfinite(r).all() and 0.0 <= infos[0]["reward/dopamine/phi"] <= 1.0
    assert reward.potential.calls - calls == 2 * 4, "one encoder and one progress call per vector step"
    venv.close()


def test_decoy_rollouts_run_on_a_table_top_goal_box() -> None:
    """Push's goal box is 2-D (x, y): the decoy point gets the gripper's start height instead of failing to
    broadcast against the 3-D gripper position, and the rollout drives the gripper towards it."""
    from robo_reward.agents.dopamine_grm import DataConfig, collect_progress_data

    cfg = DataConfig(episodes={"decoy": 2}, noise=0.0)
    data = collect_progress_data("robo_reward/Push-v0", {"default": {}}, cfg, cameras=["top"], anchor_camera="top",
                                 image_size=16, seed=0)
    assert len(data.start_row) == 2 and data.progress.min() >= 0.0 and data.progress.max() <= 1.0
    env = gym.make("robo_reward/Push-v0")
    env.reset(seed=0)
    base = env.unwrapped
    start = base.grip_pos.copy()
    target = np.append(base.goal_low, start[2])
    state = {"t": 0, "decoy": target, "decoy_steps": 10, "burst": 0, "stopped": False}
    from robo_reward.agents.dopamine_grm import _policy_action

    for _ in range(10):
        env.step(_policy_action(env, "decoy", None, np.random.default_rng(0), state, cfg))
        state["t"] += 1
    assert np.linalg.norm(base.grip_pos - target) < np.linalg.norm(start - target) - 0.02
