"""`edgeswin demo`: the daemon on the bundled demo config, videos generated where missing."""

from __future__ import annotations

import argparse

from .options import add_config

HELP = "run the daemon on the bundled demo assets"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config(parser, "its cameras' missing videos are generated where they point (default: "
                       "the bundled configs/demo, found from the package)", default=None)
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="length of generated videos")
    parser.add_argument("--prepare", action="store_true", help="only make the missing videos "
                        "and check the config, then exit (what `make check` needs)")


def run(args: argparse.Namespace) -> int:
    from ..demo.live import run_demo
    return run_demo(args.config, args.seconds, args.prepare)
