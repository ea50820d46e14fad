"""Hard examples: frames the model was unsure about, kept in the labelled layout that
`edgeswin eval` reads, bounded, off by default."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from edgeswin.classify.schedule import region_runtimes
from edgeswin.classify.stats import CameraStats
from edgeswin.config import CameraConfig, HardExamplesConfig
from edgeswin.publish.hard_examples import HardExamples
from edgeswin.publish.snapshot import ImageStore
from edgeswin.records import Frame
from tests.harness import PRIMARY, REPO, write_config


def payload(label: str, score: float) -> dict:
    other = "ring" if label != "ring" else "star"
    return {"label": label, "score": score, "frame_ts": "2026-11-26T00:00:00.000+00:00",
            "frame_index": 0, "engine": "primary", "model": "swin-demo-112", "rung": 0,
            "topk": [{"label": label, "score": score}, {"label": other, "score": 1 - score}]}


def test_a_label_that_flips_back_keeps_the_frame_of_the_brief_label(tmp_path):
    cfg = CameraConfig(name="door", source="rtsp://cam/stream", regions=[
        {"name": "porch", "box": [0, 0, 0.5, 1]}])
    cam = SimpleNamespace(name="door")
    region = region_runtimes(cfg, ("star", "ring"), CameraStats())[0]
    hard = HardExamples(HardExamplesConfig(enabled=True, below_score=0.3, flip_s=5),
                        ImageStore(tmp_path, 10, 10_000_000))
    frames = [np.full((40, 80, 3), v, np.uint8) for v in (10, 200, 30)]
    kept = [hard.after(cam, region, Frame("door", f, i + 1, i, 0.0, 0.0), payload(label, 0.9))
            for i, (f, label) in enumerate(zip(frames, ("star", "ring", "star")))]
    assert kept == [0, 0, 1]
    (image,) = (tmp_path / "ring").glob("*-door-porch.jpg")
    sidecar = json.loads(image.with_suffix(".json").read_text())
    assert sidecar["why"].startswith("star -> ring -> star within")
    assert sidecar["region"] == "porch" and sidecar["topk"][0]["label"] == "ring"
    import cv2
    saved = cv2.imread(str(image))
    assert saved.shape[:2] == (40, 40) and abs(int(saved.mean()) - 200) < 3, "the ring frame's crop"
    off = HardExamples(HardExamplesConfig(), ImageStore(tmp_path / "off", 10, 10_000_000))
    assert off.after(cam, region, Frame("door", frames[0], 9, 0, 0.0, 0.0), payload("star", 0.1)) == 0


@pytest.mark.mqtt
def test_unsure_frames_land_where_eval_reads_them(tmp_path, broker, subscriber, videos,
                                                  daemon_factory):
    cfg = write_config(tmp_path / "cfg", broker.port,
                       {"north": {"source": str(videos["north"]), "fps": 0, "realtime": False}},
                       {"hard_examples": {"enabled": True, "below_score": 0.999,
                                          "min_interval_s": 0, "keep_files": 12}})
    daemon = daemon_factory(cfg)
    assert daemon.proc.wait(120) == 0, daemon.log()
    hard = tmp_path / "cfg" / "state" / "hard"
    images = sorted(hard.glob("*/*.jpg"))
    assert len(images) == 12, "bounded: the oldest were dropped"
    assert sorted(hard.glob("*/*.json")) == [p.with_suffix(".json") for p in images]
    run = subprocess.run([sys.executable, "-m", "edgeswin", "eval", str(PRIMARY), "--data",
                          str(hard)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)
    # Every kept frame sits under the label the model gave it: eval agrees with the folders
    # (up to what JPEG re-encoding changes).
    assert report["images"] == 12 and report["top1"] >= 0.9, report
