"""Options more than one verb takes, declared once: `-c/--config`."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_CONFIG = Path("/etc/edgeswin")


def add_config(parser: argparse.ArgumentParser, reads: str = "",
               default: Path | None = DEFAULT_CONFIG) -> None:
    """-c/--config: a config directory (edgeswin.yaml + cameras/*.yaml); `reads`: what this
    verb takes from it, where that is not the whole config; `default` None: optional."""
    text = "config directory: edgeswin.yaml + cameras/*.yaml"
    if reads:
        text += f"; {reads}"
    if default is not None:
        text += f" (default: {default})"
    parser.add_argument("-c", "--config", type=Path, default=default, help=text)
