"""`edgeswin watch`: connect, gather, print; the exit status for cron, CI and monitoring.

With `--once`: the retained topics come at once; then it waits for every online device's next
stats (at most `--timeout`), prints the fleet once and exits 1 when a device has a problem or
none answered. Without: the fleet redrawn every `--every` seconds (the screen cleared on a
terminal) until Ctrl-C. With `--web`: the same devices as a page (`web`, `board`).
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
import threading
import time

from ..errors import EdgeswinError
from ..verbs.options import add_config
from .fleet import Fleet
from .view import render

HELP = ("watch many devices through the broker: status, cameras, health, canary, stats; "
        "--once exits 1 when anything is wrong or silent")

SETTLE_S = 1.0  # retained messages arrive within this of subscribing


def run(args: argparse.Namespace) -> int:
    if args.web:
        return serve(args)
    from ..publish.listen import Listener, broker_settings  # paho: when watching, not --help
    try:
        fleet = Fleet(args.root)
    except ValueError as exc:
        raise EdgeswinError(str(exc)) from None
    lock = threading.Lock()

    def take(topic: str, payload: bytes, retained: bool) -> None:
        with lock:
            fleet.take(topic, payload, time.monotonic())

    listener = Listener(broker_settings(args), fleet.topic_filter, take)
    listener.start()
    started = time.monotonic()
    try:
        if args.once:
            while time.monotonic() - started < args.timeout:
                time.sleep(0.2)
                with lock:
                    online = [d for d in fleet.devices.values() if d.status == "online"]
                    heard = all(d.stats_at is not None for d in online)
                if time.monotonic() - started >= SETTLE_S and fleet.devices and heard:
                    break
            with lock:
                text, bad = render(fleet, time.monotonic(), args.stale_after)
            print(text)
            return 1 if bad else 0
        tty = sys.stdout.isatty()
        while True:
            with lock:
                text, _ = render(fleet, time.monotonic(), args.stale_after)
            print(("\x1b[H\x1b[2J" if tty else "") + text + ("" if tty else "\n"), flush=True)
            time.sleep(args.every)
    except KeyboardInterrupt:
        return 0
    finally:
        listener.stop()


def serve(args: argparse.Namespace) -> int:
    """`--web`: the board as a page until Ctrl-C or SIGTERM (`web`)."""
    from ..publish.listen import Listener, broker_settings
    from ..review.command import is_loopback, serve_until_stopped
    try:
        from werkzeug.serving import make_server

        from .web import Viewers, ask_for_pictures, make_app
    except ImportError:
        raise EdgeswinError("edgeswin watch --web needs Flask: pip install "
                            "'edgeswin[review]'") from None
    from .board import Board
    try:
        board = Board(args.root)
    except ValueError as exc:
        raise EdgeswinError(str(exc)) from None
    lock = threading.Lock()

    def take(topic: str, payload: bytes, retained: bool) -> None:
        with lock:
            board.take(topic, payload, time.monotonic())

    token = None if is_loopback(args.web_host) else (args.token or secrets.token_urlsafe(18))
    viewers = Viewers()
    app = make_app(board, lock, token, token is None, args.stale_after, args.every, viewers)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per poll
    try:
        server = make_server(args.web_host, args.web_port, app, threaded=True)
    except OSError as exc:
        raise EdgeswinError(f"cannot listen on {args.web_host}:{args.web_port}: "
                            f"{exc.strerror or exc} (another --web-port?)") from None
    listener = Listener(broker_settings(args), board.topic_filter, take)
    listener.start()
    asking = threading.Event()
    threading.Thread(target=ask_for_pictures, args=(board, lock, viewers, listener.publish,
                                                    asking), name="ask", daemon=True).start()
    host = f"[{args.web_host}]" if ":" in args.web_host else args.web_host
    print(f"open http://{host}:{server.server_port}/" + (f"?token={token}" if token else "")
          + "  (Ctrl-C to stop)", flush=True)

    try:
        serve_until_stopped(server)
    finally:
        asking.set()
        listener.stop()
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", help="broker host (default: the config's, else 127.0.0.1)")
    p.add_argument("--port", type=int, help="broker port (default: the config's, else 1883)")
    add_config(p, "take the broker settings (user, password, TLS) from its edgeswin.yaml",
               default=None)
    p.add_argument("--username", help="broker user name")
    p.add_argument("--password-file", help="file holding the broker password")
    p.add_argument("--root", default="edgeswin/+", help="the devices' topic roots, + for any "
                   "one level (default: edgeswin/+)")
    p.add_argument("--stale-after", type=float, default=90.0, help="seconds without stats "
                   "before a device counts as silent (default 90: three default intervals)")
    p.add_argument("--once", action="store_true", help="print once and exit: 1 when anything "
                   "is wrong or silent, 0 when all is well")
    p.add_argument("--timeout", type=float, default=35.0, help="with --once: how long to wait "
                   "for every online device's stats (default 35: longer than the default "
                   "stats interval)")
    p.add_argument("--every", type=float, default=2.0, help="seconds between redraws (with "
                   "--web: between the page's reads)")
    p.add_argument("--web", action="store_true", help="serve the board as a web page: a tile "
                   "per camera, each device's engine, canary, rollout and the last hours "
                   "plotted")
    p.add_argument("--web-host", default="127.0.0.1", help="with --web: the address to listen "
                   "on; any but loopback needs a token")
    p.add_argument("--web-port", type=int, default=8090, help="with --web: the port (0: any)")
    p.add_argument("--token", default=os.environ.get("EDGESWIN_WATCH_TOKEN"), help="with "
                   "--web off loopback: the access token (default: $EDGESWIN_WATCH_TOKEN, "
                   "else a new one, printed)")
