"""`edgeswin snapshot`: one frame of a camera with its regions and their labels drawn."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import add_config

HELP = ("grab one frame of a camera with its regions and their classification drawn (to "
        "place region boxes by looking)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config(parser)
    parser.add_argument("camera", help="the camera's name")
    parser.add_argument("-o", "--output", type=Path, default=Path("snapshot.jpg"),
                        help="where to write the JPEG (default: snapshot.jpg)")


def run(args: argparse.Namespace) -> int:
    from ..tools.probe import grab_snapshot
    print("\n".join(grab_snapshot(args.config, args.camera, args.output)))
    return 0
