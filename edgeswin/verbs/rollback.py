"""`edgeswin rollback`: the running daemon serves a rung's previous model again."""

from __future__ import annotations

import argparse

from .ask import add_asking, ask_daemon

HELP = "ask the running daemon to serve a rung's previous model again (after a model rollout)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rung", type=int, help="the rung (default: the one of the latest "
                        "rollout, else 0)")
    add_asking(parser, 600.0, " (opening a model)")


def run(args: argparse.Namespace) -> int:
    request: dict = {"command": "rollback"}
    if args.rung is not None:
        request["rung"] = args.rung
    return ask_daemon(args, request)
