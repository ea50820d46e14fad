"""A fleet on one real broker: three real daemons of group `site`, each trusting one key. A
signed camera change reaches all three and is applied without a restart, with the same
config_sha256; a bundle signed by another key, an old version, one that sets a forbidden
section and one whose config is broken are refused by every device, which says why and keeps
serving; a bundle that breaks a camera is reverted by each device on its own."""

from __future__ import annotations

import hashlib
import http.server
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import jsonschema
import pytest
import yaml

from edgeswin.fleet.bundle import keygen, load_private, sign, trusted_keys, verify
from edgeswin.fleet.operator import bundle_from
from tests import model_variants
from tests.harness import PRIMARY, REPO, Broker, Subscriber, write_config
from tests.streams import free_port

pytestmark = pytest.mark.mqtt
DEVICES = ("dev0", "dev1", "dev2")
SCHEMAS = REPO / "edgeswin" / "schemas"


def edgeswin(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeswin", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=180)


def start_fleet(tmp_path, port: int, videos, daemon_factory, rings=None) -> dict:
    if not (tmp_path / "keys").exists():
        keygen(tmp_path / "keys")
    trusted = tmp_path / "trusted"
    trusted.mkdir(exist_ok=True)
    shutil.copy(tmp_path / "keys" / "fleet.pub", trusted)
    daemons = {}
    for name in DEVICES:
        cfg = write_config(tmp_path / name, port, {
            "lobby": {"source": str(videos["north"]), "fps": 2, "loop": True}},
            {"device_id": name, "canary": {"enabled": False},
             "fleet": {"enabled": True, "group": "site", "trusted_keys": str(trusted),
                       "revert_after_s": 4, "ring": (rings or {}).get(name, "all")}})
        daemons[name] = daemon_factory(cfg)
    return daemons


def one_device(tmp_path, port: int, videos, fps: int, revert_after_s: float,
               **device) -> Path:
    """A key pair, a folder trusting it, and the config of device dev0 of group `site`."""
    keygen(tmp_path / "keys")
    (tmp_path / "trusted").mkdir()
    shutil.copy(tmp_path / "keys" / "fleet.pub", tmp_path / "trusted")
    return write_config(tmp_path / "dev0", port, {
        "lobby": {"source": str(videos["north"]), "fps": fps, "loop": True}},
        {"device_id": "dev0", "canary": {"enabled": False}, **device,
         "fleet": {"enabled": True, "group": "site", "revert_after_s": revert_after_s,
                   "trusted_keys": str(tmp_path / "trusted")}})


@pytest.fixture
def fleet(tmp_path, broker, videos, daemon_factory):
    return tmp_path, start_fleet(tmp_path, broker.port, videos, daemon_factory)


def push(tmp_path, broker, folder: dict, *extra: str, key: str = "keys") -> str:
    """`edgeswin fleet push` of a folder made from {relative path: YAML text}."""
    src = tmp_path / f"push-{time.monotonic_ns()}"
    for rel, text in folder.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    done = edgeswin("fleet", "push", "--config", str(src), "--group", "site", "--key",
                    str(tmp_path / key / "fleet.key"), "--port", str(broker.port), *extra)
    assert done.returncode == 0, done.stderr
    return done.stdout


def reports(subscriber, version: int) -> dict[str, dict]:
    out = {}
    for name in DEVICES:
        for r in subscriber.json_on(f"edgeswin/{name}/reported"):
            if r["version"] == version:
                out[name] = r
    return out


def settled(subscriber, version: int, state: str):
    return lambda: {r["state"] for r in reports(subscriber, version).values()} == {state} \
        and len(reports(subscriber, version)) == len(DEVICES)


def test_a_signed_change_converges_and_bad_bundles_are_refused(fleet, broker, subscriber,
                                                               videos):
    tmp_path, daemons = fleet
    yard = yaml.safe_dump({"source": str(videos["south"]), "fps": 2, "loop": True})
    out = push(tmp_path, broker, {"cameras/yard.yaml": yard})
    assert "pushed version 1 to edgeswin/fleet/site/desired" in out
    assert subscriber.wait_for(settled(subscriber, 1, "applied"), 90), \
        {n: d.log()[-2000:] for n, d in daemons.items()}
    assert len({r["config_sha256"] for r in reports(subscriber, 1).values()}) == 1
    schema = json.loads((SCHEMAS / "reported.schema.json").read_text())
    for name in DEVICES:
        for report in subscriber.json_on(f"edgeswin/{name}/reported"):
            jsonschema.validate(report, schema)
    bundle = json.loads(subscriber.on("edgeswin/fleet/site/desired")[-1])
    jsonschema.validate(bundle, json.loads((SCHEMAS / "bundle.schema.json").read_text()))
    for name in DEVICES:  # applied by reload: the new camera classifies, nothing restarted
        assert subscriber.wait_for(
            lambda n=name: subscriber.on(f"edgeswin/{n}/yard/classification"), 30)
        assert daemons[name].proc.poll() is None
    status = edgeswin("fleet", "status", "--group", "site", "--port", str(broker.port),
                      "--wait-version", "1", "--timeout", "30")
    assert status.returncode == 0, status.stdout + status.stderr
    assert all(f"edgeswin/{n}" in status.stdout for n in DEVICES), status.stdout

    keygen(tmp_path / "other")
    push(tmp_path, broker, {"cameras/gate.yaml": yard}, key="other")  # version 2
    push(tmp_path, broker, {"cameras/gate.yaml": yard}, "--version", "1")
    push(tmp_path, broker, {"edgeswin.yaml": "mqtt: {host: 10.0.0.9}\n"}, "--version", "4")
    push(tmp_path, broker, {"cameras/gate.yaml": "source: /nowhere/gate.mp4\n"},
         "--version", "5")
    expected = {2: "does not trust", 1: "not newer than 1", 4: "config.mqtt: never set",
                5: "the config it makes is invalid"}
    for version, why in expected.items():
        assert subscriber.wait_for(settled(subscriber, version, "refused"), 60), version
        assert all(why in r["reason"] for r in reports(subscriber, version).values()), \
            reports(subscriber, version)
    status = edgeswin("fleet", "status", "--group", "site", "--port", str(broker.port),
                      "--wait-version", "5", "--timeout", "10")
    assert status.returncode == 1 and "refused" in status.stdout
    # Without --wait-version too: a script must not read "every device refused" as success.
    status = edgeswin("fleet", "status", "--group", "site", "--port", str(broker.port))
    assert status.returncode == 1, status.stdout
    assert f"{len(DEVICES)} of {len(DEVICES)} device(s) did not take their last bundle" in \
        status.stdout and all(f"edgeswin/{n} refused" in status.stdout for n in DEVICES), \
        status.stdout
    for name in DEVICES:  # still serving what they had
        seen = len(subscriber.on(f"edgeswin/{name}/yard/classification"))
        assert subscriber.wait_for(
            lambda n=name, k=seen: len(subscriber.on(f"edgeswin/{n}/yard/classification")) > k,
            30)
        assert not subscriber.on(f"edgeswin/{name}/gate/classification")


def test_a_bundle_that_breaks_a_camera_is_reverted_by_each_device(fleet, broker, subscriber):
    tmp_path, daemons = fleet
    for name in DEVICES:
        assert subscriber.wait_for(
            lambda n=name: subscriber.on(f"edgeswin/{n}/lobby/availability")[-1:] ==
            [b"online"], 60)
    dead = yaml.safe_dump({"source": f"rtsp://127.0.0.1:{free_port()}/gone", "fps": 2})
    push(tmp_path, broker, {"cameras/lobby.yaml": dead})
    assert subscriber.wait_for(settled(subscriber, 1, "rolled_back"), 90), \
        {n: d.log()[-3000:] for n, d in daemons.items()}
    for r in reports(subscriber, 1).values():
        assert "camera lobby delivered before and is offline now" in r["reason"], r
    status = edgeswin("fleet", "status", "--group", "site", "--port", str(broker.port))
    assert status.returncode == 1 and all(f"edgeswin/{n} rolled_back" in status.stdout
                                          for n in DEVICES), status.stdout
    for name in DEVICES:  # back on the local file, and delivering again
        assert subscriber.wait_for(
            lambda n=name: subscriber.on(f"edgeswin/{n}/lobby/availability")[-1:] ==
            [b"online"], 60)
        assert daemons[name].terminate()[0] == 0


def test_a_device_that_was_down_and_a_broker_restart_mid_push_converge(
        tmp_path, videos, daemon_factory):
    broker = Broker(tmp_path, persistent=True)  # retained bundles survive its restart
    broker.start()
    subscriber = Subscriber(broker.port)
    try:
        daemons = start_fleet(tmp_path, broker.port, videos, daemon_factory)
        assert subscriber.wait_for(lambda: all(subscriber.on(f"edgeswin/{n}/status")[-1:] ==
                                               [b"online"] for n in DEVICES), 60)
        assert daemons["dev2"].terminate()[0] == 0  # down during the push
        yard = yaml.safe_dump({"source": str(videos["south"]), "fps": 2, "loop": True})
        push(tmp_path, broker, {"cameras/yard.yaml": yard})
        broker.stop(graceful=True)  # the broker restarts while the devices take it
        broker.start()
        dev2 = daemon_factory(tmp_path / "dev2")  # and the device comes back
        assert subscriber.wait_for(settled(subscriber, 1, "applied"), 120), \
            {n: d.log()[-2000:] for n, d in {**daemons, "dev2": dev2}.items()}
        assert len({r["config_sha256"] for r in reports(subscriber, 1).values()}) == 1
        assert subscriber.wait_for(
            lambda: subscriber.on("edgeswin/dev2/yard/classification"), 30), dev2.log()
    finally:
        subscriber.close()
        broker.stop()


def test_the_canary_ring_first_then_promoted_to_all(tmp_path, broker, subscriber, videos,
                                                    daemon_factory):
    daemons = start_fleet(tmp_path, broker.port, videos, daemon_factory, {"dev0": "canary"})
    yard = yaml.safe_dump({"source": str(videos["south"]), "fps": 2, "loop": True})
    push(tmp_path, broker, {"cameras/yard.yaml": yard}, "--ring", "canary")

    def promote() -> subprocess.CompletedProcess:
        return edgeswin("fleet", "promote", "--group", "site", "--key",
                        str(tmp_path / "keys" / "fleet.key"), "--port", str(broker.port),
                        "--min-applied-s", "0")

    assert subscriber.wait_for(lambda: [r["state"] for r in reports(subscriber, 1).values()]
                               == ["applied"], 60), daemons["dev0"].log()[-2000:]
    assert set(reports(subscriber, 1)) == {"dev0"}, "only the canary ring took it"
    assert not subscriber.on("edgeswin/dev1/yard/classification")
    done = promote()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "promoted version 1 (applied on 1 canary device(s)) as version 2" in done.stdout
    assert subscriber.wait_for(settled(subscriber, 2, "applied"), 90)
    assert subscriber.wait_for(lambda: subscriber.on("edgeswin/dev1/yard/classification"), 30)
    again = promote()  # the retained bundle is for every ring now
    assert again.returncode == 1 and "nothing to promote" in again.stderr


def test_the_signature_covers_every_byte(tmp_path):
    keygen(tmp_path)
    keys, bad = trusted_keys(tmp_path)
    assert len(keys) == 1 and not bad
    folder = tmp_path / "push"
    (folder / "cameras").mkdir(parents=True)
    (folder / "cameras" / "a.yaml").write_text("source: x.mp4\n")
    (folder / "cameras" / "b.yaml").write_text("")  # removes camera b
    bundle = sign(bundle_from(folder, 3, "all"), load_private(tmp_path / "fleet.key"))
    assert bundle["cameras"] == {"a": {"source": "x.mp4"}, "b": None}
    assert verify(bundle, keys) is None
    for change in ({"version": 4}, {"ring": "canary"}, {"extra": 1},
                   {"cameras": {"a": {"source": "y.mp4"}, "b": None}}):
        assert "does not match" in verify({**bundle, **change}, keys), change
    assert verify(json.loads(json.dumps(bundle)), keys) is None  # survives the wire


class _Models(http.server.BaseHTTPRequestHandler):
    """Serves a folder with Range requests; the first whole-file request of each file is cut
    off halfway, as a dropped connection would."""
    folder: Path
    cut: set[str] = set()
    ranges: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        path = self.folder / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        if self.headers.get("Range"):
            self.ranges.append(self.headers["Range"])
            start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if path.name not in self.cut and not start:
            self.cut.add(path.name)
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(data[start:])

    def log_message(self, *args) -> None:
        pass


def test_a_model_is_fetched_resumed_checked_and_gated_before_it_serves(
        tmp_path, broker, subscriber, videos, daemon_factory):
    served = tmp_path / "served"
    served.mkdir()
    new = model_variants.reexported(PRIMARY, served / "primary-v2.onnx", "swin-demo-112-v2")
    handler = type("Handler", (_Models,), {"folder": served, "cut": set(), "ranges": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        cfg = one_device(tmp_path, broker.port, videos, 5, 2, rollout={"min_frames": 10})
        daemon = daemon_factory(cfg)
        assert subscriber.wait_for(lambda: subscriber.on("edgeswin/dev0/status")[-1:] ==
                                   [b"online"], 60)
        done = edgeswin("fleet", "push", "--model", f"0={new}", "--models-url", url,
                        "--group", "site", "--key", str(tmp_path / "keys" / "fleet.key"),
                        "--port", str(broker.port))
        assert done.returncode == 0, done.stderr
        reported = "edgeswin/dev0/reported"
        assert subscriber.wait_for(lambda: any(r["state"] == "applied" for r in
                                               subscriber.json_on(reported)), 90), daemon.log()
        states = [r["state"] for r in subscriber.json_on(reported)]
        assert states[:3] == ["downloading", "rolling_out", "applied"], states
        digest = hashlib.sha256(new.read_bytes()).hexdigest()
        assert subscriber.json_on(reported)[-1]["models"] == {"0": digest}
        assert handler.ranges and handler.ranges[0] != "bytes=0-", "resumed, not restarted"
        # The daemon's rollout gates it in shadow and promotes it: it serves the new model.
        assert subscriber.wait_for(lambda: any(
            c["model"] == "swin-demo-112-v2"
            for c in subscriber.json_on("edgeswin/dev0/lobby/classification")), 120), \
            daemon.log()[-3000:]

        # A served file whose bytes are not the ones signed is refused; the device keeps
        # serving what it had.
        signed = tmp_path / "signed"
        signed.mkdir()
        (signed / new.name).write_bytes(new.read_bytes()[:-1] + b"!")  # same size
        shutil.copy(new.with_suffix(".json"), signed / new.with_suffix(".json").name)
        (served / "v3").mkdir()
        shutil.copy(new, served / "v3" / new.name)
        done = edgeswin("fleet", "push", "--model", f"0={signed / new.name}", "--models-url",
                        f"{url}/v3", "--group", "site", "--key",
                        str(tmp_path / "keys" / "fleet.key"), "--port", str(broker.port))
        assert done.returncode == 0, done.stderr
        assert subscriber.wait_for(lambda: subscriber.json_on(reported)[-1]["state"] ==
                                   "refused", 60), subscriber.json_on(reported)
        why = subscriber.json_on(reported)[-1]["reason"]
        assert "model download" in why and "SHA-256 is not the bundle's" in why, why
        seen = len(subscriber.on("edgeswin/dev0/lobby/classification"))
        assert subscriber.wait_for(
            lambda: len(subscriber.on("edgeswin/dev0/lobby/classification")) > seen + 3, 30)
        assert daemon.terminate()[0] == 0
    finally:
        server.shutdown()


def test_a_model_through_the_broker_alone(tmp_path, broker, subscriber, videos,
                                          daemon_factory):
    """No file server: the model goes as retained chunks on edgeswin/fleet/blobs/<sha256>/."""
    new = model_variants.reexported(PRIMARY, tmp_path / "primary-v2.onnx", "swin-demo-112-v2")
    cfg = one_device(tmp_path, broker.port, videos, 5, 2, rollout={"min_frames": 10})
    daemon = daemon_factory(cfg)
    assert subscriber.wait_for(lambda: subscriber.on("edgeswin/dev0/status")[-1:] ==
                               [b"online"], 60)
    done = edgeswin("fleet", "push", "--model", f"0={new}", "--models-url", "mqtt:",
                    "--group", "site", "--key", str(tmp_path / "keys" / "fleet.key"),
                    "--port", str(broker.port))
    assert done.returncode == 0, done.stderr
    digest = hashlib.sha256(new.read_bytes()).hexdigest()
    chunks = -(-new.stat().st_size // (256 * 1024))
    assert f"as {chunks} retained chunk(s) on edgeswin/fleet/blobs/{digest}/" in done.stdout
    reported = "edgeswin/dev0/reported"
    assert subscriber.wait_for(lambda: any(r["state"] == "applied" for r in
                                           subscriber.json_on(reported)), 90), daemon.log()
    assert subscriber.json_on(reported)[-1]["models"] == {"0": digest}
    assert subscriber.wait_for(lambda: any(
        c["model"] == "swin-demo-112-v2"
        for c in subscriber.json_on("edgeswin/dev0/lobby/classification")), 120), \
        daemon.log()[-3000:]
    assert daemon.terminate()[0] == 0


def test_a_push_from_the_centre_reaches_devices_behind_a_bridge(tmp_path, videos,
                                                                daemon_factory):
    """Devices on a site broker, the operator on a central one, joined by a mosquitto bridge
    (both real). The bridge goes down right after the push (the centre restarts): the devices
    converge once it is back, and every report reaches the centre."""
    (tmp_path / "central").mkdir()
    (tmp_path / "site").mkdir()
    central = Broker(tmp_path / "central", persistent=True)
    central.start()
    site = Broker(tmp_path / "site", persistent=True)
    with site.conf.open("a") as fh:
        fh.write(f"connection central\naddress 127.0.0.1:{central.port}\n"
                 "cleansession false\nrestart_timeout 1 2\n"
                 "topic edgeswin/fleet/# in 1\ntopic edgeswin/+/desired in 1\n"
                 "topic edgeswin/+/reported out 1\ntopic edgeswin/+/status out 1\n")
    site.start()
    centre = Subscriber(central.port)
    try:
        daemons = start_fleet(tmp_path, site.port, videos, daemon_factory)
        assert centre.wait_for(lambda: all(centre.on(f"edgeswin/{n}/status")[-1:] ==
                                           [b"online"] for n in DEVICES), 60), \
            "the devices' status crosses the bridge"
        yard = yaml.safe_dump({"source": str(videos["south"]), "fps": 2, "loop": True})
        push(tmp_path, central, {"cameras/yard.yaml": yard})
        central.stop(graceful=True)  # the bridge is down mid-push
        time.sleep(2)
        central.start()
        assert centre.wait_for(settled(centre, 1, "applied"), 120), \
            {n: d.log()[-1500:] for n, d in daemons.items()}
        assert len({r["config_sha256"] for r in reports(centre, 1).values()}) == 1
    finally:
        centre.close()
        site.stop()
        central.stop()


def test_what_a_signed_bundle_still_cannot_do(tmp_path):
    """Checked after the signature: a trusted key does not make every bundle safe."""
    from edgeswin.config import FleetConfig
    from edgeswin.fleet.policy import refusal
    keygen(tmp_path)
    keys, _ = trusted_keys(tmp_path)
    key = load_private(tmp_path / "fleet.key")
    cfg = FleetConfig(enabled=True, group="g", allow=["cameras", "engines"])

    def why(**fields) -> str | None:
        bundle = sign({"version": 2, "config": {}, "cameras": {}, "models": [], **fields}, key)
        return refusal(bundle, cfg, 1, keys)[0]

    assert why() is None
    assert "a camera name" in why(cameras={"../../etc/cron.d/x": {"source": "a.mp4"}})
    assert "never set by a bundle" in why(config={"state_dir": "/tmp"})
    assert "not in this device's fleet.allow" in why(config={"fallback": {}})
    assert "host_code_allowed" in why(config={"engines": [{"name": "a", "model": "m.onnx",
                                                          "host_code_allowed": True}]})
    assert "gst: pipeline" in why(cameras={"a": {"source": "gst:filesrc location=/x ! ..."}})
    model = {"rung": 0, "sha256": "0" * 64, "size": 10, "url": "file:///etc/shadow",
             "sidecar": {"labels": ["a"]}}
    assert "url: an http" in why(models=[model])
    assert why(models=[{**model, "url": "mqtt:edgeswin/fleet/blobs/" + "0" * 64}]) is None
    assert "not newer than 1" in refusal(sign({"version": 1, "config": {}, "cameras": {}},
                                              key), cfg, 1, keys)[0]


def test_settings_a_reload_cannot_apply_restart_the_daemon_and_are_watched_after(
        tmp_path, broker, subscriber, videos, daemon_factory):
    """The service manager's part is played here: exit 75 is restarted (as the unit's
    RestartForceExitStatus=75 does). A good settings change is applied at the restart and
    watched; one that also breaks a camera is reverted after its restart, with a restart
    again to go back."""
    daemons = {}
    cfg = one_device(tmp_path, broker.port, videos, 2, 3)
    daemons[0] = daemon_factory(cfg)
    reported = "edgeswin/dev0/reported"

    def restarted(n: int) -> None:
        assert daemons[n - 1].proc.wait(60) == 75, daemons[n - 1].log()[-2000:]
        daemons[n] = daemon_factory(cfg)

    assert subscriber.wait_for(lambda: subscriber.on("edgeswin/dev0/status")[-1:] ==
                               [b"online"], 60)
    push(tmp_path, broker, {"edgeswin.yaml": "stats_interval_s: 3\n"})
    restarted(1)
    assert subscriber.wait_for(lambda: subscriber.json_on(reported)[-1:] and
                               subscriber.json_on(reported)[-1]["state"] == "applied", 60)
    states = [(r["version"], r["state"]) for r in subscriber.json_on(reported)]
    assert states == [(1, "rolling_out"), (1, "rolling_out"), (1, "applied")], states
    assert "restarting to apply version 1 (stats_interval_s)" in \
        subscriber.json_on(reported)[0]["reason"]
    assert subscriber.wait_for(lambda: subscriber.on("edgeswin/dev0/lobby/availability")[-1:]
                               == [b"online"], 30)

    dead = yaml.safe_dump({"source": f"rtsp://127.0.0.1:{free_port()}/gone", "fps": 2})
    push(tmp_path, broker, {"edgeswin.yaml": "stats_interval_s: 4\n", "cameras/lobby.yaml": dead})
    restarted(2)  # to apply it
    restarted(3)  # to go back from it: the camera went offline
    assert subscriber.wait_for(lambda: subscriber.json_on(reported)[-1]["state"] ==
                               "rolled_back", 60), daemons[3].log()[-2000:]
    last = subscriber.json_on(reported)[-1]
    assert last["version"] == 2 and "camera lobby delivered before" in last["reason"], last
    assert subscriber.wait_for(lambda: subscriber.on("edgeswin/dev0/lobby/availability")[-1:]
                               == [b"online"], 30)
    assert daemons[3].terminate()[0] == 0


def test_a_report_lost_on_the_way_is_said_again_when_the_bundle_comes_again(
        tmp_path, broker, subscriber, videos, daemon_factory):
    """A bridge that lost its queue, or a central broker restored from an older file, holds a
    stale report while the device's own connection never dropped. The bridge's next subscribe
    brings the bundle's retained copy again: the device says its report again. Its own start
    says it once, and the copy is never an error."""
    reported, desired = "edgeswin/dev0/reported", "edgeswin/fleet/site/desired"
    daemon = daemon_factory(one_device(tmp_path, broker.port, videos, 2, 1))
    assert subscriber.wait_for(lambda: subscriber.on("edgeswin/dev0/status")[-1:] ==
                               [b"online"], 60)
    push(tmp_path, broker, {"edgeswin.yaml": "stats_interval_s: 2\n"})
    assert subscriber.wait_for(lambda: [r["state"] for r in subscriber.json_on(reported)]
                               == ["rolling_out", "applied"], 60), daemon.log()[-2000:]
    stale = {**subscriber.json_on(reported)[0], "ts": "2026-01-01T00:00:00Z"}
    subscriber.client.publish(reported, json.dumps(stale), qos=1, retain=True).wait_for_publish(5)
    subscriber.client.publish(desired, subscriber.on(desired)[-1], qos=1,
                              retain=True).wait_for_publish(5)  # as a bridge's subscribe does
    fresh = Subscriber(broker.port, topic=reported)
    try:
        assert fresh.wait_for(lambda: fresh.json_on(reported)[-1:] and
                              fresh.json_on(reported)[-1]["state"] == "applied", 30), \
            (fresh.json_on(reported), daemon.log()[-2000:])
    finally:
        fresh.close()
    assert "refused" not in daemon.log(), daemon.log()[-2000:]
    assert daemon.terminate()[0] == 0
    said = len(subscriber.on(reported))
    restarted = daemon_factory(tmp_path / "dev0")  # a start says the report once
    assert subscriber.wait_for(lambda: len(subscriber.on(reported)) > said, 60)
    time.sleep(2)  # the retained bundle comes right after the subscription
    assert len(subscriber.on(reported)) == said + 1, subscriber.json_on(reported)[said:]
    assert restarted.terminate()[0] == 0
