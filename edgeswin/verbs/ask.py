"""What `rollback` and `relearn` share: a request to the running daemon through its control
socket (`service.control`), its answer printed, exit 0 when it says ok."""

from __future__ import annotations

import argparse
import sys

from .options import add_config


def add_asking(parser: argparse.ArgumentParser, timeout_s: float, waits_for: str) -> None:
    add_config(parser, "the running daemon's (for its state_dir)")
    parser.add_argument("--timeout", type=float, default=timeout_s,
                        help=f"seconds to wait for the daemon to answer{waits_for}")


def ask_daemon(args: argparse.Namespace, request: dict) -> int:
    from ..process.control import ask, state_dir_of
    answer = ask(state_dir_of(args.config), request, args.timeout)
    print(answer.get("message", answer), file=sys.stdout if answer.get("ok") else sys.stderr)
    return 0 if answer.get("ok") else 1
