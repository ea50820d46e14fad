"""Command line: `edgeswin VERB` (also `python -m edgeswin`): the verbs of `VERBS`, each a
module of its own; here only the parser they share and how an error becomes an exit status."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from . import __version__
from .errors import ConfigError, EdgeswinError
from .process import hangup
from .process.notify import setup_logging

log = logging.getLogger("edgeswin")
LOG_LEVELS = ["debug", "info", "warning", "error"]


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in the help, where there is one to show and the text does not give it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False) or "default" in text:
            return action.help
        return super()._get_help_string(action)


# Every verb, in the order `edgeswin --help` lists them, and its module: each has HELP,
# add_arguments(parser) and run(args) -> int (see verbs/__init__.py). A new verb is one
# module and one line here.
VERBS = {
    "run": "verbs.run",
    "check": "verbs.check",
    "demo": "verbs.demo",
    "rollback": "verbs.rollback",
    "relearn": "verbs.relearn",
    "watch": "watch.command",
    "fleet": "fleet.operator",
    "review": "review.command",
    "finetune": "toolchain.finetune_command",
    "fallback-sim": "verbs.fallback_sim",
    "eval": "verbs.eval",
    "export": "verbs.export",
    "quantize": "verbs.quantize",
    "build-engine": "verbs.build_engine",
    "bench": "verbs.bench",
    "snapshot": "verbs.snapshot",
    "probe": "verbs.probe",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeswin", description="Camera classification "
                                     "daemon: OpenCV capture -> Swin engine -> MQTT.",
                                     formatter_class=_Help)
    parser.add_argument("--version", action="version", version=f"edgeswin {__version__}")
    parser.add_argument("--log-level", default="info", choices=LOG_LEVELS,
                        help="before or after the verb")
    # The same option after the verb: SUPPRESS leaves the one before it alone when absent.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", default=argparse.SUPPRESS, choices=LOG_LEVELS,
                        help="how much to log (default: info)")
    sub = parser.add_subparsers(dest="command", required=True)
    for verb, where in VERBS.items():
        module = importlib.import_module(f"{__package__}.{where}")
        verb_parser = sub.add_parser(verb, parents=[common], formatter_class=_Help,
                                     help=module.HELP)
        module.add_arguments(verb_parser)
        verb_parser.set_defaults(func=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    hangup.hold()  # a reload asked for while starting must not end the process
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"{len(exc.issues)} config error(s):\n{exc}", file=sys.stderr)
        return 1
    except EdgeswinError as exc:
        print(f"edgeswin: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # a file or folder the user named: the message says which
        print(f"edgeswin: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a fault of edgeswin: one line here, the traceback in the log
        log.log(logging.ERROR if args.command == "run" else logging.DEBUG,
                "%s failed", args.command, exc_info=True)
        print(f"edgeswin: error: {type(exc).__name__}: {exc} (an internal error: "
              f"--log-level debug shows where)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
