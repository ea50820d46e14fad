"""The review page as a Flask application: the frames waiting, a decision per request, the
confusion matrix.

Flask (Pallets; Werkzeug underneath) because the page is a handful of routes, a template and a
form: it brings routing, Jinja's autoescaping, safe file sending and a test client, and runs on
Werkzeug's threaded server with nothing else to install. Every request is checked here: the
Host header (a page bound to loopback answers only to loopback names, so another site cannot
reach it by DNS rebinding), the access token when one is set, and a per-run form token on every
decision, sent in a header or a form field that another site's page cannot read (so a page
elsewhere cannot post decisions). Images are found by key in the examples folder, never by a
path from the request.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path

from flask import Flask, abort, jsonify, redirect, render_template, request, send_file, url_for

from .confusion import Answers
from .examples import Examples

PAGE = 24  # frames per page
COOKIE = "edgeswin_review"
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1", "[::1]"}
DISCARD = "__discard__"


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def guard(app: Flask, token: str | None, loopback_only: bool, csrf: str,
          command: str = "edgeswin review") -> None:
    """Every request's checks, the headers of every answer, and errors as JSON (`command`:
    what printed the token, for the message when it is missing)."""

    @app.before_request
    def guard():
        if loopback_only and _host_name(request.host) not in LOOPBACK_NAMES:
            abort(421, "this page answers only to 127.0.0.1 or localhost")
        if token is not None:
            offered = request.args.get("token")
            if offered is not None:
                if not _same(offered, token):
                    abort(401, "wrong token")
                # Into a cookie and out of the address bar (and of any Referer).
                response = redirect(url_for(request.endpoint or "page",
                                            **{k: v for k, v in request.args.items()
                                               if k != "token"}, **(request.view_args or {})))
                response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
                return response
            bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if not (_same(request.cookies.get(COOKIE), token) or _same(bearer, token)):
                abort(401, f"this page needs the token `{command}` printed: open the "
                      "address it printed, with ?token=")
        if request.method == "POST":
            origin = request.headers.get("Origin")
            if origin and origin.split("://", 1)[-1] != request.host:
                abort(403, "a decision from another site's page")
            if not (_same(request.headers.get("X-CSRF-Token"), csrf)
                    or _same(request.form.get("csrf"), csrf)):
                abort(403, "the page is out of date: reload it")
        return None

    @app.after_request
    def headers(response):
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; img-src 'self'; script-src 'self'; style-src 'self'; "
            "connect-src 'self'; form-action 'self'; frame-ancestors 'none'")
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(400)
    @app.errorhandler(401)
    @app.errorhandler(403)
    @app.errorhandler(404)
    @app.errorhandler(421)
    def refused(error):
        return jsonify(error=error.description), error.code


def make_app(examples: Examples, labels: tuple[str, ...], answers: Answers,
             token: str | None, loopback_only: bool) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024  # a decision is a few bytes
    csrf = secrets.token_urlsafe(24)
    guard(app, token, loopback_only, csrf)

    def state() -> dict:
        matrix = answers.matrix(examples.labelled)
        return {"counts": examples.counts(), "matrix": matrix,
                "matrix_html": render_template("matrix.html", matrix=matrix)}

    @app.get("/")
    def page():
        groups = examples.pending()
        group = request.args.get("label")
        if group not in groups:
            group = next(iter(groups), None)
        frames = groups.get(group, [])
        pages = max((len(frames) + PAGE - 1) // PAGE, 1)
        number = min(max(request.args.get("page", 1, type=int), 1), pages)
        return render_template(
            "review.html", groups={k: len(v) for k, v in groups.items()}, group=group,
            frames=frames[(number - 1) * PAGE:number * PAGE], number=number, pages=pages,
            labels=labels, csrf=csrf, discard=DISCARD, folder=examples.source,
            labelled=examples.labelled, counts=examples.counts(),
            matrix=answers.matrix(examples.labelled))

    @app.get("/image/<path:key>")
    def image(key: str):
        example = examples.find(key)
        if example is None:
            abort(404, "decided, or dropped by the device meanwhile")
        return send_file(example.image, max_age=0)  # the type from the suffix

    @app.post("/decide")
    def decide():
        data = request.get_json(silent=True) or request.form
        key, label = data.get("key"), data.get("label")
        if not isinstance(key, str) or not isinstance(label, str):
            abort(400, "send key and label")
        if label != DISCARD and label not in labels:
            abort(400, f"{label!r} is not a label of this review ({', '.join(labels)})")
        try:
            decision = examples.decide(key, None if label == DISCARD else label)
        except KeyError:
            abort(404, "this frame is no longer waiting: decided already, or dropped by the "
                  "device; reload")
        if not request.is_json:  # a plain form post: back to the page it came from
            return redirect(request.referrer or url_for("page"), code=303)
        now = state()
        return jsonify(key=decision.key, label=decision.chosen,
                       moved_to=str(Path(decision.target.parent.name) / decision.target.name),
                       counts=now["counts"], matrix=now["matrix"].as_dict(),
                       matrix_html=now["matrix_html"])

    @app.post("/undo")
    def undo():
        decision = examples.undo()
        if not request.is_json:
            return redirect(request.referrer or url_for("page"), code=303)
        return jsonify(undone=decision.key if decision else None)

    @app.get("/matrix")
    def matrix():
        return jsonify(answers.matrix(examples.labelled).as_dict())

    return app
