"""`edgeswin watch --web`: the board as a page, served beside the broker, never in the daemon.

Flask, as `edgeswin review` is served, with the same guard (`review.app.guard`): loopback
only unless a token is set, the Host header checked, a strict Content-Security-Policy (scripts
and styles from this server only: no payload can run as code). Routes: `/` the page,
`/api/board` what `Board.snapshot` hands on, `/picture?device=ROOT&unit=CAM[/REGION|/health]`
a camera's newest JPEG. The page reads `/api/board` every `--every` seconds while it is open;
the devices are read through the broker, so an open page costs a device nothing.

The plots are drawn by uPlot (MIT, `static/uPlot.*`, shipped with the package: nothing is
fetched at run time).
"""

from __future__ import annotations

import secrets
import threading
import time

from flask import Flask, Response, abort, jsonify, render_template, request

from ..review.app import guard
from .board import Board


def make_app(board: Board, lock: threading.Lock, token: str | None, loopback_only: bool,
             stale_after_s: float, every_s: float) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 1024  # nothing is posted
    guard(app, token, loopback_only, secrets.token_urlsafe(24), "edgeswin watch --web")

    @app.get("/")
    def page():
        return render_template("board.html", every_ms=int(every_s * 1000))

    @app.get("/api/board")
    def board_state():
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
