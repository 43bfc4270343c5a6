"""Annotators: who judges NetHack messages for ONI (Zheng et al., arXiv 2410.23022).

An annotator does two things, both conditioned on a goal: label a batch of messages as progress (1, the paper's
"FOO") or not (0, "BAR"), and rank pairs of messages (1: the first is better, 2: the second, None: a tie).

* :class:`KeywordAnnotator` is the deterministic stand-in for the LLM: fixed keyword rules per goal and fixed
  keyword priorities for ranking, with an optional artificial ``latency`` per batch (reconstruction: the spec's
  small-scale build, so tests and CPU benchmarks run without model weights).
* :class:`LLMAnnotator` asks an OpenAI-compatible chat-completions server (the paper serves
  Llama-3.1-8B-Instruct through FastChat at temperature 0.1) with goal-specific prompts. When the server fails
  (connection refused, HTTP error, timeout, malformed reply) it answers that batch with its fallback annotator
  (the keyword stand-in by default), counts the fallback and logs a warning, so training never stops on it.

The paper's exact prompt wording is not published in a settled form; :data:`GOALS` and the templates below are
written for this package from the paper's description (a NetHack primer, the goal, the message, an answer
keyword at the end).
"""

from __future__ import annotations

import abc
import json
import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)

GOALS: dict[str, str] = {
    "defaultgoal": "make progress in the game: explore the dungeon, find and use items, defeat monsters, gain "
                   "experience and descend deeper",
    "combat": "fight well: hit and kill monsters and gain experience levels",
    "gold": "collect as much gold as possible",
    "stairs": "find the staircase down and descend: explore rooms and corridors, open doors and discover passages",
    "keydoor": "leave the room: pick up the key, unlock the locked door with it and reach the goal square beyond",
}
"""Goal name -> the goal as the prompts state it (the paper's goal-specific prompts: default, combat, gold, stairs;
``keydoor`` is the DoorKey grid world's, :mod:`robo_reward.envs.textgrid`)."""

_PRIMER = ("You are helping an agent play NetHack, a roguelike game in which the player explores a dungeon of "
           "many levels, fights monsters, collects items and gold, and tries to descend as deep as possible. "
           "The game reports events through short text messages.")

LABEL_PROMPT = (_PRIMER + "\n\nThe agent's goal is to {goal}.\n\nHere is a message the game printed:\n"
                "\"{message}\"\n\nDoes this message show that the agent is making progress towards its goal? "
                "Think briefly, then finish your answer with FOO if it does and with BAR if it does not.")
"""Labelling prompt; the reply's last FOO/BAR is the label (1/0)."""

RANK_PROMPT = (_PRIMER + "\n\nThe agent's goal is to {goal}.\n\nMessage 1: \"{first}\"\nMessage 2: \"{second}\"\n\n"
               "Which message shows more progress towards the goal? Think briefly, then end with a line "
               "\"Answer: 1\", \"Answer: 2\" or \"Answer: None\" if neither is better.")
"""Ranking prompt; the reply's last ``Answer: 1|2|None`` is the preference."""


def check_goal(goal: str) -> str:
    if goal not in GOALS:
        raise ValueError(f"unknown ONI goal {goal!r}; choose one of {sorted(GOALS)}")
    return goal


class Annotator(abc.ABC):
    """Labels messages and ranks message pairs for a goal. Subclasses implement :meth:`label` and :meth:`rank`."""

    @abc.abstractmethod
    def label(self, messages: Sequence[str], goal: str) -> list[int]:
        """1 (progress towards ``goal``) or 0 for each message."""

    @abc.abstractmethod
    def rank(self, pairs: Sequence[tuple[str, str]], goal: str) -> list[int | None]:
        """1 if the first message of a pair shows more progress, 2 if the second, None for a tie."""

    def stats(self) -> dict[str, float]:
        """Counters to log (fallbacks, failures)."""
        return {}


# Keyword rules of the stand-in: a message matching a "no" pattern is 0; otherwise the highest priority of the
# "yes" patterns it matches is its score (label 1 when > 0). Patterns are lower-case substrings.
_NO = ("you can't", "you cannot", "it's a wall", "solid stone", "unknown command", "never mind", "what do you want",
       "in what direction", "strange direction", "really attack", "blocks your path", "is in the way",
       "you kick at empty space", "ouch", "you are hit", "bites!", "hits!", "you die", "you feel weak")
KEYWORDS: dict[str, dict[str, int]] = {
    "defaultgoal": {"welcome to experience level": 4, "you kill": 3, "you destroy": 3, "staircase": 3,
                    "you find a hidden": 2, "gold piece": 2, "you see here": 1, "you hit": 1, "door opens": 1,
                    "you open": 1, "delicious": 1, "you feel": 1, "there is": 1, "you hear": 1, "fountain": 1},
    "combat": {"welcome to experience level": 4, "you kill": 3, "you destroy": 3, "you hit": 2, "you bite": 2,
               "you kick the": 1, "you miss": 1},
    "gold": {"gold piece": 3, "gold": 2, "you see here": 1},
    "stairs": {"staircase down": 4, "staircase": 3, "you find a hidden": 2, "door opens": 2, "you open": 1,
               "wham": 1, "this door": 1, "you see here": 1, "doorway": 1},
    "keydoor": {"you reach the goal": 4, "you unlock": 3, "door opens": 2, "you pick up the": 1},
}
"""Goal -> {keyword: priority} of the deterministic stand-in (reconstruction)."""


class KeywordAnnotator(Annotator):
    """The deterministic keyword stand-in for the LLM (see :data:`KEYWORDS`), with artificial latency.

    :param latency: seconds each :meth:`label` / :meth:`rank` call sleeps (a slow LLM, for non-blocking tests).
    :param keywords: goal -> {keyword: priority} replacing :data:`KEYWORDS` (lower-case substrings).
    :param negatives: patterns that make a message 0 whatever else it matches.
    """

    def __init__(self, *, latency: float = 0.0, keywords: Mapping[str, Mapping[str, int]] | None = None,
                 negatives: Sequence[str] | None = None) -> None:
        if latency < 0:
            raise ValueError(f"latency must be >= 0 seconds, got {latency}")
        self.latency = float(latency)
        self.keywords = {g: {k.lower(): int(p) for k, p in kw.items()} for g, kw in (keywords or KEYWORDS).items()}
        self.negatives = tuple(n.lower() for n in (_NO if negatives is None else negatives))

    def score(self, message: str, goal: str) -> int:
        """The message's priority for ``goal`` (0: no progress)."""
        if goal not in self.keywords:
            raise ValueError(f"keyword annotator has no rules for goal {goal!r}; it has {sorted(self.keywords)}")
        text = message.lower()
        if any(n in text for n in self.negatives):
            return 0
        return max((p for k, p in self.keywords[goal].items() if k in text), default=0)

    def label(self, messages: Sequence[str], goal: str) -> list[int]:
        if self.latency:
            time.sleep(self.latency)
        return [int(self.score(m, goal) > 0) for m in messages]

    def rank(self, pairs: Sequence[tuple[str, str]], goal: str) -> list[int | None]:
        if self.latency:
            time.sleep(self.latency)
        out: list[int | None] = []
        for first, second in pairs:
            a, b = self.score(first, goal), self.score(second, goal)
            out.append(None if a == b else (1 if a > b else 2))
        return out


class LLMError(RuntimeError):
    """The LLM server failed or answered something that cannot be parsed."""


class LLMAnnotator(Annotator):
    """Annotates through an OpenAI-compatible ``/chat/completions`` endpoint, falling back when it fails.

    :param base_url: server root including the API prefix, e.g. ``http://localhost:8000/v1`` (FastChat, vLLM).
    :param model: model name the server serves.
    :param temperature: sampling temperature (the paper: 0.1).
    :param timeout: seconds per HTTP request before it counts as failed.
    :param max_tokens: reply length limit.
    :param concurrency: requests in flight at once (one per message or pair).
    :param api_key: sent as a bearer token when given.
    :param fallback: annotator for a batch the server fails on (default: the keyword stand-in); ``None`` re-raises.
    """

    def __init__(self, *, base_url: str = "http://localhost:8000/v1", model: str = "Meta-Llama-3.1-8B-Instruct",
                 temperature: float = 0.1, timeout: float = 60.0, max_tokens: int = 256, concurrency: int = 8,
                 api_key: str | None = None, fallback: Annotator | str | None = "keyword") -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if timeout <= 0 or concurrency < 1:
            raise ValueError(f"timeout must be > 0 and concurrency >= 1, got {timeout} and {concurrency}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.temperature, self.timeout = model, float(temperature), float(timeout)
        self.max_tokens, self.concurrency, self.api_key = int(max_tokens), int(concurrency), api_key
        if fallback is not None and not isinstance(fallback, Annotator) and fallback != "keyword":
            raise TypeError(f"fallback must be an Annotator, 'keyword' or None, got {fallback!r}")
        self.fallback: Annotator | None = KeywordAnnotator() if isinstance(fallback, str) else fallback
        self.requests = self.failures = self.fallbacks = self.unparsed = 0
        self.last_error = ""

    def _chat(self, prompt: str) -> str:
        body = json.dumps({"model": self.model, "temperature": self.temperature, "max_tokens": self.max_tokens,
                           "messages": [{"role": "user", "content": prompt}]}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        self.requests += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = json.loads(response.read().decode())
            return str(payload["choices"][0]["message"]["content"])
        except (urllib.error.URLError, TimeoutError, OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise LLMError(f"{type(exc).__name__}: {exc}") from exc

    def _ask(self, prompts: list[str]) -> list[str]:
        with ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, len(prompts)))) as pool:
            return list(pool.map(self._chat, prompts))

    def _fail(self, exc: Exception) -> None:
        self.failures += 1
        self.last_error = str(exc)
        if self.fallback is None:
            raise exc
        self.fallbacks += 1
        log.warning("LLM annotator at %s failed (%s); this batch uses the fallback %s", self.url, exc,
                    type(self.fallback).__name__)

    def label(self, messages: Sequence[str], goal: str) -> list[int]:
        text = GOALS[check_goal(goal)]
        try:
            replies = self._ask([LABEL_PROMPT.format(goal=text, message=m) for m in messages])
        except LLMError as exc:
            self._fail(exc)
            return self.fallback.label(messages, goal)  # type: ignore[union-attr]
        out = []
        for message, reply in zip(messages, replies, strict=True):
            found = re.findall(r"\b(FOO|BAR)\b", reply)
            if not found:
                self.unparsed += 1
                out.append(self.fallback.label([message], goal)[0] if self.fallback else 0)
            else:
                out.append(int(found[-1] == "FOO"))
        return out

    def rank(self, pairs: Sequence[tuple[str, str]], goal: str) -> list[int | None]:
        text = GOALS[check_goal(goal)]
        try:
            replies = self._ask([RANK_PROMPT.format(goal=text, first=a, second=b) for a, b in pairs])
        except LLMError as exc:
            self._fail(exc)
            return self.fallback.rank(pairs, goal)  # type: ignore[union-attr]
        out: list[int | None] = []
        for pair, reply in zip(pairs, replies, strict=True):
            found = re.findall(r"Answer:\s*(1|2|None)", reply)
            if not found:
                self.unparsed += 1
                out.append(self.fallback.rank([pair], goal)[0] if self.fallback else None)
            else:
                out.append(None if found[-1] == "None" else int(found[-1]))
        return out

    def stats(self) -> dict[str, float]:
        return {"requests": float(self.requests), "failures": float(self.failures),
                "fallbacks": float(self.fallbacks), "unparsed": float(self.unparsed)}


def build_annotator(spec: Annotator | str | Mapping[str, Any]) -> Annotator:
    """An annotator from an instance, ``"keyword"`` / ``"llm"``, or ``{"name": ..., **kwargs}``.

    For ``llm`` the fallback is the keyword stand-in unless ``fallback: null`` (fail loudly) or another spec.
    """
    if isinstance(spec, Annotator):
        return spec
    kwargs: dict[str, Any] = {} if isinstance(spec, str) else dict(spec)
    name = spec if isinstance(spec, str) else kwargs.pop("name", None)
    if name == "keyword":
        return KeywordAnnotator(**kwargs)
    if name == "llm":
        fallback = kwargs.pop("fallback", "keyword")
        return LLMAnnotator(fallback=None if fallback is None else build_annotator(fallback), **kwargs)
    raise ValueError(f"unknown annotator {name!r}; use 'keyword' (deterministic stand-in) or 'llm' "
                     "(OpenAI-compatible server), e.g. {name: keyword, latency: 0.0}")
