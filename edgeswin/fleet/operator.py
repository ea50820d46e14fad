"""`edgeswin fleet keygen | push | promote | status`: the operator's side of a fleet.

`push` turns a config folder (an `edgeswin.yaml` with only the sections it changes, and
`cameras/*.yaml`, an empty one removing that camera) into a bundle one version above the one
retained on the topic, signs it and publishes it retained; `status` reads every device's
retained `<root>/reported` of a group and, with `--wait-version`, waits until each has applied
that version (exit 1 when one refused it, rolled it back or stayed silent); `promote` hands a
group's canary-ring bundle to every device once each canary device applied it.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

from ..config import MqttConfig
from ..config.fields import CAMERA_DIR, CAMERA_SUFFIXES, DEVICE_FILE
from ..errors import EdgeswinError
from ..files import sha256
from ..topics import at, group_desired
from .bundle import keygen, load_private, sign
from .download import MQTT_CHUNK, blob_url

HELP = "a fleet on your broker: keygen, push a signed config, status"

RETAINED_S = 1.5  # retained messages arrive within this of subscribing
FAILED_STATES = ("refused", "rolled_back")  # a device's last report that a bundle did not take


def model_entries(models: list[str], url: str | None) -> list[dict]:
    """`RUNG=PATH` each: the model's digest, size, where the devices fetch it (`url` + its
    file name: serve the folder there) and its sidecar."""
    out = []
    for item in models:
        rung, _, path = item.partition("=")
        if not rung.isdigit() or not path:
            raise EdgeswinError(f"--model {item!r}: RUNG=PATH, e.g. 0=models/new.onnx")
        if not url:
            raise EdgeswinError("--model needs --models-url: where the devices fetch it")
        model = Path(path)
        try:
            sidecar = json.loads(model.with_suffix(".json").read_text())
            size = model.stat().st_size
        except (OSError, ValueError) as exc:
            raise EdgeswinError(f"{model}: the model and its sidecar .json: {exc}") from None
        digest = sha256(model)
        where = blob_url(digest) if url == "mqtt:" else f"{url.rstrip('/')}/{model.name}"
        out.append({"rung": int(rung), "sha256": digest, "size": size, "url": where,
                    "sidecar": sidecar, "_path": str(model)})
    return out


def publish_chunks(cfg: MqttConfig, model: dict) -> int:
    """A model as retained chunks on the broker (`--models-url mqtt:`); how many."""
    from ..publish.listen import publish_retained_many
    data = Path(model["_path"]).read_bytes()
    prefix = model["url"].removeprefix("mqtt:")
    messages = [(f"{prefix}/{n}", data[i:i + MQTT_CHUNK])
                for n, i in enumerate(range(0, max(len(data), 1), MQTT_CHUNK))]
    publish_retained_many(cfg, messages)
    return len(messages)


def bundle_from(folder: Path | None, version: int, ring: str,
                models: list[dict] | None = None) -> dict:
    def read(path: Path):
        try:
            return yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise EdgeswinError(f"{path}: {exc}") from None

    config = read(folder / DEVICE_FILE) if folder and (folder / DEVICE_FILE).is_file() else {}
    if not isinstance(config, dict):
        raise EdgeswinError(f"{folder / DEVICE_FILE}: a mapping of the sections to change")
    cameras = {}
    for path in sorted((folder / CAMERA_DIR).glob("*")) if folder else []:
        if path.suffix in CAMERA_SUFFIXES and not path.name.startswith("."):
            camera = read(path)
            if camera is not None and not isinstance(camera, dict):
                raise EdgeswinError(f"{path}: a camera's mapping, or empty to remove it")
            cameras[path.stem] = camera
    if not config and not cameras and not models:
        raise EdgeswinError(f"{folder}: nothing to push (no {DEVICE_FILE}, no {CAMERA_DIR}/, "
                            "no --model)")
    return {"version": version, "created": datetime.now(timezone.utc).isoformat(
        timespec="seconds"), "config": config, "cameras": cameras, "models": models or [],
        "ring": ring}


def retained(cfg: MqttConfig, topic_filter: str, wait_s: float = RETAINED_S
             ) -> dict[str, bytes]:
    from ..publish.listen import Listener
    found: dict[str, bytes] = {}
    lock = threading.Lock()

    def take(topic: str, payload: bytes, was_retained: bool) -> None:
        with lock:
            found[topic] = payload

    listener = Listener(cfg, topic_filter, take)
    listener.start()
    time.sleep(wait_s)
    listener.stop()
    with lock:
        return dict(found)


def topic_of(args: argparse.Namespace) -> str:
    if args.device:
        root = args.device if "/" in args.device else f"edgeswin/{args.device}"
        return at(root, "desired")
    if not args.group:
        raise EdgeswinError("--group G or --device D: where the bundle goes")
    return group_desired(args.group)


def push(args: argparse.Namespace, cfg: MqttConfig) -> int:
    from ..publish.listen import publish_retained
    key = load_private(Path(args.key))
    topic = topic_of(args)
    version = args.version
    if version is None:
        before = retained(cfg, topic).get(topic) or b"{}"
        try:
            version = int(json.loads(before).get("version", 0)) + 1
        except (ValueError, TypeError, AttributeError):
            version = 1
    models = model_entries(args.model or [], args.models_url)
    for model in models:
        if model["url"].startswith("mqtt:"):  # the chunks first: the bundle points at them
            n = publish_chunks(cfg, model)
            print(f"published {model['_path']} as {n} retained chunk(s) on "
                  f"{model['url'].removeprefix('mqtt:')}/")
    models = [{k: v for k, v in m.items() if k != "_path"} for m in models]
    folder = Path(args.config_dir) if args.config_dir else None
    bundle = sign(bundle_from(folder, version, args.ring, models), key)
    publish_retained(cfg, topic, json.dumps(bundle).encode())
    print(f"pushed version {version} to {topic} (ring {args.ring}, key "
          f"{bundle['signature']['key_id']})")
    return 0


def promote(args: argparse.Namespace, cfg: MqttConfig) -> int:
    """The group's canary-ring bundle to every device, once each device of the canary ring
    reports it applied for at least `--min-applied-s`."""
    from ..publish.listen import publish_retained
    if not args.group:
        raise EdgeswinError("--group G: the group whose canary-ring bundle to promote")
    key = load_private(Path(args.key))
    topic = group_desired(args.group)
    try:
        bundle = json.loads(retained(cfg, topic).get(topic) or b"null")
    except ValueError:
        bundle = None
    if not isinstance(bundle, dict) or bundle.get("ring") != "canary":
        raise EdgeswinError(f"{topic} holds no bundle for the canary ring: nothing to promote")
    canaries = {}
    for rtopic, payload in retained(cfg, at(args.root, "reported")).items():
        try:
            report = json.loads(payload)
        except ValueError:
            continue
        if isinstance(report, dict) and report.get("group") == args.group and \
                report.get("ring") == "canary":
            canaries[rtopic.removesuffix("/reported")] = report
    if not canaries:
        raise EdgeswinError(f"no device of group {args.group}'s canary ring has reported")
    waiting = {root: r for root, r in canaries.items()
               if r.get("version") != bundle["version"] or r.get("state") != "applied"
               or time.time() - _ts(r.get("ts")) < args.min_applied_s}
    if waiting:
        for root, r in sorted(waiting.items()):
            print(f"{root}: version {r.get('version')} {r.get('state')}: {r.get('reason')}")
        print(f"not promoted: {len(waiting)} of {len(canaries)} canary device(s) have not "
              f"applied version {bundle['version']} for {args.min_applied_s:g} s")
        return 1
    version = bundle["version"] + 1
    promoted = sign({**bundle, "version": version, "ring": "all", "created": datetime.now(
        timezone.utc).isoformat(timespec="seconds")}, key)
    publish_retained(cfg, topic, json.dumps(promoted).encode())
    print(f"promoted version {bundle['version']} (applied on {len(canaries)} canary "
          f"device(s)) as version {version} to ring all on {topic}")
    return 0


def status(args: argparse.Namespace, cfg: MqttConfig) -> int:
    from ..publish.listen import Listener
    if not args.group:
        raise EdgeswinError("--group G: the group whose devices to list")
    reports: dict[str, dict] = {}
    lock = threading.Lock()

    def take(topic: str, payload: bytes, was_retained: bool) -> None:
        try:
            report = json.loads(payload)
        except ValueError:
            return
        if isinstance(report, dict) and report.get("group") == args.group:
            with lock:
                reports[topic.removesuffix("/reported")] = {**report, "_at": time.time()}

    listener = Listener(cfg, at(args.root, "reported"), take)
    listener.start()
    started = time.monotonic()
    try:
        while True:
            time.sleep(0.3)
            with lock:
                now = dict(reports)
            waited = time.monotonic() - started
            if args.wait_version is None:
                if waited >= RETAINED_S:
                    break
                continue
            done = [r for r in now.values() if r.get("version") == args.wait_version and
                    r.get("state") in ("applied", "refused", "rolled_back")]
            if now and len(done) == len(now) and waited >= RETAINED_S or \
                    waited >= args.timeout:
                break
    finally:
        listener.stop()
    print(f"{'DEVICE':<28} {'VERSION':>7}  {'STATE':<12} {'AGE':>6}  REASON")
    failed, behind = [], []
    for root, r in sorted(now.items()):
        age = time.time() - _ts(r.get("ts"))
        print(f"{root:<28} {r.get('version')!s:>7}  {r.get('state')!s:<12} {age:5.0f}s  "
              f"{r.get('reason', '')}")
        if r.get("state") in FAILED_STATES:
            failed.append(f"{root} {r.get('state')}")
        elif args.wait_version is not None and not (
                r.get("version") == args.wait_version and r.get("state") == "applied"):
            behind.append(root)
    if not now:
        print(f"no device of group {args.group} has reported under {at(args.root, 'reported')}")
        return 1
    # A script runs `fleet status` to decide whether to go on: a device that refused or rolled
    # back its last bundle is a failure whether or not --wait-version was given.
    if failed:
        print(f"{len(failed)} of {len(now)} device(s) did not take their last bundle: "
              + ", ".join(failed))
    if behind:
        print(f"{len(behind)} device(s) not at version {args.wait_version}: " + ", ".join(behind))
    return 1 if failed or behind else 0


def _ts(text) -> float:
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return time.time()


def run(args: argparse.Namespace) -> int:
    if args.fleet_command == "keygen":
        key, pub = keygen(Path(args.out), args.name)
        print(f"private key {key} (keep it secret; mode 0600)\npublic key {pub} (copy it into "
              "each device's fleet.trusted_keys folder)")
        return 0
    from ..publish.listen import broker_settings
    cfg = broker_settings(args)
    return {"push": push, "promote": promote, "status": status}[args.fleet_command](args, cfg)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="fleet_command", required=True)
    gen = sub.add_parser("keygen", help="a new signing key pair")
    gen.add_argument("--out", required=True, help="folder for <name>.key and <name>.pub")
    gen.add_argument("--name", default="fleet")
    for name, text in (("push", "sign a config folder and publish it to a group or device"),
                       ("promote", "a group's canary-ring bundle to all its devices, once "
                                   "the canary ring applied it"),
                       ("status", "what each device of a group reports")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--host")
        p.add_argument("--port", type=int)
        p.add_argument("--broker-config", type=Path, help="take the broker settings (user, "
                       "password, TLS) from this config directory's edgeswin.yaml")
        p.add_argument("--username")
        p.add_argument("--password-file")
        p.add_argument("--group", help="the devices' fleet.group")
        if name == "push":
            p.add_argument("--config", dest="config_dir", type=Path,
                           help="a folder: edgeswin.yaml with the sections to change, and "
                           "cameras/*.yaml (an empty one removes that camera)")
            p.add_argument("--model", action="append", metavar="RUNG=PATH", help="a new "
                           "model for a rung (its sidecar .json beside it); repeatable")
            p.add_argument("--models-url", help="where the devices fetch the models: this "
                           "URL + the model's file name (serve the folder there), or mqtt: "
                           "to send them as retained chunks through the broker")
            p.add_argument("--device", help="one device's topic root (or device_id): "
                           "<root>/desired, which wins over its group's")
            p.add_argument("--ring", choices=("canary", "all"), default="all")
            p.add_argument("--key", required=True, help="the private key from keygen")
            p.add_argument("--version", type=int, help="default: one above the retained one")
        elif name == "promote":
            p.add_argument("--root", default="edgeswin/+", help="the devices' topic roots")
            p.add_argument("--key", required=True, help="the private key from keygen")
            p.add_argument("--min-applied-s", type=float, default=60.0, help="each canary "
                           "device reported it applied at least this long ago")
        else:
            p.add_argument("--root", default="edgeswin/+", help="the devices' topic roots")
            p.add_argument("--wait-version", type=int, help="wait until every device of the "
                           "group reports this version applied")
            p.add_argument("--timeout", type=float, default=120.0)
