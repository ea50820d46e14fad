"""The daemon end to end: real video files and streams, the real Swin model through ONNX Runtime,
a real Mosquitto, an independent subscriber. What a subscriber sees is what is asserted."""

from __future__ import annotations

import csv
import json
import re
import signal
import time

import jsonschema
import pytest

from edgeswin.demo.assets import labels_path, read_ground_truth
from edgeswin.scenes import LABELS
from edgeswin.topics import TOPICS, parse
from tests.harness import PRIMARY, REPO, SMALL, Subscriber, write_config
from tests.streams import MjpegCamera, free_port

pytestmark = pytest.mark.mqtt

ROOT = "edgeswin/testdev"
FIELDS = {"camera", "seq", "ts", "frame_ts", "frame_index", "label", "score", "topk", "engine",
          "model", "rung", "degraded", "latency_ms"}
SCHEMAS = REPO / "edgeswin" / "schemas"


def schema(name: str) -> dict:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text())


ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")


def _stable(truth: list[str], i: int, guard: int = 3) -> bool:
    window = truth[max(0, i - guard):i + guard + 1]
    return all(label == truth[i] for label in window)


def test_two_cameras_classify_real_video_and_publish(tmp_path, broker, subscriber, videos,
                                                     daemon_factory):
    cfg = write_config(tmp_path / "cfg", broker.port, {
        name: {"source": str(path), "fps": 0} for name, path in videos.items()})
    daemon = daemon_factory(cfg)
    assert daemon.proc.wait(60) == 0, daemon.log()  # files end -> the daemon ends by itself

    assert subscriber.on(f"{ROOT}/status")[-1] == b"offline"
    for name, path in videos.items():
        truth = read_ground_truth(path)
        msgs = subscriber.json_on(f"{ROOT}/{name}/classification")
        # Not a rate (that is a benchmark): enough classifications to judge their answers.
        assert len(msgs) >= 10, f"{name}: only {len(msgs)} classifications"
        for m in msgs:
            jsonschema.validate(m, schema("classification"))  # the documented contract
            assert FIELDS <= m.keys(), FIELDS - m.keys()
            assert m["camera"] == name and m["engine"] == "primary" and m["rung"] == 0
            assert m["degraded"] is False and ISO.match(m["ts"]) and ISO.match(m["frame_ts"])
            assert m["label"] in LABELS and 0 <= m["score"] <= 1
            assert [t["label"] for t in m["topk"]][0] == m["label"] and len(m["topk"]) == 3
            assert {"inference", "capture_to_publish"} <= m["latency_ms"].keys()
        seqs = [m["seq"] for m in msgs]
        assert seqs == sorted(set(seqs)), "seq must be strictly increasing per camera"
        scored = [m for m in msgs if _stable(truth, m["frame_index"])]
        agree = sum(m["label"] == truth[m["frame_index"]] for m in scored) / len(scored)
        assert agree >= 0.95, f"{name}: {agree:.1%} agreement on {len(scored)} frames"
        # Retained camera state and availability reach late subscribers too.
        assert subscriber.on(f"{ROOT}/{name}/availability")[-1] == b"offline"
        states = subscriber.json_on(f"{ROOT}/{name}/state")
        assert len(states) >= 2
        for state in states:
            jsonschema.validate(state, schema("state"))
    engine = subscriber.json_on(f"{ROOT}/engine")[-1]
    jsonschema.validate(engine, schema("engine"))
    assert engine["rung"] == 0 and engine["backend"] == "onnxruntime"
    assert subscriber.json_on(f"{ROOT}/stats"), "periodic stats were published"
    _every_topic_is_in_the_table(broker, subscriber)


def _every_topic_is_in_the_table(broker, subscriber) -> None:
    """What the daemon sent is what `topics.TOPICS` says: every topic under the root is one of
    its rows, each JSON payload passes that row's schema, and what the broker kept for a late
    subscriber is what the table calls retained."""
    seen = set()
    for topic, payload, _ in list(subscriber.messages):
        parsed = parse(topic.removeprefix(ROOT + "/").split("/"))
        assert topic.startswith(ROOT + "/") and parsed is not None, f"{topic}: not in the table"
        seen.add(parsed[0])
        if TOPICS[parsed[0]].schema and payload:
            jsonschema.validate(json.loads(payload), schema(TOPICS[parsed[0]].schema))
    assert {"status", "classification", "state", "availability", "engine", "stats"} <= seen
    late = Subscriber(broker.port, f"{ROOT}/#")
    try:
        assert late.wait_for(lambda: len(late.messages) >= 4, 10)
        time.sleep(1)  # the rest of what was retained
        kept = {parse(t.removeprefix(ROOT + "/").split("/"))[0] for t, _, retained
                in late.messages if retained}
    finally:
        late.close()
    assert kept and all(TOPICS[key].retained for key in kept), kept
    assert {key for key in seen if TOPICS[key].retained} <= kept


def test_ground_truth_file_matches_video(videos):
    for path in videos.values():
        with labels_path(path).open() as fh:
            rows = list(csv.DictReader(fh))
        assert [int(r["frame"]) for r in rows] == list(range(len(rows)))
        assert len({r["label"] for r in rows}) >= 3


def _looping(videos) -> dict:
    return {"source": str(videos["north"]), "fps": 5, "loop": True}


def test_last_will_after_kill_9(tmp_path, broker, subscriber, videos, daemon_factory):
    cfg = write_config(tmp_path / "cfg", broker.port, {"north": _looping(videos)},
                       {"mqtt": {"host": "127.0.0.1", "port": broker.port, "keepalive_s": 5}})
    daemon = daemon_factory(cfg)
    assert subscriber.wait_for(lambda: subscriber.on(f"{ROOT}/north/classification"), 30), \
        daemon.log()
    assert subscriber.on(f"{ROOT}/status")[-1] == b"online"
    daemon.proc.send_signal(signal.SIGKILL)
    daemon.proc.wait(5)
    # The broker notices the dead TCP connection at once (socket closed) and sends the will.
    assert subscriber.wait_for(lambda: subscriber.on(f"{ROOT}/status")[-1] == b"offline", 15)


def test_sigterm_exits_0_within_5s_and_leaves_offline_retained(tmp_path, broker, subscriber,
                                                               videos, daemon_factory):
    from tests.harness import Subscriber

    cfg = write_config(tmp_path / "cfg", broker.port, {"north": _looping(videos)})
    daemon = daemon_factory(cfg)
    assert subscriber.wait_for(lambda: len(subscriber.on(f"{ROOT}/north/classification")) >= 3,
                               30), daemon.log()
    code, took = daemon.terminate(timeout=10)
    assert code == 0 and took < 5.0, (code, took, daemon.log())
    late = Subscriber(broker.port)  # a newcomer sees the retained truth
    try:
        assert late.wait_for(lambda: late.on(f"{ROOT}/status") == [b"offline"], 5)
        assert late.wait_for(lambda: late.on(f"{ROOT}/north/availability") == [b"offline"], 5)
    finally:
        late.close()


def test_failed_open_and_stalled_stream_are_retried_while_others_publish(
        tmp_path, broker, subscriber, videos, daemon_factory):
    import cv2

    cap = cv2.VideoCapture(str(videos["south"]))
    frames = [cap.read()[1] for _ in range(10)]
    with MjpegCamera(frames, fps=10, frames_per_connection=15, stall=True) as stalling:
        dead_url = f"http://127.0.0.1:{free_port()}/nothing.mjpg"  # nothing listens there
        stream = {"fps": 0, "open_timeout_s": 2, "read_timeout_s": 1.5, "stall_s": 3,
                  "reconnect": {"initial_s": 0.2, "max_s": 1.6}}
        cfg = write_config(tmp_path / "cfg", broker.port, {
            "good": _looping(videos),
            "dead": {"source": dead_url, **stream},
            "stall": {"source": stalling.url, **stream},
        })
        daemon = daemon_factory(cfg)
        assert subscriber.wait_for(lambda: stalling.connections >= 2, 30), daemon.log()
        good_before = len(subscriber.on(f"{ROOT}/good/classification"))
        time.sleep(3)
        log = daemon.log()
        # The dead camera is retried with doubling, capped waits, and reported offline.
        waits = [float(w) for w in re.findall(r"camera dead: retrying in ([\d.]+)s", log)]
        assert waits[:4] == [0.2, 0.4, 0.8, 1.6] and max(waits) == 1.6, waits
        assert subscriber.on(f"{ROOT}/dead/availability")[-1] == b"offline"
        # The stalled stream went offline, reconnected and delivered frames again.
        assert re.search(r"camera stall: (read failed|stalled)", log), log
        stall_msgs = subscriber.json_on(f"{ROOT}/stall/classification")
        assert len(stall_msgs) >= 16, "frames after the reconnect were classified"
        assert b"offline" in subscriber.on(f"{ROOT}/stall/availability")
        # Meanwhile the healthy camera kept publishing.
        assert len(subscriber.on(f"{ROOT}/good/classification")) > good_before + 5
        code, _ = daemon.terminate(timeout=10)
        assert code == 0


def test_thermal_fallback_steps_down_and_back_up_without_gaps(tmp_path, broker, subscriber,
                                                              videos, daemon_factory):
    zone = tmp_path / "thermal" / "thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("TJ-therm\n")
    temp = zone / "temp"
    temp.write_text("50000\n")
    # fps 0: every new frame of the 15 fps video is classified, so a lost frame would show.
    cfg = write_config(tmp_path / "cfg", broker.port, {"north": {**_looping(videos), "fps": 0}},
                       {"fallback": {"thermal_root": str(tmp_path / "thermal"), "zones": ["tj"],
                                     "degrade_above_c": 85, "recover_below_c": 75, "hold_s": 1,
                                     "cooldown_s": 2, "min_dwell_s": 1, "poll_s": 0.2}})
    daemon = daemon_factory(cfg)
    topic = f"{ROOT}/north/classification"
    assert subscriber.wait_for(lambda: len(subscriber.on(topic)) >= 5, 30), daemon.log()

    temp.write_text("95000\n")  # the device heats up
    assert subscriber.wait_for(lambda: subscriber.json_on(f"{ROOT}/engine")[-1]["rung"] == 1, 15)
    down = subscriber.json_on(f"{ROOT}/engine")[-1]
    assert down["from"] == 0 and down["reason"].startswith("hot")
    assert down["readings"]["temps_c"] == {"TJ-therm": 95.0}
    assert subscriber.wait_for(lambda: subscriber.json_on(topic)[-1]["rung"] == 1, 10)

    temp.write_text("60000\n")  # and cools down
    assert subscriber.wait_for(lambda: subscriber.json_on(f"{ROOT}/engine")[-1]["rung"] == 0, 15)
    assert subscriber.json_on(f"{ROOT}/engine")[-1]["reason"].startswith("recovered")
    assert subscriber.wait_for(lambda: subscriber.json_on(topic)[-1]["rung"] == 0, 10)
    code, _ = daemon.terminate(timeout=10)
    assert code == 0

    msgs = subscriber.json_on(topic)
    assert [m["seq"] for m in msgs] == list(range(1, len(msgs) + 1)), "no gap across switches"
    rungs = [m["rung"] for m in msgs]
    # One block on the small rung, marked degraded, between two blocks on the primary.
    blocks = [r for i, r in enumerate(rungs) if i == 0 or r != rungs[i - 1]]
    assert blocks == [0, 1, 0]
    for i in range(1, len(msgs)):
        if msgs[i]["rung"] != msgs[i - 1]["rung"]:  # a switch: the very next frame, none lost
            before, after = msgs[i - 1]["frame_index"], msgs[i]["frame_index"]
            assert after == before + 1 or after == 0, (before, after)  # 0: the file looped
    assert all(m["degraded"] == (m["rung"] == 1) for m in msgs)
    assert {m["engine"] for m in msgs if m["rung"] == 1} == {"small"}
    assert "fallback: rung 0 -> 1 (primary -> small): hot" in daemon.log()
    assert down["lever"] == {"name": "rung", "from": 0, "to": 1}


@pytest.fixture(scope="session")
def calibrated(tmp_path_factory) -> tuple[object, float]:
    """The primary slowed by real matrix products (same logits), slow enough on this machine,
    and a budget between it and the small rung: not a fixed number, because the same FLOPs take
    16 ms on one CPU and 50 ms on another. Medians, since a p95 of a dozen runs on a busy
    single core is noise. The budget is their geometric mean: a wide margin on each side."""
    from tests.model_variants import median_ms
    from tests.slow_model import slowed_copy
    small = median_ms(SMALL)
    for products in (8, 16, 32):
        slow = slowed_copy(PRIMARY, tmp_path_factory.mktemp("slow") /
                           "swin-demo-112-slow.onnx", products=products)
        slow_ms = median_ms(slow)
        if slow_ms > 4 * small:
            return slow, round((slow_ms * small) ** 0.5, 2)
    raise AssertionError(f"cannot make the primary 4x slower than the small rung here: "
                         f"{slow_ms:.1f} vs {small:.1f} ms")


@pytest.mark.parametrize("budget", ["device", "camera"])
def test_latency_over_budget_steps_down_with_a_cool_device(tmp_path, broker, subscriber, videos,
                                                           daemon_factory, budget, calibrated):
    # A deliberately slowed primary against a budget calibrated between it and the small rung.
    # The budget is the device's p95 inference time or the camera's p95 capture-to-publish.
    slow_primary, limit = calibrated
    camera = {**_looping(videos), "fps": 0}
    fallback = {"thermal_root": str(tmp_path / "none"), "hold_s": 1, "min_dwell_s": 1,
                "latency_window": 5, "poll_s": 0.2}
    if budget == "device":
        fallback["latency_budget_ms"] = limit
    else:
        camera["latency_budget_ms"] = limit
    cfg = write_config(tmp_path / "cfg", broker.port, {"north": camera}, {
        "engines": [{"name": "primary", "model": str(slow_primary)},
                    {"name": "small", "model": str(SMALL)}], "fallback": fallback})
    daemon = daemon_factory(cfg)
    topic = f"{ROOT}/north/classification"
    assert subscriber.wait_for(lambda: subscriber.on(f"{ROOT}/engine")
                               and subscriber.json_on(f"{ROOT}/engine")[-1]["rung"] == 1, 30), \
        daemon.log()
    engine = subscriber.json_on(f"{ROOT}/engine")[-1]
    readings = engine["readings"]
    if budget == "device":
        assert engine["reason"].startswith("slow: p95 inference")
        assert readings["latency_p95_ms"] > limit
    else:
        assert engine["reason"].startswith("slow: camera north p95 capture-to-publish")
        assert readings["slow_cameras"]["north"]["p95_ms"] > limit
        assert readings["slow_cameras"]["north"]["budget_ms"] == limit
    assert readings["temps_c"] == {}
    assert "fallback runs on latency alone" in daemon.log()
    assert subscriber.wait_for(lambda: subscriber.json_on(topic)[-1]["engine"] == "small", 10)
    assert subscriber.wait_for(lambda: any("1" in m["rungs"]
                                           for m in subscriber.json_on(f"{ROOT}/stats")), 10)
    code, _ = daemon.terminate(timeout=10)
    assert code == 0
    msgs = subscriber.json_on(topic)
    assert [m["seq"] for m in msgs] == list(range(1, len(msgs) + 1))
    # The same frames would get the same answers: the slowed copy changes time, not logits.
    slow = [m["latency_ms"]["inference"] for m in msgs if m["rung"] == 0]
    fast = [m["latency_ms"]["inference"] for m in msgs if m["rung"] == 1]
    assert sorted(slow)[len(slow) // 2] > limit > sorted(fast)[len(fast) // 2], limit
    # Stats break latency down per rung.
    rungs = next(m["rungs"] for m in subscriber.json_on(f"{ROOT}/stats") if "1" in m["rungs"])
    assert {"inference_ms", "capture_to_publish_ms"} <= rungs["1"].keys()
