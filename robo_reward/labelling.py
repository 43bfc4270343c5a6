"""``robo-reward label RUN_OR_DATASET``: a local web page on which a person ranks three rollout videos.

The page (served on 127.0.0.1 only, never another interface) shows three rollouts of a rollout dataset side by
side as looping videos. Clicking the videos in order of preference (best first) ranks them; "Submit" records the
ranking, "All equal" records a tie, and the next triplet appears. Each ranking goes into a
:class:`~robo_reward.preferences.PreferenceStore` as a :class:`~robo_reward.preferences.RankedTriplet` (three
ordered pairs of rollout indices, ``labeller: human``), the same JSON-lines store the simulated oracle writes, so
a preference-trained reward (RAPL's ``robo-reward rapl`` with ``preferences:``) learns from either.

A rollout dataset is an ``.npz`` holding ``frames`` (N, T, H, W, 3) uint8; a folder is searched for
``rollouts*.npz`` (what ``robo-reward rapl`` writes).
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from robo_reward.errors import UserError
from robo_reward.preferences import PreferenceStore, RankedTriplet, append_triplets, load_triplets

LOOPBACK = "127.0.0.1"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>robo-reward: rank rollouts</title>
<style>
body { font-family: sans-serif; margin: 24px; }
.row { display: flex; gap: 24px; }
.card { border: 3px solid #ccc; padding: 8px; cursor: pointer; text-align: center; }
.card.ranked { border-color: #2a6; }
.card img { width: 256px; height: 256px; image-rendering: pixelated; display: block; }
.rank { font-size: 22px; height: 30px; }
button { font-size: 16px; margin: 12px 8px 0 0; }
</style></head>
<body>
<h2>Click the rollouts from best to worst, then submit</h2>
<div class="row" id="cards"></div>
<div><button id="submit" disabled>Submit ranking</button><button id="equal">All equal</button>
<button id="reset">Reset</button></div>
<p id="status">loading...</p>
<script>
let current = null, order = [];
const names = ["1st (best)", "2nd", "3rd (worst)"];
function draw() {
  const cards = document.getElementById("cards");
  cards.innerHTML = "";
  current.items.forEach((item, k) => {
    const card = document.createElement("div");
    card.className = "card" + (order.includes(item) ? " ranked" : "");
    card.id = "card-" + k;
    card.dataset.item = item;
    const pos = order.indexOf(item);
    card.innerHTML = '<img src="/video/' + item + '.gif" alt="rollout ' + item + '">' +
      '<div class="rank" id="rank-' + k + '">' + (pos >= 0 ? names[pos] : "") + '</div>';
    card.onclick = () => { if (!order.includes(item)) { order.push(item); draw(); } };
    cards.appendChild(card);
  });
  document.getElementById("submit").disabled = order.length !== 3;
}
async function next() {
  current = await (await fetch("/api/triplet")).json();
  order = [];
  draw();
  document.getElementById("status").textContent = current.count + " triplets recorded";
}
async function send(equal) {
  const body = {items: current.items, ranking: equal ? current.items : order, equal: equal};
  const res = await (await fetch("/api/rank", {method: "POST", body: JSON.stringify(body)})).json();
  if (!res.ok) { document.getElementById("status").textContent = "error: " + res.error; return; }
  await next();
}
document.getElementById("submit").onclick = () => send(false);
document.getElementById("equal").onclick = () => send(true);
document.getElementById("reset").onclick = () => { order = []; draw(); };
next();
</script></body></html>
"""


def find_dataset(run_or_dataset: str | Path) -> Path:
    """The rollout dataset a path names: an ``.npz`` file, or the first ``rollouts*.npz`` in a folder."""
    path = Path(run_or_dataset)
    if path.is_dir():
        found = sorted(path.glob("rollouts*.npz"))
        if not found:
            raise UserError(f"{path} holds no rollouts*.npz; give a rollout dataset (.npz with 'frames') or the "
                            "output folder of `robo-reward rapl`")
        return found[0]
    if not path.is_file():
        raise UserError(f"{path} does not exist; give a rollout dataset (.npz) or a folder holding one")
    return path


def read_frames(path: Path) -> np.ndarray:
    """The (N, T, H, W, 3) uint8 ``frames`` of a rollout dataset."""
    try:
        with np.load(path) as f:
            frames = f["frames"] if "frames" in f.files else None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable .npz rollout dataset ({exc})") from None
    if frames is None or frames.ndim != 5 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) < 3:
        raise UserError(f"{path} needs 'frames' of shape (N >= 3, T, H, W, 3) uint8 to label")
    return frames


class LabelSession:
    """Triplets to show, videos to serve and the store rankings go to (the web handler's state).

    :param frames: (N, T, H, W, 3) rollouts.
    :param store: where rankings are appended.
    :param dataset: recorded in each triplet's meta.
    :param seed: seeds which triplets are shown.
    :param scale: each video frame is enlarged this many times.
    """

    def __init__(self, frames: np.ndarray, store: PreferenceStore, *, dataset: str = "", seed: int = 0,
                 scale: int = 4) -> None:
        self.frames, self.store, self.dataset, self.scale = frames, store, dataset, scale
        self.rng = np.random.default_rng(seed)
        self.lock = threading.Lock()
        self._gifs: dict[int, bytes] = {}

    def next_triplet(self) -> dict[str, Any]:
        items = [int(i) for i in self.rng.choice(len(self.frames), 3, replace=False)]
        return {"items": items, "count": len(load_triplets(self.store))}

    def video(self, item: int) -> bytes:
        if item not in self._gifs:
            import imageio.v3 as iio

            video = np.kron(self.frames[item], np.ones((1, self.scale, self.scale, 1), np.uint8))
            self._gifs[item] = iio.imwrite("<bytes>", video, extension=".gif", duration=100, loop=0)
        return self._gifs[item]

    def record(self, body: dict[str, Any]) -> int:
        """Append one ranking (``items``, ``ranking`` best first, ``equal``); returns the triplets stored."""
        items, ranking, equal = body.get("items"), body.get("ranking"), bool(body.get("equal", False))
        if not isinstance(items, list) or not isinstance(ranking, list) or sorted(items) != sorted(ranking) \
                or len(ranking) != 3:
            raise ValueError("a ranking must order the three shown items")
        if not all(isinstance(i, int) and 0 <= i < len(self.frames) for i in ranking):
            raise ValueError(f"items must be rollout indices below {len(self.frames)}")
        triplet = RankedTriplet((ranking[0], ranking[1], ranking[2]), equal,
                                {"labeller": "human", "dataset": self.dataset})
        with self.lock:
            append_triplets(self.store, [triplet], prefix="h")
            return len(load_triplets(self.store))


def make_server(session: LabelSession, port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server for ``session`` bound to 127.0.0.1 (``port`` 0 picks a free one)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, data: dict[str, Any], status: int = HTTPStatus.OK) -> None:
            self._send(status, json.dumps(data).encode(), "application/json")

        def do_GET(self) -> None:
            if self.path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, PAGE.encode(), "text/html; charset=utf-8")
            elif self.path == "/api/triplet":
                self._json(session.next_triplet())
            elif self.path.startswith("/video/") and self.path.endswith(".gif"):
                try:
                    item = int(self.path[len("/video/"):-len(".gif")])
                    if not 0 <= item < len(session.frames):
                        raise ValueError
                except ValueError:
                    self._send(HTTPStatus.NOT_FOUND, b"no such rollout", "text/plain")
                    return
                self._send(HTTPStatus.OK, session.video(item), "image/gif")
            else:
                self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")

        def do_POST(self) -> None:
            if self.path != "/api/rank":
                self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                count = session.record(body)
            except (ValueError, TypeError) as exc:
                self._json({"ok": False, "error": str(exc)}, HTTPStatus.BAD_REQUEST)
                return
            self._json({"ok": True, "count": count})

    return ThreadingHTTPServer((LOOPBACK, port), Handler)


def serve(run_or_dataset: str | Path, *, store: str | Path | None = None, port: int = 8765, seed: int = 0) -> None:
    """Serve the labelling page until interrupted (Ctrl-C)."""
    dataset = find_dataset(run_or_dataset)
    frames = read_frames(dataset)
    target = PreferenceStore(store if store is not None else dataset.parent / "prefs" / "human.jsonl")
    session = LabelSession(frames, target, dataset=str(dataset), seed=seed)
    server = make_server(session, port)
    print(f"labelling {len(frames)} rollouts of {dataset} at http://{LOOPBACK}:{server.server_address[1]}/ "
          f"(rankings go to {target.path}); Ctrl-C stops", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()

