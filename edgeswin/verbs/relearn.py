"""`edgeswin relearn`: the running daemon forgets what cameras' health learned."""

from __future__ import annotations

import argparse

from .ask import add_asking, ask_daemon

HELP = ("ask the running daemon to forget what cameras' health learned (normal, reference "
        "view, drift baseline) and learn it again from now: after a camera was moved or its "
        "scene changed on purpose")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cameras", nargs="*", help="camera names (default: every camera)")
    add_asking(parser, 30.0, "")


def run(args: argparse.Namespace) -> int:
    return ask_daemon(args, {"command": "relearn", "cameras": args.cameras or None})
