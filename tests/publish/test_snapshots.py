"""Snapshots: the picture behind each state change, retained on MQTT and kept in a bounded
folder; a disk that cannot take them costs the folder only."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgeswin.publish.snapshot import ImageStore
from tests.classify.test_regions import side_by_side  # noqa: F401 (fixture)
from tests.harness import Subscriber, write_config

ROOT = "edgeswin/testdev"


def decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG OpenCV can read"
    return image


def regions_camera(video) -> dict:
    return {"source": str(video), "fps": 5, "regions": [
        {"name": "left", "box": [0, 0, 0.5, 1]}, {"name": "right", "box": [0.5, 0, 1, 1]}]}


@pytest.mark.mqtt
def test_every_state_change_sends_its_picture_and_keeps_it(tmp_path, broker, subscriber,
                                                           side_by_side, daemon_factory):  # noqa: F811
    video, _ = side_by_side
    cfg = write_config(tmp_path / "cfg", broker.port, {"sbs": regions_camera(video)},
                       {"snapshots": {"min_interval_s": 0, "max_width": 320, "quality": 70,
                                      "keep_files": 6}})
    daemon = daemon_factory(cfg)
    assert daemon.proc.wait(120) == 0, daemon.log()
    with subscriber._lock:
        log = list(zip(subscriber.messages, subscriber.arrivals))
    changes = [(t, at) for (t, _, _), at in log if t in (f"{ROOT}/sbs/left/state",
                                                         f"{ROOT}/sbs/right/state")]
    pictures = [at for (t, _, _), at in log if t == f"{ROOT}/sbs/snapshot"]
    assert len(changes) >= 4, "the video changes scene several times"
    for topic, at in changes:  # each change's picture follows within a second
        assert any(0 <= p - at <= 1.0 for p in pictures), topic
        region = topic.split("/")[-2]
        assert any(0 <= p - at <= 1.0 for (t, _, _), p in log
                   if t == f"{ROOT}/sbs/{region}/snapshot"), topic
    late = Subscriber(broker.port, f"{ROOT}/sbs/#")  # retained: a late viewer sees the last ones
    assert late.wait_for(lambda: late.on(f"{ROOT}/sbs/snapshot"), 10)
    whole = decode(late.on(f"{ROOT}/sbs/snapshot")[-1])
    assert whole.shape[:2] == (90, 320), "scaled down to max_width, aspect kept"
    late.close()
    region = decode(subscriber.on(f"{ROOT}/sbs/left/snapshot")[-1])
    assert region.shape[1] == 320 and region.shape[0] == 180  # the 640x360 half, scaled
    kept = sorted((tmp_path / "cfg" / "state" / "snapshots" / "sbs").glob("*.jpg"))
    assert 0 < len(kept) <= 6 and len(changes) * 2 > 6, "the store stayed within its bound"
    for path in kept:
        decode(path.read_bytes())


@pytest.mark.mqtt
def test_snapshots_are_rate_limited_and_a_full_disk_costs_only_the_folder(
        tmp_path, broker, subscriber, side_by_side, daemon_factory):  # noqa: F811
    video, truths = side_by_side
    cfg = write_config(tmp_path / "cfg", broker.port, {"sbs": regions_camera(video)},
                       {"snapshots": {"min_interval_s": 3}})
    state = tmp_path / "cfg" / "state"
    state.mkdir(parents=True)
    (state / "snapshots").write_text("a file where the folder should be")  # mkdir fails
    daemon = daemon_factory(cfg)
    assert daemon.proc.wait(120) == 0, daemon.log()
    pictures = subscriber.on(f"{ROOT}/sbs/snapshot")
    seconds = len(truths["left"]) / 15
    assert 1 <= len(pictures) <= seconds / 3 + 1, len(pictures)
    assert daemon.log().count("images not kept in") == 1, "said once, not per picture"
    left = subscriber.json_on(f"{ROOT}/sbs/left/classification")
    assert [m["seq"] for m in left] == list(range(1, len(left) + 1)) and len(left) > 20


def test_the_store_drops_the_oldest_to_stay_within_count_and_bytes(tmp_path):
    store = ImageStore(tmp_path, keep_files=4, keep_bytes=2500)
    for i in range(10):
        store.add("cam", f"{i:02d}.jpg", bytes(600))
    names = sorted(p.name for p in store.files())
    assert names == ["06.jpg", "07.jpg", "08.jpg", "09.jpg"]
    store.add("cam", "big.jpg", bytes(1500))
    assert sum(p.stat().st_size for p in store.files()) <= 2500
    assert store.add("cam", "huge.jpg", bytes(3000)) is None  # larger than the whole budget


def test_regions_that_change_inside_one_interval_each_get_their_crop(tmp_path):
    """Two regions change while the camera waits out min_interval_s: the next picture carries
    a crop for each, not only for the last one."""
    import time
    from types import SimpleNamespace

    from edgeswin.classify.schedule import region_runtimes
    from edgeswin.classify.stats import CameraStats
    from edgeswin.config import CameraConfig, SnapshotConfig
    from edgeswin.publish.snapshot import Snapshots
    from edgeswin.records import Frame

    cfg = CameraConfig(name="c", source="rtsp://cam/stream", regions=[
        {"name": "left", "box": [0, 0, 0.5, 1]}, {"name": "right", "box": [0.5, 0, 1, 1]}])
    left, right = region_runtimes(cfg, ("x",), CameraStats())
    cam = SimpleNamespace(name="c", regions=[left, right])
    shots = Snapshots(SnapshotConfig(min_interval_s=0.3), "root", tmp_path)
    frame = Frame("c", np.zeros((90, 160, 3), np.uint8), 1, 0, time.time(), 0.0)
    first = [m.topic for m in shots.after(cam, left, frame, True)]
    assert first == ["root/c/snapshot", "root/c/left/snapshot"]
    assert shots.after(cam, right, frame, True) == [] and shots.after(cam, left, frame, True) == []
    time.sleep(0.35)
    later = sorted(m.topic for m in shots.after(cam, right, frame, False))
    assert later == ["root/c/left/snapshot", "root/c/right/snapshot", "root/c/snapshot"]
    assert shots.after(cam, right, frame, False) == [], "nothing pending any more"


def test_a_request_for_live_pictures_is_bounded_whatever_it_says(tmp_path):
    """`<root>/watching` comes from anything that may publish there: a request holds at most a
    minute, and a hostile one (NaN, a list, bytes) holds the default 10 s, never forever."""
    import time

    from edgeswin.config import SnapshotConfig
    from edgeswin.publish.snapshot import Snapshots

    snaps = Snapshots(SnapshotConfig(), "edgeswin/dev", tmp_path)
    for payload, most in ((b'{"for_s": 1e9}', 60), (b'{"for_s": NaN}', 10), (b"[1]", 10),
                          (b"\xff", 10), (b'{"for_s": -5}', 0), (b'{"for_s": Infinity}', 60)):
        snaps.watched("edgeswin/dev/watching", payload)
        left = snaps._watched_until - time.monotonic()
        assert left <= most + 0.1 and left == left, (payload, left)
