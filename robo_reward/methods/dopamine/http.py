"""The released GRM (or any VLM) behind an OpenAI-compatible chat endpoint (e.g. vLLM), as a ProgressModel.

Each hop query is one chat request holding the task and the 8 images of the paper's prompt (REFERENCE START,
REFERENCE END, BEFORE views, AFTER views) as PNG data URLs; the answer's ``<score>+NN%</score>`` is clipped to
[-100, 100] and divided by 100. A batch's requests run concurrently on a thread pool, so a vector step costs
one round of requests. Nothing here runs in the tests against a real model: a test drives the request and parse
path against a loopback server that returns recorded answers.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np

from robo_reward.methods.dopamine.progress import ProgressModel

SCORE = re.compile(r"<score>\s*([+-]?\d+(?:\.\d+)?)\s*%?\s*</score>")

PROMPT = (
    "Task: {task}. The first image is the REFERENCE START and the second the REFERENCE END (goal) of the task. "
    "Then come the BEFORE state ({views}) and the AFTER state ({views}). How much progress (positive) or regress "
    "(negative) toward the goal does AFTER show relative to BEFORE, as a percentage of the remaining (or achieved) "
    "progress? Answer with <score>+NN%</score> or <score>-NN%</score>."
)


def parse_score(text: str) -> float:
    """The hop in [-1, 1] from a GRM answer; an answer without a score raises, naming the text."""
    match = SCORE.search(text)
    if match is None:
        raise ValueError(f"GRM answer has no <score>+-NN%</score>: {text[:200]!r}")
    return float(np.clip(float(match.group(1)), -100.0, 100.0)) / 100.0


def png_data_url(image: np.ndarray) -> str:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(image, dtype=np.uint8), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"could not PNG-encode an image of shape {image.shape}")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode()


class HttpGRM(ProgressModel):
    """Hop queries to an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    :param url: base URL (``http://127.0.0.1:8000/v1``). :param model: the served model name.
    :param task: the task instruction in the prompt. :param api_key: sent as a bearer token if given.
    :param workers: concurrent requests. :param timeout: seconds per request.
    """

    def __init__(self, *, url: str, model: str = "GRM", task: str = "complete the task",
                 cameras: Sequence[str] = ("front", "wrist"), anchor_camera: str = "front",
                 api_key: str | None = None, workers: int = 8, timeout: float = 60.0,
                 max_tokens: int = 32) -> None:
        super().__init__(cameras, anchor_camera)
        self.url = url.rstrip("/") + "/chat/completions"
        self.model_name, self.task, self.api_key = model, task, api_key
        self.workers, self.timeout, self.max_tokens = workers, timeout, max_tokens

    def request_body(self, start: np.ndarray, goal: np.ndarray, before: np.ndarray, after: np.ndarray) -> dict:
        """The chat request for one query (images as (H, W, 3) uint8; ``before``/``after`` as (V, H, W, 3))."""
        views = ", ".join(self.cameras)
        content: list[dict[str, Any]] = [{"type": "text", "text": PROMPT.format(task=self.task, views=views)}]
        for image in (start, goal, *before, *after):
            content.append({"type": "image_url", "image_url": {"url": png_data_url(image)}})
        return {"model": self.model_name, "messages": [{"role": "user", "content": content}],
                "max_tokens": self.max_tokens, "temperature": 0.0}

    def _post(self, body: dict) -> float:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            answer = json.loads(resp.read())
        try:
            text = answer["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise ValueError(f"unexpected response from {self.url}: {str(answer)[:200]}") from exc
        return parse_score(text)

    def hop(self, start: np.ndarray, goal: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        n = len(after)
        start = np.broadcast_to(start, (n, *start.shape[1:]))
        goal = np.broadcast_to(goal, (n, *goal.shape[1:]))
        bodies = [self.request_body(start[i], goal[i], before[i], after[i]) for i in range(n)]
        with ThreadPoolExecutor(max_workers=min(self.workers, n)) as pool:
            return np.fromiter(pool.map(self._post, bodies), dtype=np.float64, count=n)
