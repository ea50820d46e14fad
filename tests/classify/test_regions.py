"""Regions: parts of a frame classified on their own, with their own topics, seq, smoothing and
publish policy; config mistakes pointed out by file and line; fair turns between regions."""

from __future__ import annotations

import itertools
import json

import cv2
import jsonschema
import numpy as np
import pytest

from edgeswin.config import load_config
from edgeswin.demo.assets import read_ground_truth
from edgeswin.errors import ConfigError
from edgeswin.prepare.preprocess import crop
from tests.harness import REPO, write_config


@pytest.fixture(scope="module")
def side_by_side(videos, tmp_path_factory):
    """One 1280x360 video: the north demo video on the left, the south one on the right."""
    out = tmp_path_factory.mktemp("sbs") / "sbs.mp4"
    left, right = cv2.VideoCapture(str(videos["north"])), cv2.VideoCapture(str(videos["south"]))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 15, (1280, 360))
    while True:
        ok_l, a = left.read()
        ok_r, b = right.read()
        if not (ok_l and ok_r):
            break
        writer.write(np.hstack([a, b]))
    writer.release()
    truths = {"left": read_ground_truth(videos["north"]), "right": read_ground_truth(videos["south"])}
    return out, truths


def camera_yaml(tmp_path, text: str):
    cfg = write_config(tmp_path / "cfg", 1883, {})
    (cfg / "cameras" / "cam.yaml").write_text(text)
    return cfg


@pytest.mark.parametrize("text,line,message", [
    ("source: x.mp4\nregions:\n  - name: a\n    box: [0, 0, 0.5, 1]\n  - name: a\n"
     "    box: [0.5, 0, 1, 1]\n", 5, "regions.1.name: region name a used more than once"),
    ("source: x.mp4\nregions:\n  - name: a\n    box: [0.6, 0, 0.5, 1]\n", 4,
     "needs x1 > x0 and y1 > y0"),
    ("source: x.mp4\nregions:\n  - name: a\n    box: [0, 0, 1.2, 1]\n", 4,
     "every value is a fraction from 0 to 1"),
    ("source: x.mp4\nregions:\n  - name: a\n    box: [0, 0, 1]\n", 4, "at least 4 items"),
    ("source: x.mp4\nregions:\n  - name: a b\n    box: [0, 0, 1, 1]\n", 3, "should match pattern"),
    ("source: x.mp4\nregions:\n  - name: a\n    box: [0, 0, 1, 1]\n    aspect: fit\n", 5,
     "'squash', 'letterbox' or 'center-crop'"),
    ("source: x.mp4\nregions: []\n", 2, "at least 1 item"),
])
def test_region_mistakes_are_pointed_out_by_file_and_line(tmp_path, text, line, message):
    (tmp_path / "x.mp4").write_bytes(b"")
    cfg = camera_yaml(tmp_path, text)
    (cfg / "cameras" / "x.mp4").write_bytes(b"")
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    said = str(err.value)
    assert f"cam.yaml:{line}:" in said and message in said, said


def test_a_region_overrides_only_what_it_sets(tmp_path):
    cfg = camera_yaml(tmp_path, "source: x.mp4\nfps: 4\ntopk: 2\nthreshold: 0.3\n"
                                "publish: {mode: change}\nregions:\n"
                                "  - {name: door, box: [0, 0, 0.5, 1], fps: 1, threshold: 0.6}\n"
                                "  - {name: yard, box: [0.5, 0, 1, 1]}\n")
    (cfg / "cameras" / "x.mp4").write_bytes(b"")
    camera = load_config(cfg).cameras[0].config
    door, yard = (camera.for_region(r) for r in camera.regions)
    assert (door.fps, door.topk, door.threshold, door.publish.mode) == (1, 2, 0.6, "change")
    assert (yard.fps, yard.threshold) == (4, 0.3)


@pytest.mark.parametrize("aspect,shape", [("squash", (360, 320)), ("center-crop", (320, 320)),
                                          ("letterbox", (360, 360))])
def test_a_region_is_cut_from_the_full_frame_then_fitted_as_asked(aspect, shape):
    frame = np.zeros((720, 1280, 3), np.uint8)
    frame[360:, 640:] = 255  # bottom-right quarter white
    part = crop(frame, [0.5, 0.5, 0.75, 1.0], aspect, (112, 112))
    assert part.shape[:2] == shape
    if aspect == "letterbox":  # black bars left and right, the box in the middle
        assert part[:, :20].max() == 0 and part[:, 20:340].min() == 255
    else:
        assert part.min() == 255


def test_regions_take_fair_turns_at_their_own_rates():
    """Earliest deadline first over (camera, region) under a fake clock: a 4/s region gets
    four turns for each of a 1/s region's, and two fps-0 regions alternate."""
    from types import SimpleNamespace

    from edgeswin.classify.schedule import next_job, region_runtimes, served
    from edgeswin.classify.stats import CameraStats
    from edgeswin.config import CameraConfig
    from edgeswin.records import Frame

    cfg = CameraConfig(name="c", source="rtsp://cam/stream", fps=4, regions=[
        {"name": "fast", "box": [0, 0, 0.5, 1]},
        {"name": "slow", "box": [0.5, 0, 1, 1], "fps": 1},
        {"name": "free1", "box": [0, 0, 1, 0.5], "fps": 0},
        {"name": "free2", "box": [0, 0.5, 1, 1], "fps": 0}])
    frames = itertools.count(1)
    capture = SimpleNamespace(latest=lambda: Frame("c", None, next(frames), 0, 0.0, 0.0))
    cam = SimpleNamespace(capture=capture, regions=region_runtimes(cfg, ("a",), CameraStats()))
    turns: dict[str, int] = {}
    now = 0.0
    while now < 10.0:
        job, wait = next_job([cam], now)
        if job is None:
            now += wait
            continue
        region = job[1]
        region.last_seq = job[2].seq
        turns[region.name] = turns.get(region.name, 0) + 1
        served(region, now)
        now += 0.001  # each classification takes 1 ms
    assert turns["fast"] in (40, 41) and turns["slow"] in (10, 11), turns
    assert abs(turns["free1"] - turns["free2"]) <= 1, turns


@pytest.mark.mqtt
def test_each_region_is_classified_on_its_own(tmp_path, broker, subscriber, side_by_side,
                                              daemon_factory):
    """Left and right halves of one video show different scenes: each region agrees with its
    own half's ground truth, publishes on its own topics with its own gap-free seq, and the
    frame is decoded once for both."""
    from tests.harness import free_port

    video, truths = side_by_side
    port = free_port()
    cfg = write_config(tmp_path / "cfg", broker.port, {"sbs": {
        "source": str(video), "fps": 0, "realtime": False, "loop": True,
        "regions": [{"name": "left", "box": [0, 0, 0.5, 1]},
                    {"name": "right", "box": [0.5, 0, 1, 1]}]}},
        {"metrics": {"enabled": True, "port": port}})
    daemon = daemon_factory(cfg)
    frames = len(truths["left"])
    assert subscriber.wait_for(lambda: len(subscriber.on(
        "edgeswin/testdev/sbs/right/classification")) > frames, 60), daemon.log()
    import urllib.request
    scrape = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    for region in ("left", "right"):
        assert f'edgeswin_region_classifications_total{{camera="sbs",region="{region}"}}' \
            in scrape
    # Stats go out every 2 s: a fast machine classifies the whole video before the first.
    assert subscriber.wait_for(lambda: subscriber.on("edgeswin/testdev/stats"), 10)
    assert daemon.terminate(timeout=10)[0] == 0
    assert not subscriber.on("edgeswin/testdev/sbs/classification"), "no whole-frame topic"
    for region, truth in truths.items():
        msgs = subscriber.json_on(f"edgeswin/testdev/sbs/{region}/classification")
        assert [m["seq"] for m in msgs] == list(range(1, len(msgs) + 1))
        assert all(m["region"] == region and m["camera"] == "sbs" for m in msgs)
        first = msgs[:frames]  # consumer-paced: every frame, once, for each region
        assert [m["frame_index"] for m in first] == list(range(frames))
        steady = [m for m in msgs
                  if len(set(truth[max(m["frame_index"] - 2, 0):m["frame_index"] + 3])) == 1]
        agree = sum(m["label"] == truth[m["frame_index"]] for m in steady) / len(steady)
        assert agree >= 0.95, (region, agree)
        states = subscriber.json_on(f"edgeswin/testdev/sbs/{region}/state")
        assert states and states[-1]["label"] == msgs[-1]["label"]
    for payload in subscriber.json_on("edgeswin/testdev/stats"):
        jsonschema.validate(payload, json.loads(
            (REPO / "edgeswin" / "schemas" / "stats.schema.json").read_text()))
    stats = subscriber.json_on("edgeswin/testdev/stats")[-1]["cameras"]["sbs"]
    assert set(stats["regions"]) == {"left", "right"}
    regions = stats["regions"]  # a camera counts its regions' classifications together
    assert stats["classified"] == regions["left"]["classified"] + regions["right"]["classified"]


@pytest.mark.mqtt
def test_a_camera_without_regions_sends_what_it_always_did(tmp_path, broker, subscriber, videos,
                                                            daemon_factory):
    """Same topics and the same fields in the same order as before regions existed (snapshots
    and health, new topics of their own, are off here)."""
    cfg = write_config(tmp_path / "cfg", broker.port,
                       {"north": {"source": str(videos["north"]), "fps": 0, "realtime": False}},
                       {"snapshots": {"enabled": False}, "health": {"enabled": False}})
    daemon = daemon_factory(cfg)
    assert daemon.proc.wait(120) == 0, daemon.log()
    topics = {t for t, _, _ in subscriber.messages if t.startswith("edgeswin/testdev/north")}
    assert topics == {"edgeswin/testdev/north/classification", "edgeswin/testdev/north/state",
                      "edgeswin/testdev/north/availability"}
    for message in subscriber.json_on("edgeswin/testdev/north/classification"):
        assert list(message) == ["camera", "seq", "ts", "frame_ts", "frame_index", "label",
                                 "score", "topk", "engine", "model", "rung", "degraded",
                                 "latency_ms"]


@pytest.mark.mqtt
def test_home_assistant_gets_a_sensor_per_region_and_loses_a_removed_one(
        tmp_path, broker, subscriber, side_by_side, daemon_factory):
    import json
    import signal

    import jsonschema
    import yaml

    from tests.harness import REPO, Subscriber

    schema = json.loads((REPO / "tests" / "schemas" / "homeassistant_mqtt.schema.json").read_text())
    video, _ = side_by_side
    camera = {"source": str(video), "fps": 2, "loop": True,
              "regions": [{"name": "left", "box": [0, 0, 0.5, 1]},
                          {"name": "right", "box": [0.5, 0, 1, 1]}]}
    ha = Subscriber(broker.port, "homeassistant/#")
    cfg = write_config(tmp_path / "cfg", broker.port, {"sbs": camera},
                       {"homeassistant": {"enabled": True}})
    daemon = daemon_factory(cfg)
    prefix = "homeassistant/sensor/edgeswin_testdev"
    wanted = {f"{prefix}/sbs__left_label/config", f"{prefix}/sbs__right_label/config"}
    assert ha.wait_for(lambda: wanted <= {t for t, _, _ in ha.messages}, 20), daemon.log()
    configs = {t: json.loads(p) for t, p, _ in ha.messages if p and t in wanted}
    for topic, config in configs.items():
        jsonschema.validate(config, schema)
        region = "left" if "left" in topic else "right"
        assert config["state_topic"] == f"edgeswin/testdev/sbs/{region}/state"
        assert subscriber.wait_for(lambda c=config: subscriber.on(c["state_topic"]), 20)
    camera_schema = json.loads(
        (REPO / "tests" / "schemas" / "homeassistant_mqtt_camera.schema.json").read_text())
    pictures = {f"homeassistant/camera/edgeswin_testdev/{n}_snapshot/config"
                for n in ("sbs", "sbs__left", "sbs__right")}
    assert ha.wait_for(lambda: pictures <= {t for t, _, _ in ha.messages}, 20)
    for topic, payload, _ in ha.messages:
        if topic in pictures and payload:
            config = json.loads(payload)
            jsonschema.validate(config, camera_schema)
            assert subscriber.wait_for(lambda c=config: subscriber.on(c["topic"]), 20), topic
    camera["regions"] = camera["regions"][:1]
    (cfg / "cameras" / "sbs.yaml").write_text(yaml.safe_dump(camera))
    seen = len(ha.messages)
    daemon.proc.send_signal(signal.SIGHUP)
    assert ha.wait_for(lambda: (f"{prefix}/sbs__right_label/config", b"") in
                       [(t, p) for t, p, _ in ha.messages[seen:]], 15), daemon.log()
    assert daemon.terminate(timeout=10)[0] == 0
    ha.close()


def test_snapshot_command_draws_the_regions_and_their_labels(tmp_path, side_by_side):
    """`edgeswin snapshot` opens the camera once and shows where its boxes fall and what each
    sees, at full size, so a user can place regions by looking."""
    import subprocess
    import sys

    from tests.harness import REPO

    video, truths = side_by_side
    cfg = write_config(tmp_path / "cfg", 1883, {"sbs": {
        "source": str(video), "regions": [{"name": "left", "box": [0, 0, 0.5, 1]},
                                          {"name": "right", "box": [0.5, 0, 1, 1]}]}})
    out = tmp_path / "frame.jpg"
    run = subprocess.run([sys.executable, "-m", "edgeswin", "snapshot", "-c", str(cfg), "sbs",
                          "-o", str(out)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stderr
    image = cv2.imread(str(out))
    assert image.shape[:2] == (360, 1280)
    lines = run.stdout.splitlines()
    for region in ("left", "right"):
        line = next(line for line in lines if line.strip().startswith(f"{region}:"))
        assert line.split()[1] == truths[region][0], line  # what the first frame shows
    assert (image[5:355, 2:4] > 150).any(axis=-1).mean() > 0.5, "the left box's edge is drawn"
    missing = subprocess.run([sys.executable, "-m", "edgeswin", "snapshot", "-c", str(cfg),
                              "nope"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert missing.returncode == 1 and "no camera 'nope'" in missing.stderr
    assert "sbs" in missing.stderr
