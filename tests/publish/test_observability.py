"""What operators see: the stats topic, Prometheus /metrics and /healthz scraped from a running
daemon, and Home Assistant discovery checked against its documented schema."""

from __future__ import annotations

import json
import time

import jsonschema
import pytest
import yaml

from tests.harness import FAKE_CUDA, FAKE_TRT, REPO, Subscriber, get, plan, samples, write_config
from tests.streams import free_port

pytestmark = pytest.mark.mqtt
ROOT = "edgeswin/testdev"
STATS_SCHEMA = json.loads((REPO / "edgeswin" / "schemas" / "stats.schema.json").read_text())
HA_SCHEMA = json.loads((REPO / "tests" / "schemas" / "homeassistant_mqtt.schema.json").read_text())
HA_CAMERA_SCHEMA = json.loads(
    (REPO / "tests" / "schemas" / "homeassistant_mqtt_camera.schema.json").read_text())


def test_metrics_and_healthz_from_a_running_daemon(tmp_path, broker, subscriber, videos,
                                                   daemon_factory):
    port = free_port()
    cfg = write_config(tmp_path / "cfg", broker.port,
                       {"north": {"source": str(videos["north"]), "loop": True, "fps": 5}},
                       {"metrics": {"enabled": True, "port": port}})
    daemon = daemon_factory(cfg)
    assert subscriber.wait_for(lambda: len(subscriber.on(f"{ROOT}/north/classification")) >= 3,
                               30), daemon.log()
    base = f"http://127.0.0.1:{port}"
    code, first = get(f"{base}/metrics")
    assert code == 200
    time.sleep(1.5)
    second = samples(get(f"{base}/metrics")[1])
    first = samples(first)
    north = (("camera", "north"),)
    key = ("edgeswin_classifications_total", north)
    assert second[key] > first[key] >= 3, "a counter that counts"
    assert second[("edgeswin_camera_up", north)] == 1
    assert second[("edgeswin_engine_rung", (("backend", "onnxruntime"),
                                            ("engine", "primary")))] == 0
    assert second[("edgeswin_mqtt_connected", ())] == 1
    # The canary's first round ran in the first spare time: the demo model's check images.
    assert subscriber.wait_for(lambda: subscriber.on(f"{ROOT}/canary"), 20)
    assert samples(get(f"{base}/metrics")[1])[("edgeswin_canary_ok", (("engine", "primary"),
                                                                      ("rung", "0")))] == 1
    assert second[("edgeswin_published_total", north)] <= second[key]
    count = second[("edgeswin_inference_seconds_count", (("engine", "primary"), ("rung", "0")))]
    assert count == pytest.approx(second[key], abs=2)
    assert second[("edgeswin_capture_to_publish_seconds_bucket", (("camera", "north"),
                                                                  ("le", "+Inf")))] >= count - 2
    assert ("process_resident_memory_bytes", ()) in second
    assert get(f"{base}/healthz") == (200, "ok\n")
    assert get(f"{base}/nothing")[0] == 404

    # The stats topic carries what an operator needs too.
    assert subscriber.wait_for(lambda: subscriber.on(f"{ROOT}/stats"), 10)
    stats = subscriber.json_on(f"{ROOT}/stats")[-1]
    for payload in subscriber.json_on(f"{ROOT}/stats"):
        jsonschema.validate(payload, STATS_SCHEMA)  # the schema the MQTT reference is made from
    cam = stats["cameras"]["north"]
    assert {"fps", "fps_in", "skipped", "reconnects", "label", "infer_ms_p50", "infer_ms_p95",
            "capture_to_publish_ms_p95", "state"} <= cam.keys()
    assert {"rung", "degraded", "temps_c", "temp_max_c", "uptime_s", "rungs", "levels",
            "power"} <= stats.keys()
    # No power monitor or nvpmodel on this machine: the power part says so, with nulls.
    assert stats["power"]["total_w"] is None and stats["power"]["mode"] is None
    assert stats["levels"] == {"rung": 0}  # no camera has a min_fps: the fps lever is off
    assert second[("edgeswin_fallback_level", (("lever", "rung"),))] == 0
    assert daemon.terminate(timeout=10)[0] == 0


def test_metrics_are_off_by_default_and_local_when_on(tmp_path):
    from edgeswin.config import DeviceConfig
    cfg = DeviceConfig.model_validate({"device_id": "x", "engines": [
        {"name": "p", "model": str(REPO / "models" / "swin-demo-64.onnx")}]})
    assert cfg.metrics.enabled is False and cfg.metrics.address == "127.0.0.1"


def test_healthz_turns_503_while_inference_hangs(tmp_path, broker, videos, daemon_factory, trt):
    tensorrt, _ = trt
    port, hang = free_port(), tmp_path / "gpu-hung"
    cfg = write_config(tmp_path / "cfg", broker.port,
                       {"north": {"source": str(videos["north"]), "loop": True, "fps": 5}},
                       {"engines": [{"name": "primary", "model": str(plan(tmp_path, tensorrt))}],
                        "metrics": {"enabled": True, "port": port, "stale_after_s": 1}})
    daemon_factory(cfg, env={"PYTHONPATH": f"{FAKE_TRT}:{FAKE_CUDA}:{REPO}",
                             "FAKE_CUDA_HANG_FILE": str(hang)})
    url = f"http://127.0.0.1:{port}/healthz"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and get_or_none(url) != 200:
        time.sleep(0.2)
    assert get(url)[0] == 200
    hang.touch()
    assert _within(lambda: get_or_none(url) == 503, 15)
    assert get(url) == (503, "stalled\n")
    hang.unlink()
    assert _within(lambda: get_or_none(url) == 200, 15)


def _within(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def get_or_none(url):
    try:
        return get(url)[0]
    except OSError:
        return None


def test_home_assistant_discovery_announces_and_clears(tmp_path, broker, subscriber, videos,
                                                       daemon_factory):
    import signal

    ha = Subscriber(broker.port, "homeassistant/#")
    cameras = {name: {"source": str(path), "loop": True, "fps": 5}
               for name, path in videos.items()}
    cfg = write_config(tmp_path / "cfg", broker.port, cameras,
                       {"homeassistant": {"enabled": True}})
    daemon = daemon_factory(cfg)
    prefix = "homeassistant/sensor/edgeswin_testdev"
    # Fourteen distinct entities (retained ones published before the first connect can also
    # come a second time, replayed on connect, so count topics, not messages).
    assert ha.wait_for(lambda: len({t for t, _, _ in ha.messages}) >= 14, 20), daemon.log()
    configs = {topic: json.loads(payload) for topic, payload, _ in ha.messages if payload}
    pictures = "homeassistant/camera/edgeswin_testdev"
    health = "homeassistant/binary_sensor/edgeswin_testdev"
    assert set(configs) == {f"{prefix}/north_label/config", f"{prefix}/south_label/config",
                            f"{prefix}/engine_rung/config", f"{prefix}/temperature/config",
                            f"{prefix}/model_rollout/config", f"{prefix}/power/config",
                            f"{prefix}/energy_per_classification/config",
                            f"{prefix}/power_mode/config",
                            "homeassistant/binary_sensor/edgeswin_testdev/online/config",
                            f"{health}/canary/config",
                            f"{health}/north_health/config", f"{health}/south_health/config",
                            f"{pictures}/north_snapshot/config",
                            f"{pictures}/south_snapshot/config"}
    for topic, payload in configs.items():
        jsonschema.validate(payload, HA_CAMERA_SCHEMA if topic.startswith(pictures)
                            else HA_SCHEMA)
    snapshot = configs[f"{pictures}/north_snapshot/config"]["topic"]
    assert subscriber.wait_for(lambda: subscriber.on(snapshot), 20), "the entity's picture"
    assert subscriber.on(snapshot)[-1][:2] == b"\xff\xd8", "a JPEG, as the entity expects"
    late = Subscriber(broker.port, "homeassistant/#")  # Home Assistant starting later
    assert late.wait_for(lambda: len({t for t, _, _ in late.messages}) >= 14, 10)
    assert {t for t, _, retained in late.messages if retained} == set(configs), "retained"
    late.close()
    north = configs[f"{prefix}/north_label/config"]
    # The entity points at topics the daemon really fills, with the fields its template reads.
    assert subscriber.wait_for(lambda: subscriber.on(north["state_topic"]), 20)
    assert "label" in json.loads(subscriber.on(north["state_topic"])[-1])
    assert [a["topic"] for a in north["availability"]] == [f"{ROOT}/status",
                                                           f"{ROOT}/north/availability"]
    # The health sensor reads a topic the daemon fills, with the field its template reads.
    north_health = configs[f"{health}/north_health/config"]
    assert north_health["device_class"] == "problem"
    assert subscriber.wait_for(lambda: subscriber.on(north_health["state_topic"]), 20)
    assert subscriber.json_on(north_health["state_topic"])[-1]["ok"] in (True, False)
    canary = configs[f"{health}/canary/config"]  # the demo model's check images
    assert canary["device_class"] == "problem" and canary["state_topic"] == f"{ROOT}/canary"
    assert subscriber.wait_for(lambda: subscriber.on(canary["state_topic"]), 20)
    assert subscriber.json_on(canary["state_topic"])[-1]["ok"] is True
    rung = configs[f"{prefix}/engine_rung/config"]
    assert subscriber.wait_for(lambda: subscriber.on(rung["state_topic"]), 10)
    assert subscriber.json_on(rung["state_topic"])[-1]["rung"] == 0

    # Removing a camera by reload clears its entity (an empty retained config).
    (cfg / "cameras" / "south.yaml").unlink()
    seen = len(ha.messages)
    daemon.proc.send_signal(signal.SIGHUP)
    assert ha.wait_for(lambda: (f"{prefix}/south_label/config", b"") in
                       [(t, p) for t, p, _ in ha.messages[seen:]], 15), daemon.log()
    assert ha.wait_for(lambda: (f"{pictures}/south_snapshot/config", b"") in
                       [(t, p) for t, p, _ in ha.messages[seen:]], 15), "its camera goes too"
    assert ha.wait_for(lambda: (f"{health}/south_health/config", b"") in
                       [(t, p) for t, p, _ in ha.messages[seen:]], 15), "and its health"
    assert daemon.terminate(timeout=10)[0] == 0

    # And across a restart: a camera dropped while the daemon was down is cleared at start.
    (cfg / "cameras" / "south.yaml").write_text(yaml.safe_dump(cameras["south"]))
    seen = len(ha.messages)
    again = daemon_factory(cfg)
    assert ha.wait_for(lambda: any(t == f"{prefix}/south_label/config" and p != b""
                                   for t, p, _ in ha.messages[seen:]), 20), again.log()
    code, _ = again.terminate(timeout=10)
    assert code == 0, again.log()
    (cfg / "cameras" / "north.yaml").unlink()
    seen = len(ha.messages)
    third = daemon_factory(cfg)
    assert ha.wait_for(lambda: (f"{prefix}/north_label/config", b"") in
                       [(t, p) for t, p, _ in ha.messages[seen:]], 20), third.log()
    late = Subscriber(broker.port, "homeassistant/#")
    assert late.wait_for(lambda: f"{prefix}/south_label/config" in
                         {t for t, _, _ in late.messages}, 10)
    # No entity left for north: nothing but an empty config (removal) may reach a late
    # subscriber (the daemon's own clear can also arrive live, just after it subscribed).
    north_configs = [(p, retained) for t, p, retained in late.messages
                     if t == f"{prefix}/north_label/config"]
    assert all(p == b"" for p, _ in north_configs), north_configs
    late.close()
    assert third.terminate(timeout=10)[0] == 0
    ha.close()


def test_healthz_turns_503_naming_cameras_when_none_delivers(tmp_path, broker, videos,
                                                             daemon_factory):
    port, dead = free_port(), free_port()  # nothing listens on `dead`
    cfg = write_config(tmp_path / "cfg", broker.port, {
        "gone": {"source": f"rtsp://127.0.0.1:{dead}/stream", "open_timeout_s": 1}},
        {"metrics": {"enabled": True, "port": port, "no_frames_after_s": 2}})
    daemon = daemon_factory(cfg)
    url = f"http://127.0.0.1:{port}/healthz"
    assert _within(lambda: get_or_none(url) == 503, 30), daemon.log()
    code, body = get(url)
    assert code == 503 and "no camera delivered a frame for" in body
    assert "camera gone: offline" in body
    assert daemon.proc.poll() is None
    assert daemon.terminate(timeout=10)[0] == 0
