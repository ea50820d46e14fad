"""`edgeswin watch --web`: the board as a page, served beside the broker, never in the daemon.

Flask, as `edgeswin review` is served, with the same guard (`review.app.guard`): loopback
only unless a token is set, the Host header checked, a strict Content-Security-Policy (scripts
and styles from this server only: no payload can run as code). Routes: `/` the page,
`/api/board` what `Board.snapshot` hands on, `/picture?device=ROOT&unit=CAM[/REGION|/health]`
a camera's newest JPEG. The page reads `/api/board` every `--every` seconds while it is open;
the devices are read through the broker. While a page is open the server asks each device for
live pictures (`<root>/watching` every few seconds: `Snapshots.watched` on the device sends a
picture per camera every `snapshots.live_every_s`); a closed page stops them within 20 s.

The plots are drawn by uPlot (MIT, `static/uPlot.*`, shipped with the package: nothing is
fetched at run time).
"""

from __future__ import annotations

import json
import secrets
import threading
import time

from flask import Flask, Response, abort, jsonify, render_template, request

from ..review.app import guard
from ..topics import at
from .board import Board

ASK_EVERY_S = 3.0  # how often an open page's server asks the devices for live pictures
ASK_FOR_S = 10.0  # how long each ask holds: a closed page stops them within this


class Viewers:
    """Whether a page is open: when `/api/board` was last read."""

    def __init__(self):
        self.last = float("-inf")

    def open(self, now: float, within_s: float) -> bool:
        return now - self.last < within_s


def ask_for_pictures(board: Board, lock: threading.Lock, viewers: Viewers, send,
                     stop: threading.Event, every_s: float = ASK_EVERY_S) -> None:
    """While a page is open, ask every device seen for live pictures (`<root>/watching`,
    holding `ASK_FOR_S`); when none is, ask nothing, and the devices stop within that time."""
    while not stop.wait(every_s):
        if viewers.open(time.monotonic(), ASK_FOR_S):
            with lock:
                roots = sorted(board.fleet.devices)
            for root in roots:
                send(at(root, "watching"), json.dumps({"for_s": ASK_FOR_S}).encode())


def make_app(board: Board, lock: threading.Lock, token: str | None, loopback_only: bool,
             stale_after_s: float, every_s: float, viewers: Viewers | None = None) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 1024  # nothing is posted
    guard(app, token, loopback_only, secrets.token_urlsafe(24), "edgeswin watch --web")

    @app.get("/")
    def page():
        return render_template("board.html", every_ms=int(every_s * 1000))

    @app.get("/api/board")
    def board_state():
        if viewers is not None:
            viewers.last = time.monotonic()
        with lock:
            return jsonify(board.snapshot(time.monotonic(), stale_after_s))

    @app.get("/picture")
    def picture():
        root, unit = request.args.get("device", ""), request.args.get("unit", "")
        with lock:
            jpeg = board.picture(root, unit)
        if jpeg is None:
            abort(404, "no picture")
        return Response(jpeg, mimetype="image/jpeg")

    return app
