"""`edgeswin run`: the daemon, once `prestart` found a rung that can serve."""

from __future__ import annotations

import argparse

from .options import add_config

HELP = "run the daemon"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config(parser)


def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..daemon import Daemon
    from ..prestart import check_rungs
    config = load_config(args.config)
    check_rungs(config, log_skipped=True)  # nothing can serve: ConfigError, exit 1
    return Daemon(config).run()
