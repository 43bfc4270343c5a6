"""KAGI's real-model proposers: the VLM prompt, strict parser and HTTP client (loopback server), the open_clip
zero-shot proposer from a tiny saved local checkpoint, and the JSON proposal cache."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import gymnasium as gym
import numpy as np
import pytest

import robo_reward  # noqa: F401
from robo_reward.methods.kagi import CachedProposer, KAGIReward, OracleProposer, ProposalError
from robo_reward.methods.kagi.vlm import (
    VLMProposer,
    build_prompt,
    candidate_points,
    height_rows,
    parse_answer,
)


@pytest.fixture(scope="module")
def scene():
    env = gym.make("robo_reward/PickPlace-v0")
    obs, _ = env.reset(seed=0)
    env.close()
    return KAGIReward().scene.build(obs)


GOOD = {"grasp": "P1", "target": "F6", "waypoints": [{"point": "P1", "height_cm": 8}, {"point": "P1", "height_cm": 2},
                                                    {"point": "P1", "height_cm": 10}, {"point": "F6", "height_cm": 10},
                                                    {"point": "F6", "height_cm": 4}]}


def test_prompt_marks_grid_candidates_and_height_lines(scene) -> None:
    messages, labels = build_prompt(scene, "pick up the red cube")
    content = messages[1]["content"]
    assert [c["type"] for c in content] == ["text", "image_url", "image_url"]
    assert all(c["image_url"]["url"].startswith("data:image/png;base64,") for c in content[1:])
    assert "pre_grasp, grasp, lift, over_target, place" in content[0]["text"]
    assert {"A1", "H8", "P1"} <= set(labels)
    cands = candidate_points(scene.views["top"].rgb)
    cube_uv = scene.views["top"].camera.project(np.asarray(scene.privileged["object_pos"])[None])[0][0]
    assert np.min(np.linalg.norm(cands - cube_uv, axis=1)) < 6, "a candidate must lie on the cube"
    rows = height_rows(scene)
    assert list(rows) == sorted(rows) and rows[0] > rows[20], "higher lines are higher up in the side image"


def test_parser_accepts_the_asked_for_json(scene) -> None:
    _, labels = build_prompt(scene, "x")
    proposal = parse_answer("```json\n" + json.dumps(GOOD) + "\n```", scene, labels)
    assert proposal.grasp == labels["P1"] and [w.height for w in proposal.waypoints] == [0.08, 0.02, 0.1, 0.1, 0.04]


@pytest.mark.parametrize(("answer", "message"), [
    ("", "empty"),
    ("Sure! grasp P1 then go to F6", "not one JSON object"),
    (json.dumps({**GOOD, "extra": 1}), "exactly the keys"),
    (json.dumps({**GOOD, "grasp": "Z99"}), "not a label"),
    (json.dumps({**GOOD, "waypoints": GOOD["waypoints"][:3]}), "list of 5"),
    (json.dumps({**GOOD, "waypoints": [*GOOD["waypoints"][:4], {"point": "F6", "height_cm": 5}]}), "height lines"),
    (json.dumps({**GOOD, "waypoints": [*GOOD["waypoints"][:4], {"point": "F6"}]}), "waypoint 4 must be"),
    (json.dumps([GOOD]), "exactly the keys"),
])
def test_parser_rejects_malformed_answers_with_a_clear_error(scene, answer: str, message: str) -> None:
    _, labels = build_prompt(scene, "x")
    with pytest.raises(ProposalError, match=message):
        parse_answer(answer, scene, labels)


class _Server:
    """An OpenAI-compatible chat-completions endpoint on 127.0.0.1 answering with a fixed text."""

    def __init__(self, answer: str) -> None:
        self.answer, self.requests = answer, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append((self.path, dict(self.headers), body))
                reply = json.dumps({"choices": [{"message": {"role": "assistant", "content": outer.answer}}]})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(reply.encode())

            def log_message(self, *args) -> None:
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_vlm_client_against_a_loopback_server(scene, monkeypatch) -> None:
    monkeypatch.setenv("KAGI_TEST_KEY", "secret-token")
    server = _Server(json.dumps(GOOD))
    try:
        vlm = VLMProposer(base_url=server.url, model="tiny-vlm", api_key_env="KAGI_TEST_KEY", timeout=10)
        proposal = vlm.propose(scene, "pick up the red cube")
        path, headers, body = server.requests[0]
        assert path == "/v1/chat/completions" and body["model"] == "tiny-vlm" and body["temperature"] == 0.0
        assert headers["Authorization"] == "Bearer secret-token"
        assert len(proposal.waypoints) == 5
        server.answer = "I cannot see a cube."
        with pytest.raises(ProposalError, match="not one JSON object"):
            vlm.propose(scene, "pick up the red cube")
    finally:
        server.close()
    with pytest.raises(ProposalError, match="no usable reply"):
        VLMProposer(base_url=server.url, model="m", timeout=2).propose(scene, "x")


def test_vlm_malformed_answer_falls_back_to_sparse_in_the_reward(scene) -> None:
    server = _Server('{"grasp": "P1"}')
    try:
        reward = KAGIReward(proposer={"name": "vlm", "base_url": server.url, "model": "m", "timeout": 10})
        env = gym.make("robo_reward/PickPlace-v0")
        reward.bind(env.observation_space, env.action_space, 1)
        obs, _ = env.reset(seed=0)
        reward.reset(obs[None], np.array([True]))
        assert reward.fallbacks == 1 and not reward._valid[0]
    finally:
        server.close()


def test_tiny_open_clip_proposer_from_a_saved_local_checkpoint(scene, tmp_path) -> None:
    import open_clip
    import torch

    from robo_reward.methods.kagi.clip import ClipProposer, save_local_checkpoint

    torch.manual_seed(0)
    cfg = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    folder = save_local_checkpoint(open_clip.CLIP(**cfg), cfg, tmp_path / "tiny_clip")
    proposer = ClipProposer(checkpoint=str(folder))
    cands, sim = proposer.similarities(scene, "pick up the red cube")
    assert sim.shape == (len(cands), 2) and np.all(np.abs(sim) <= 1 + 1e-6)
    proposal = proposer.propose(scene, "pick up the red cube")
    assert proposal.grasp == tuple(cands[np.argmax(sim[:, 0])]) and proposal.target != proposal.grasp
    assert proposal == ClipProposer(checkpoint=str(folder)).propose(scene, "pick up the red cube")
    with pytest.raises(FileNotFoundError, match=r"open_clip_config\.json"):
        ClipProposer(checkpoint=str(tmp_path / "missing"))


def test_json_cache_reproduces_proposals_without_the_inner_proposer(scene, tmp_path) -> None:
    path = tmp_path / "proposals.json"
    inner = OracleProposer(pixel_noise=3.0, wrong_prob=0.5, seed=4)
    first = CachedProposer(path, inner).propose(scene, "x")
    readonly = CachedProposer(path)
    assert readonly.propose(scene, "x") == first and readonly.hits == 1
    with pytest.raises(ProposalError, match="read-only"):
        readonly.propose(scene, "another instruction")
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        CachedProposer(path)
