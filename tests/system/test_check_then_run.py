"""Whatever `check` accepts, `run` runs: generated configs (hypothesis), each checked the way
`edgeswin check` does; every accepted one is started in this process on the real model,
video and broker, and must get past start-up (engines loaded, publisher started) and stop
cleanly. A refused one must be refused as `file:line: key: message`.

The generator mixes valid and broken values of every section a start-up reads: the ladder,
paths, passwords, metrics, Home Assistant, rollout, fallback and cameras with regions, plus
what lies outside the config (a broker that is down, a camera that does not answer), which
`run` must retry rather than fail on."""

from __future__ import annotations

import shutil
import signal
import threading
import time

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeswin.config import load_config
from edgeswin.daemon import Daemon
from edgeswin.errors import ConfigError
from edgeswin.prestart import check_rungs
from tests.harness import PRIMARY, REPO, SMALL, Broker, free_port

pytestmark = pytest.mark.mqtt

CLIP = REPO / "clips" / "demo.mp4"
EXAMPLES = 200  # about 0.5 s a start on a 2-core machine: 1-2 minutes


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Files the generated configs name, and a broker; a closed port for a broker that is down."""
    root = tmp_path_factory.mktemp("property")
    broker = Broker(root)
    broker.start()
    files = root / "files"
    files.mkdir()
    (files / "pw").write_text("secret\n")
    bare = files / "bare.onnx"
    shutil.copy(SMALL, bare)  # no sidecar
    (files / "check").mkdir()
    yield {"root": root, "port": broker.port, "closed": free_port(), "files": files}
    broker.stop()


@st.composite
def device(draw, world) -> dict:
    """An edgeswin.yaml a user could write: valid settings of every section a start reads,
    with what lies outside the config varied too (the broker's port may be closed)."""
    files = world["files"]
    rungs = []
    for i in range(draw(st.integers(1, 3))):
        rung = {"name": f"r{i}", "model": draw(st.sampled_from([str(SMALL), str(PRIMARY)]))}
        kind = draw(st.sampled_from(["plain", "plain", "threads", "tensorrt", "tensorrt-gpu",
                                     "dla"]))
        if kind == "threads":
            rung["threads"] = draw(st.integers(0, 2))
        elif kind.startswith("tensorrt"):  # built on a device with TensorRT; unusable here
            rung.update(backend="tensorrt", precision=draw(st.sampled_from(["fp16", "fp32"])))
            if kind == "tensorrt-gpu":
                rung["preprocess"] = "gpu"
        elif kind == "dla":
            rung.update(backend="tensorrt", precision="fp16", dla_core=0)
        rungs.append(rung)
    if all(r.get("backend") == "tensorrt" for r in rungs):  # this machine has no TensorRT
        rungs.append({"name": "cpu", "model": str(SMALL)})
    dev: dict = {"device_id": draw(st.sampled_from(["dev", "dev.1", "site-7_a"])),
                 "mqtt": {"host": "127.0.0.1",
                          "port": draw(st.sampled_from([world["port"]] * 3 + [world["closed"]])),
                          "qos": draw(st.integers(0, 2))},
                 "engines": rungs}
    mqtt = dev["mqtt"]
    if draw(st.booleans()):
        mqtt["topic_root"] = draw(st.sampled_from(["site/cam-box", "x"]))
    if draw(st.booleans()):
        mqtt["outbox_max_mb"] = draw(st.sampled_from([0, 0.5, 64]))
    if draw(st.booleans()):
        mqtt.update(username="user", password_file=str(files / "pw"))
    if draw(st.booleans()):
        degrade = draw(st.sampled_from([60.0, 85.0]))
        dev["fallback"] = {
            "degrade_above_c": degrade, "recover_below_c": degrade - 10,
            "thermal_root": draw(st.sampled_from(["no-thermal", "/sys/devices/virtual/thermal"])),
            "levers": draw(st.lists(st.sampled_from(["fps", "rung", "power_mode"]), min_size=1,
                                    max_size=3, unique=True)),
            "latency_budget_ms": draw(st.sampled_from([5.0, 1000.0]))}
        if "power_mode" in dev["fallback"]["levers"]:
            dev["fallback"]["power_modes"] = ["15W", "7W"]
        if draw(st.booleans()):
            dev["fallback"]["pinned_rung"] = draw(st.integers(0, len(rungs) - 1))
    for section in ("snapshots", "hard_examples", "homeassistant"):
        if draw(st.booleans()):
            dev[section] = {"enabled": draw(st.booleans())}
    if draw(st.booleans()):
        dev["metrics"] = {"enabled": True, "port": 0}
    if draw(st.booleans()):
        dev["rollout"] = {"enabled": draw(st.booleans())}
        if draw(st.booleans()):
            dev["rollout"]["check_images"] = str(files / "check")
    if draw(st.booleans()):
        dev["opencv_threads"] = draw(st.sampled_from([None, 1, 2]))
    dev["stats_interval_s"] = draw(st.sampled_from([1, 30]))
    return dev


@st.composite
def camera(draw) -> dict:
    """A camera file: the bundled clip (played fast or at its rate), a device index that is
    not there, or an rtsp camera that does not answer (run retries both)."""
    cam: dict = {"source": draw(st.sampled_from([str(CLIP), str(CLIP), 0,
                                                 "rtsp://127.0.0.1:1/x"])),
                 "open_timeout_s": 1}
    fps = draw(st.sampled_from([0, 2, 5]))
    cam["fps"] = fps
    if fps and draw(st.booleans()):
        cam["min_fps"] = draw(st.sampled_from([0.5, 1.0]))
    for key in ("realtime", "loop", "enabled"):
        if draw(st.booleans()):
            cam[key] = draw(st.booleans()) if key != "enabled" else True
    if draw(st.booleans()):
        cam["publish"] = {"mode": draw(st.sampled_from(["every", "change", "interval"]))}
    if draw(st.booleans()):
        cam["topk"] = draw(st.integers(1, 4))
    if draw(st.booleans()):
        boxes = [[0, 0, 0.5, 1], [0.5, 0, 1, 1], [0.2, 0.2, 0.8, 0.8]]
        cam["regions"] = [{"name": f"g{i}", "box": box,
                           "aspect": draw(st.sampled_from(["squash", "letterbox",
                                                           "center-crop"]))}
                          for i, box in enumerate(boxes[:draw(st.integers(1, 3))])]
    return cam


# One edit a user gets wrong, or none: each must be refused by `check` at its key.
FAULTS = [
    None, None, None, None, None, None,
    ("edgeswin.yaml", lambda d, c: d["engines"][0].update(model="missing.onnx")),
    ("edgeswin.yaml", lambda d, c: d["engines"][0].update(model="FILES/bare.onnx")),
    ("edgeswin.yaml", lambda d, c: d["mqtt"].update(username="u", password_file="nope")),
    ("edgeswin.yaml", lambda d, c: d["mqtt"].update(password_env="EDGESWIN_PROPERTY_UNSET",
                                                    username="u")),
    ("edgeswin.yaml", lambda d, c: d["mqtt"].update(tls={"ca_file": "nope.pem"})),
    ("edgeswin.yaml", lambda d, c: d.update(engines=[{"name": "t", "model": str(SMALL),
                                                      "backend": "tensorrt"}])),
    ("edgeswin.yaml", lambda d, c: d["engines"][0].update(preprocess="gpu",
                                                          backend="onnxruntime")),
    ("edgeswin.yaml", lambda d, c: d.setdefault("fallback", {}).update(pinned_rung=5)),
    ("edgeswin.yaml", lambda d, c: d.setdefault("fallback", {}).update(recover_below_c=99)),
    ("edgeswin.yaml", lambda d, c: d.setdefault("fallback", {}).update(levers=["power_mode"],
                                                                       power_modes=[])),
    ("edgeswin.yaml", lambda d, c: d.setdefault("rollout", {}).update(check_images="nowhere")),
    ("edgeswin.yaml", lambda d, c: d.update(device_id="bad id")),
    ("cameras", lambda d, c: c.update(source="missing.mp4")),
    ("cameras", lambda d, c: c.update(source="gst: videotestsrc ! appsink")),
    ("cameras", lambda d, c: c.update(fps=2, min_fps=5)),
    ("cameras", lambda d, c: c.update(enabled=False)),
    ("cameras", lambda d, c: c.update(regions=[{"name": "a", "box": [0, 0, 1, 1]},
                                               {"name": "a", "box": [0, 0, 1, 1]}])),
]


def _start_then_stop(daemon: Daemon, limit_s: float) -> tuple[int, bool]:
    """Run the daemon here; once start-up is past (the publisher started and the finisher
    made with the serving engine, after the engines loaded), ask it to stop. (exit code, got past)"""
    past = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline and not daemon._stop.is_set():
            if daemon.serving is not None:
                past.set()
                daemon.request_stop("the property test saw the start-up through")
                return
            time.sleep(0.02)
        daemon.request_stop("start-up took too long")

    threading.Thread(target=watch, daemon=True).start()
    return daemon.run(), past.is_set()


@pytest.mark.slow
def test_whatever_check_accepts_run_starts(world):
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    seen = {"accepted": 0, "refused": 0}
    counter = iter(range(10**6))

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(dev=device(world), cams=st.lists(camera(), min_size=1, max_size=2),
           fault=st.sampled_from(FAULTS))
    def check_then_run(dev: dict, cams: list[dict], fault) -> None:
        cfg = world["root"] / f"cfg{next(counter)}"
        (cfg / "cameras").mkdir(parents=True)
        dev = {**dev, "state_dir": "state"}
        if fault is not None:
            fault[1](dev, cams[0])
            text = yaml.safe_dump(dev).replace("FILES/", f"{world['files']}/")
            if fault[0] == "cameras" and cams[0].get("enabled") is False:
                for cam in cams:
                    cam["enabled"] = False
        (cfg / "edgeswin.yaml").write_text(text if fault else yaml.safe_dump(dev))
        for i, cam in enumerate(cams):
            (cfg / "cameras" / f"cam{i}.yaml").write_text(yaml.safe_dump(cam))
        try:
            config = load_config(cfg)  # what `edgeswin check` runs: the config, then
            check_rungs(config)  # whether a rung can serve (a damaged one is skipped)
        except ConfigError as exc:
            seen["refused"] += 1
            assert fault is not None, ("a config a user may write was refused", str(exc))
            for issue in exc.issues:
                # a line of the file, or 0 for a folder or file as a whole (no key then)
                assert issue.file.startswith(str(cfg)) and issue.message
                assert issue.line >= 1 or not issue.path, issue
            assert any(fault[0] in issue.file for issue in exc.issues), str(exc)
            return
        seen["accepted"] += 1
        daemon = Daemon(config)
        try:
            code, past = _start_then_stop(daemon, 60)
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        assert past, (daemon.stop_reason, dev, cams)
        assert code == 0 and not daemon.failure, (daemon.failure, dev, cams)

    check_then_run()
    print(f"check then run: {seen['accepted']} accepted and started, {seen['refused']} refused")
    # The generator must reach both sides, or the property says little.
    assert seen["accepted"] >= EXAMPLES // 4 and seen["refused"] >= EXAMPLES // 4, seen
