"""`edgeswin check`: the config, and what each engine rung will serve (`prestart.report`)."""

from __future__ import annotations

import argparse

from .options import add_config

HELP = "validate a config directory; exit 1 on any error"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config(parser)


def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..prestart import report
    return report(load_config(args.config), args.config)
