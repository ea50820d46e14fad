"""`edgeswin review`: options, the labels to choose from, the token, the server.

Runs beside the daemon (on the device or a workstation with a copy of the folder), never in it:
a web server is not the daemon's business. Served by Werkzeug's threaded server until Ctrl-C or
SIGTERM. On a loopback address no token is needed; on any other, one is required: the one given
(`--token` or `$EDGESWIN_REVIEW_TOKEN`), or a new one printed with the address.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import secrets
import signal
from pathlib import Path

from ..errors import EdgeswinError
from .examples import images_in, read_sidecar

HELP = ("a local web page to confirm, relabel or discard the hard examples a device kept; "
        "decisions make a labelled folder")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--examples", type=Path, required=True, help="the hard examples the "
                        "daemon kept: <state_dir>/hard (or a copy of it)")
    parser.add_argument("--to", type=Path, help="the labelled folder decisions go to, "
                        "<label>/*.jpg (default: reviewed/ beside --examples)")
    parser.add_argument("--discard-to", type=Path, help="where discarded frames go (default: "
                        "discarded/ beside --examples)")
    parser.add_argument("--model", type=Path, help="its labels are the choices and the "
                        "confusion matrix shows its answers (default: the labels found in the "
                        "folders and sidecars; the device's recorded answers)")
    parser.add_argument("--labels", help="comma-separated labels to choose from (default: "
                        "--model's)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on; any but "
                        "loopback needs a token")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--token", default=os.environ.get("EDGESWIN_REVIEW_TOKEN"),
                        help="access token when not on loopback (default: "
                             "$EDGESWIN_REVIEW_TOKEN, else a new one, printed)")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def usable(label: str) -> bool:
    """A label that can name a folder of the labelled layout."""
    return bool(label) and not label.startswith(".") and not any(c in label for c in "/\\\0")


def found_labels(*folders: Path) -> tuple[str, ...]:
    """Labels seen as sub-folders or in the sidecars' top-k, sorted: without --model. A
    sidecar's label that cannot name a folder is left out."""
    seen: set[str] = set()
    for folder in folders:
        for image in images_in(folder):
            seen.add(image.parent.name)
            topk = read_sidecar(image.with_suffix(".json")).get("topk")
            if isinstance(topk, list):
                seen.update(t["label"] for t in topk
                            if isinstance(t, dict) and isinstance(t.get("label"), str))
    return tuple(sorted(label for label in seen if usable(label)))


def choose_labels(args: argparse.Namespace, folders: list[Path]) -> tuple[str, ...]:
    if args.labels:
        labels = tuple(label.strip() for label in args.labels.split(",") if label.strip())
    elif args.model:
        from ..engine import read_model_info
        labels = read_model_info(args.model).labels
    else:
        labels = found_labels(*folders)
    bad = [label for label in labels if not usable(label)]
    if bad:
        raise EdgeswinError(f"labels {bad} cannot name a folder")
    if not labels:
        raise EdgeswinError(f"no labels found in {folders[0]}: pass --model or --labels")
    return labels


def serve_until_stopped(server) -> None:
    """Serve until Ctrl-C or SIGTERM, then close the server (the review and the board pages)."""
    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def run(args: argparse.Namespace) -> int:
    try:
        from werkzeug.serving import make_server

        from .app import make_app
    except ImportError:
        raise EdgeswinError("edgeswin review needs Flask: pip install 'edgeswin[review]'") \
            from None
    from .confusion import Answers
    from .examples import Examples

    source = args.examples
    labelled = args.to or source.parent / "reviewed"
    discarded = args.discard_to or source.parent / "discarded"
    examples = Examples(source, labelled, discarded)
    labels = choose_labels(args, [source, labelled])
    token = None
    if not is_loopback(args.host):
        token = args.token or secrets.token_urlsafe(18)
    answers = Answers(labels, args.model)
    app = make_app(examples, labels, answers, token, loopback_only=token is None)
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per image
    try:
        server = make_server(args.host, args.port, app, threaded=True)
    except OSError as exc:
        raise EdgeswinError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
                            " (another --port?)") from None
    host = f"[{args.host}]" if ":" in args.host else args.host
    address = f"http://{host}:{server.server_port}/"
    counts = examples.counts()
    print(f"reviewing {source} ({counts['waiting']} waiting); decisions go to {labelled}, "
          f"discarded frames to {discarded}", flush=True)
    print(f"open {address}" + (f"?token={token}" if token else "") + "  (Ctrl-C to stop)",
          flush=True)

    try:
        serve_until_stopped(server)
    finally:
        answers.close()
    done = examples.counts()
    print(f"stopped: {done['confirmed']} confirmed, {done['relabelled']} relabelled, "
          f"{done['discarded']} discarded, {done['waiting']} waiting", flush=True)
    return 0
