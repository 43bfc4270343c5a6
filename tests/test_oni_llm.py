"""The OpenAI-compatible LLM annotator against loopback servers the tests start: good, slow, failing, garbled."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import gymnasium as gym
import numpy as np
import pytest

from robo_reward.methods.oni import LLMAnnotator, ONIRetrieval
from robo_reward.methods.oni.annotator import GOALS
from robo_reward.methods.oni.models import encode
from robo_reward.protocol import TransitionBatch

SPACE = gym.spaces.Dict({"message": gym.spaces.Box(0, 255, (256,), np.uint8),
                         "message_count": gym.spaces.Box(0, 2**31 - 1, (1,), np.int32)})


class Server:
    """A chat-completions endpoint: FOO for messages with "kill", BAR otherwise; prefers the pair with "kill"."""

    def __init__(self, mode: str = "good", delay: float = 0.0) -> None:
        self.mode, self.delay, self.bodies = mode, delay, []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.bodies.append((self.path, body))
                if owner.delay:
                    time.sleep(owner.delay)
                if owner.mode == "fail":
                    self._send(500, b"internal error")
                    return
                prompt = body["messages"][0]["content"]
                if owner.mode == "garbled":
                    reply = "I am not sure."
                elif "Message 1:" in prompt:
                    first = prompt.split("Message 1:")[1].split("Message 2:")[0]
                    reply = "Thinking... Answer: 1" if "kill" in first else "Thinking... Answer: 2"
                else:
                    message = prompt.split("Here is a message the game printed:")[1]
                    reply = "Reasoning. FOO" if "kill" in message else "Reasoning. BAR"
                choice = {"message": {"role": "assistant", "content": reply}}
                self._send(200, json.dumps({"choices": [choice]}).encode())

            def _send(self, code: int, data: bytes) -> None:
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    mode, delay = getattr(request, "param", ("good", 0.0))
    s = Server(mode, delay)
    yield s
    s.close()


def batch(messages: list[str]) -> TransitionBatch:
    obs = {"message": encode(messages, 256), "message_count": np.ones((len(messages), 1), np.int32)}
    n = len(messages)
    return TransitionBatch(obs, np.zeros((n, 1)), obs, np.zeros(n), np.zeros(n, bool), np.zeros(n, bool))


def wait_for(condition, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_labels_and_ranks_with_goal_prompts(server: Server) -> None:
    llm = LLMAnnotator(base_url=server.url, model="tiny", fallback=None)
    assert llm.label(["You kill the newt!", "It's a wall."], "combat") == [1, 0]
    assert llm.rank([("You kill the newt!", "It's a wall."), ("It's a wall.", "You kill it!")], "gold") == [1, 2]
    path, body = server.bodies[0]
    assert path == "/v1/chat/completions" and body["model"] == "tiny" and body["temperature"] == 0.1
    prompts = [b["messages"][0]["content"] for _, b in server.bodies]
    assert GOALS["combat"] in prompts[0] and GOALS["gold"] in prompts[-1]
    assert llm.stats() == {"requests": 4.0, "failures": 0.0, "fallbacks": 0.0, "unparsed": 0.0}


@pytest.mark.parametrize("server", [("fail", 0.0)], indirect=True)
def test_failing_server_leaves_the_run_going_on_the_fallback(server: Server,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    reward = ONIRetrieval(annotator={"name": "llm", "base_url": server.url, "timeout": 5.0}, goal="combat")
    reward.bind(SPACE, gym.spaces.Discrete(2), 2)
    b = batch(["You kill the newt!", "It's a wall."])
    with caplog.at_level(logging.WARNING, logger="robo_reward.methods.oni.annotator"):
        reward(b)
        assert wait_for(lambda: len(reward.worker.labels) == 2)
        paid = reward(b)
    np.testing.assert_allclose(paid, [0.4, 0.0])  # the keyword stand-in's labels
    metrics = reward.update(b)
    assert metrics["annotator/annotator_fallbacks"] >= 1 and metrics["annotator/annotator_failures"] >= 1
    assert any("failed" in r.message and "fallback" in r.message for r in caplog.records)
    reward.close()


def test_unreachable_server_without_fallback_counts_errors_and_keeps_serving() -> None:
    reward = ONIRetrieval(annotator={"name": "llm", "base_url": "http://127.0.0.1:9/v1", "timeout": 1.0,
                                     "fallback": None})
    reward.bind(SPACE, gym.spaces.Discrete(2), 1)
    reward(batch(["You kill the newt!"]))
    assert wait_for(lambda: reward.worker.counters["errors"] >= 1)
    np.testing.assert_array_equal(reward(batch(["You kill the newt!"])), [0.0])
    assert reward.worker._thread is not None and reward.worker._thread.is_alive()
    reward.close()


@pytest.mark.parametrize("server", [("garbled", 0.0)], indirect=True)
def test_unparsable_replies_use_the_fallback_per_message(server: Server) -> None:
    llm = LLMAnnotator(base_url=server.url, fallback=None)
    assert llm.label(["You kill the newt!"], "combat") == [0] and llm.unparsed == 1
    from robo_reward.methods.oni import KeywordAnnotator

    llm = LLMAnnotator(base_url=server.url, fallback=KeywordAnnotator())
    assert llm.label(["You kill the newt!"], "combat") == [1]


@pytest.mark.parametrize("server", [("good", 1.0)], indirect=True)
def test_slow_server_never_blocks_stepping(server: Server) -> None:
    reward = ONIRetrieval(annotator={"name": "llm", "base_url": server.url, "timeout": 30.0}, goal="combat")
    reward.bind(SPACE, gym.spaces.Discrete(2), 2)
    b = batch(["You kill the newt!", "It's a wall."])
    unpaid, deadline = 0, time.time() + 30
    while reward(b).sum() == 0.0 and time.time() < deadline:
        unpaid += 1
    assert unpaid >= 20  # the RL loop kept stepping, paying 0, while the 1 s request was in flight
    assert wait_for(lambda: len(reward.worker.labels) == 2)
    np.testing.assert_allclose(reward(b), [0.4, 0.0])
    assert reward.update(b)["annotator/annotator_fallbacks"] == 0
    reward.close()


@pytest.mark.parametrize("server", [("good", 2.0)], indirect=True)
def test_server_slower_than_the_timeout_falls_back(server: Server) -> None:
    llm = LLMAnnotator(base_url=server.url, timeout=0.3)
    assert llm.label(["You kill the newt!"], "combat") == [1]
    assert llm.fallbacks == 1 and "timed out" in llm.last_error.lower()


def test_bad_client_settings_are_named() -> None:
    with pytest.raises(ValueError, match="base_url"):
        LLMAnnotator(base_url="localhost:8000")
    with pytest.raises(ValueError, match="unknown ONI goal"):
        LLMAnnotator().label(["x"], "win")
