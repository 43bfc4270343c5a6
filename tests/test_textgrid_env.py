"""The message DoorKey grid world (ONI's small-scale build): checkers, every event's message, counts, variants,
determinism, and the offline reference arm of the ONI reward."""

from __future__ import annotations

import glob

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import robo_reward  # noqa: F401
from robo_reward.envs.nethack.env import decode_message
from robo_reward.envs.textgrid.env import AMBIENT, TextDoorKeyEnv
from robo_reward.methods.oni import KeywordAnnotator, ONIRanking, ONIRetrieval
from robo_reward.protocol import TransitionBatch

PICKUP, DROP, TOGGLE, FORWARD = 3, 4, 5, 2


def _face(env: TextDoorKeyEnv, kind: str) -> None:
    """Put the agent on a free cell next to a ``kind`` object, facing it."""
    g = env._grid
    for x in range(1, g.grid.width - 1):
        for y in range(1, g.grid.height - 1):
            cell = g.grid.get(x, y)
            if cell is None or cell.type != kind:
                continue
            for d, (dx, dy) in enumerate([(1, 0), (0, 1), (-1, 0), (0, -1)]):
                px, py = x - dx, y - dy
                if 0 < px < g.grid.width - 1 and 0 < py < g.grid.height - 1 and g.grid.get(px, py) is None:
                    g.agent_pos, g.agent_dir = (px, py), d
                    return
    raise AssertionError(f"no free cell next to a {kind}")


def _say(env: TextDoorKeyEnv, action: int) -> tuple[str, int, dict]:
    obs, _, _, _, info = env.step(action)
    return decode_message(obs["message"]), int(obs["message_count"][0]), info


@pytest.mark.parametrize("task", ["TextDoorKey", "TextDoorKeyVariants"])
def test_env_checkers(task: str) -> None:
    check_env(gym.make(f"robo_reward/{task}-v0").unwrapped, skip_render_check=True)
    sb3_check_env(gym.make(f"robo_reward/{task}-v0"))


def test_every_event_prints_its_message_and_counts_restart_at_reset() -> None:
    env = TextDoorKeyEnv(size=6, ambient=0.0)
    env.reset(seed=3)
    _face(env, "door")
    assert _say(env, TOGGLE)[:2] == ("This yellow door is locked.", 1)
    assert _say(env, FORWARD)[:2] == ("This yellow door is locked.", 2)
    assert _say(env, PICKUP)[0] == "There is nothing here to pick up."
    assert _say(env, 6)[0] == ""
    _face(env, "key")
    text, count, info = _say(env, PICKUP)
    assert (text, count, info["has_key"]) == ("You pick up the yellow key.", 1, True)
    assert _say(env, PICKUP)[0] == "There is nothing here to pick up."
    assert _say(env, DROP)[0] == "You drop the yellow key."
    assert _say(env, PICKUP)[:2] == ("You pick up the yellow key.", 2)
    _face(env, "door")
    text, _, info = _say(env, TOGGLE)
    assert (text, info["door_open"]) == ("You unlock the yellow door.", True)
    assert _say(env, TOGGLE)[0] == "You close the yellow door."
    assert _say(env, FORWARD)[0] == "The yellow door is closed."
    assert _say(env, TOGGLE)[0] == "The yellow door opens."
    _face(env, "wall")
    assert _say(env, FORWARD)[0] == "There is a wall in the way."
    _face(env, "goal")
    obs, reward, terminated, truncated, info = env.step(FORWARD)
    assert decode_message(obs["message"]) == "You reach the goal square!"
    assert terminated and not truncated and reward > 0 and info["is_success"]
    assert info["distinct_messages"] == 10 and info["messages"] == 13
    obs, info = env.reset()
    assert int(obs["message_count"][0]) == 0 and info["messages"] == 0 and not info["has_key"]
    _face(env, "door")
    assert _say(env, TOGGLE)[:2] == ("This yellow door is locked.", 1)


def test_variants_prefix_the_turn_and_ambient_messages_appear_at_their_rate() -> None:
    env = TextDoorKeyEnv(size=6, variants=True, ambient=0.0)
    env.reset(seed=0)
    _face(env, "door")
    env.step(0)
    env.step(1)
    assert _say(env, TOGGLE)[:2] == ("Turn 3: This yellow door is locked.", 1)
    assert _say(env, TOGGLE)[:2] == ("Turn 4: This yellow door is locked.", 2)  # the event's count decays
    noisy = TextDoorKeyEnv(size=6, ambient=0.2)
    noisy.reset(seed=0)
    texts = [_say(noisy, 0)[0] for _ in range(500)]
    assert 0.14 < sum(t in AMBIENT for t in texts) / len(texts) < 0.26
    assert set(texts) <= {*AMBIENT, ""}


def test_seeded_episodes_are_reproducible_and_seeds_differ() -> None:
    def run(seed: int) -> list[np.ndarray]:
        env = TextDoorKeyEnv(size=8, ambient=0.1)
        obs, _ = env.reset(seed=seed)
        out = [obs["policy"]]
        rng = np.random.default_rng(0)
        for _ in range(60):
            obs, *_ = env.step(int(rng.integers(7)))
            out += [obs["policy"], obs["message"].astype(np.float32)]
        return out

    a, b, c = run(5), run(5), run(6)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def _batch(texts: list[str]) -> TransitionBatch:
    from robo_reward.envs.textgrid.env import encode_message

    obs = {"message": np.stack([encode_message(t) for t in texts]),
           "message_count": np.ones((len(texts), 1), np.int32)}
    n = len(texts)
    return TransitionBatch(obs, np.zeros((n, 1)), obs, np.zeros(n), np.zeros(n, bool), np.zeros(n, bool))


def test_the_offline_arm_pays_each_label_at_first_sight_and_the_online_arm_after_labelling() -> None:
    texts = ["Turn 9: You unlock the yellow door.", "You hear water dripping.", "Turn 4: You pick up the yellow key."]
    assert KeywordAnnotator().label(texts, "keydoor") == [1, 0, 1]
    offline = ONIRetrieval(annotator="keyword", goal="keydoor", offline=True, synchronous=True)
    online = ONIRetrieval(annotator="keyword", goal="keydoor", synchronous=True)
    batch = _batch(texts)
    np.testing.assert_allclose(offline(batch), [0.4, 0.0, 0.4])
    np.testing.assert_allclose(online(batch), [0.0, 0.0, 0.0])
    assert online.worker.counters["enqueued"] == 3 and offline.worker.counters["labelled"] == 3
    online.update(batch)
    np.testing.assert_allclose(online(batch), [0.4, 0.0, 0.4])
    offline(batch)
    assert offline.worker.counters["labelled"] == 3
    with pytest.raises(ValueError, match="offline labelling is for oni_retrieval"):
        ONIRanking(annotator="keyword", goal="keydoor", offline=True)


@pytest.mark.parametrize("path", sorted(glob.glob("configs/oni/doorkey_*.yaml")))
def test_every_doorkey_config_trains_end_to_end(path: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Each benchmark arm loads, builds its reward beside the env's and trains a few updates."""
    from robo_reward.config import load_config
    from robo_reward.runner import TrainingRun

    cfg = load_config(path, ["env.n_envs=2", "budget.total_timesteps=256", "budget.checkpoint_every=256",
                             "agent.kwargs.n_steps=64", "agent.kwargs.batch_size=64", "agent.kwargs.n_epochs=1",
                             "eval.episodes=1", "eval.every=256", "logging.tensorboard=false"])
    run = TrainingRun(cfg, tmp_path / "run", seed=0, progress=False)
    run.setup()
    run.learn()
    assert cfg.reward.extrinsic_weight == (0.0 if "reward_free" in path else 10.0)
    arm = path.rsplit("_", 1)[-1].removesuffix(".yaml")
    oni = [t for t in getattr(run.reward, "terms", [run.reward]) if type(t).__name__.startswith("ONI")]
    if arm == "extrinsic":
        assert not oni
    else:
        (term,) = oni
        expected = {"classification": "ONIClassification", "ranking": "ONIRanking"}.get(arm, "ONIRetrieval")
        assert type(term).__name__ == expected and term.offline == (arm == "offline")
        assert sum(term.worker.counters[k] for k in ("enqueued", "labelled", "pairs_enqueued")) > 0
        assert term.worker.annotator.latency == (0.0 if arm == "offline" else 1.0)
    assert run.model.num_timesteps >= 256
    run.model.get_env().close()  # type: ignore[union-attr]
    if run.reward is not None and hasattr(run.reward, "close"):
        run.reward.close()
