"""`edgeswin fallback-sim`: a sensor trace replayed through the fallback levers."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import add_config

HELP = "replay a sensor trace through the fallback levers (fps, rung, dla, power_mode)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trace", required=True, type=Path,
                        help="CSV: t, latency_p95_ms, one column per thermal zone (C), one per "
                             "power rail in watts named <rail>_w")
    add_config(parser, "take the fallback settings from it", default=None)
    parser.add_argument("--rungs", type=int, default=2, help="ladder length without -c")


def run(args: argparse.Namespace) -> int:
    from ..classify.schedule import settings_adjustable
    from ..config import FallbackConfig, dla_twins, load_config
    from ..errors import EdgeswinError
    from ..tools.probe import simulate

    options: dict = {}
    if args.config:
        config = load_config(args.config)
        device = config.device
        cfg, rungs = device.fallback, len(device.engines)
        adjustable = settings_adjustable(unit for e in config.cameras if e.config.enabled
                                         for unit in e.config.units())
        options = {"fps_steps": cfg.fps_steps if adjustable else 0,
                   "twins": dla_twins(device.engines), "total_rails": device.power.total_rails}
    else:
        cfg, rungs = FallbackConfig(), args.rungs
    try:
        print("\n".join(simulate(args.trace, cfg, rungs, **options)))
    except (OSError, ValueError, KeyError) as exc:
        raise EdgeswinError(f"cannot replay {args.trace}: {exc}") from None
    return 0
