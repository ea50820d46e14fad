"""Preprocess, engine and postprocess on their own, with the real demo models."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from edgeswin.classify.postprocess import UNKNOWN, CameraPostprocessor, PublishGate, softmax
from edgeswin.config import CameraConfig
from edgeswin.engine import open_engine, read_model_info
from edgeswin.errors import ModelError
from edgeswin.prepare.preprocess import Preprocessor, shrink_area
from edgeswin.records import InputSpec
from edgeswin.scenes import LABELS, random_scene
from tests.harness import PRIMARY, REPO, SMALL, write_config


def camera(**kw) -> CameraConfig:
    return CameraConfig.model_validate({"name": "c", "source": "rtsp://h/x", **kw})


def test_preprocess_layout_colour_and_normalisation():
    spec = InputSpec(name="input", height=4, width=6, color="RGB", mean=(0.5, 0.25, 0.0),
                     std=(0.5, 0.5, 1.0))
    bgr = np.zeros((8, 12, 3), np.uint8)
    bgr[..., 0] = 255  # pure blue
    x = Preprocessor(spec)(bgr)
    assert x.shape == (1, 3, 4, 6) and x.dtype == np.float32 and x.flags.c_contiguous
    # RGB order: R=0 -> (0-0.5)/0.5 = -1, G=0 -> -0.5, B=1 -> (1-0)/1 = 1
    np.testing.assert_allclose(x[0, :, 0, 0], [-1.0, -0.5, 1.0], atol=1e-6)
    nhwc = Preprocessor(InputSpec(name="i", height=4, width=6, layout="NHWC", color="BGR"))(bgr)
    assert nhwc.shape == (1, 4, 6, 3) and nhwc[0, 0, 0, 0] == pytest.approx(1.0)


@pytest.mark.parametrize("frame", [np.full((50, 80), 128, np.uint8),
                                   np.full((50, 80, 4), 128, np.uint8),
                                   np.full((50, 80, 1), 128, np.uint8)])
def test_preprocess_accepts_grey_and_bgra(frame):
    x = Preprocessor(InputSpec(name="i", height=8, width=8))(frame)
    assert x.shape == (1, 3, 8, 8) and np.allclose(x, 128 / 255)


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 3, 3), (3, 2000, 3), (3000, 4000, 3),
                                   (113, 111), (35, 61, 4)])
def test_preprocess_takes_frames_of_odd_sizes(shape):
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 255, shape, np.uint8)
    spec = read_model_info(PRIMARY).input
    x = Preprocessor(spec)(frame)
    assert x.shape == (1, 3, 112, 112) and x.dtype == np.float32 and np.isfinite(x).all()


@pytest.mark.parametrize("size", [(1920, 1080), (1280, 720), (704, 576), (640, 360),
                                  (2560, 1440), (300, 120)])
@pytest.mark.parametrize("target", [(112, 112), (224, 224), (64, 64)])
def test_the_fast_resize_stays_within_a_level_of_exact_inter_area(size, target):
    """The model was trained on INTER_AREA from the full frame: the fast steps must hand it
    nearly the same pixels, at every frame size and input size."""
    rng = np.random.default_rng(3)
    for _ in range(5):
        image, _ = random_scene(rng, *size)
        got = shrink_area(image, *target)
        exact = cv2.resize(image, target, interpolation=cv2.INTER_AREA)
        assert got.shape == exact.shape
        # About one level at most (1.5 at 1280x720 to 64x64); a plain bilinear resize, which
        # aliases, strays by 3 to 7.
        assert np.abs(got.astype(np.float32) - exact).mean() < 2.0


@pytest.mark.parametrize("model", [PRIMARY, SMALL])
def test_real_model_classifies_rendered_scenes(model):
    engine = open_engine(model)
    prep = Preprocessor(engine.info.input)
    post = CameraPostprocessor(camera(topk=3), engine.info.labels)
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(60):
        image, label = random_scene(rng, 1280, 720)  # the frame size of the demo video
        got, score, topk = post.apply(engine.infer(prep(image)))
        hits += got == LABELS[label]
        assert len(topk) == 3 and topk[0][1] >= topk[1][1] >= topk[2][1]
    assert hits >= 57, f"{hits}/60"


def test_postprocess_threshold_smoothing_and_topk():
    post = CameraPostprocessor(camera(topk=2, threshold=0.6, smoothing={"window": 2}),
                               ("a", "b", "c"))
    label, score, topk = post.apply(np.log(np.array([0.7, 0.2, 0.1])))
    assert label == "a" and score == pytest.approx(0.7, abs=1e-4) and [t[0] for t in topk] == ["a", "b"]
    label, score, _ = post.apply(np.log(np.array([0.1, 0.8, 0.1])))  # mean: a .4, b .5
    assert label == UNKNOWN and score == pytest.approx(0.5, abs=1e-4)
    assert softmax(np.array([1000.0, 1000.0])).tolist() == [0.5, 0.5]  # no overflow


def test_postprocess_ties_and_broken_scores():
    post = CameraPostprocessor(camera(topk=3, threshold=0.3, smoothing={"window": 2}),
                               ("a", "b", "c"))
    label, score, topk = post.apply(np.zeros(3, np.float32))  # a tie keeps the model's order
    assert [t[0] for t in topk] == ["a", "b", "c"] and label == "a"
    assert score == pytest.approx(1 / 3, abs=1e-4)
    for bad in (np.array([np.nan, 1.0, 0.0]), np.array([np.inf, 0.0, 0.0], np.float32)):
        # An engine gone wrong (NaN, an FP16 overflow): unknown at 0, valid JSON numbers, and
        # the smoothing window is not poisoned for the frames after it.
        assert post.apply(bad) == (UNKNOWN, 0.0, [(UNKNOWN, 0.0)])
    label, score, _ = post.apply(np.log(np.array([0.1, 0.8, 0.1], np.float32)))
    assert label == "b" and score == pytest.approx((1 / 3 + 0.8) / 2, abs=1e-4)


def test_publish_gate_modes():
    every, change = PublishGate(camera()), PublishGate(camera(publish={"mode": "change"}))
    interval = PublishGate(camera(publish={"mode": "interval", "interval_s": 1.0}))
    labels = ["a", "a", "b", "b", "a"]
    assert [every.should_publish(x, t) for t, x in enumerate(labels)] == [True] * 5
    assert [change.should_publish(x, t) for t, x in enumerate(labels)] == [True, False, True,
                                                                            False, True]
    assert [interval.should_publish("a", t) for t in (0, 0.5, 1.0, 1.2, 2.1)] == [
        True, False, True, False, True]


def _copy_model(tmp_path, src=PRIMARY):
    dst = tmp_path / src.name
    shutil.copy(src, dst)
    shutil.copy(src.with_suffix(".json"), dst.with_suffix(".json"))
    return dst


def test_corrupt_model_is_a_clear_error(tmp_path):
    model = _copy_model(tmp_path)
    model.write_bytes(model.read_bytes()[:5000])
    with pytest.raises(ModelError, match="cannot load it"):
        open_engine(model)


def test_metadata_problems_are_clear_errors(tmp_path):
    model = _copy_model(tmp_path)
    meta = json.loads(model.with_suffix(".json").read_text())
    model.with_suffix(".json").unlink()
    with pytest.raises(ModelError, match="metadata file .* is missing"):
        read_model_info(model)
    model.with_suffix(".json").write_text(json.dumps({**meta, "labels": ["x", "y"]}))
    with pytest.raises(ModelError, match="6 outputs but the metadata lists 2 labels"):
        open_engine(model)
    wrong = {**meta, "input": {**meta["input"], "shape": [1, 3, 96, 96]}}
    model.with_suffix(".json").write_text(json.dumps(wrong))
    with pytest.raises(ModelError, match="input shape"):
        open_engine(model)


def test_run_exits_1_naming_every_unusable_model_at_its_key(tmp_path, videos):
    a, b = _copy_model(tmp_path, PRIMARY), _copy_model(tmp_path, SMALL)
    a.write_bytes(b"not onnx")
    b.with_suffix(".json").unlink()
    cfg = write_config(tmp_path / "cfg", 1, {"north": {"source": str(videos["north"])}},
                       {"engines": [{"name": "primary", "model": str(a)},
                                    {"name": "small", "model": str(b)}]})
    run = subprocess.run([sys.executable, "-m", "edgeswin", "run", "-c", str(cfg)],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    # What would stop the ladder stops the config check first, each rung at its own line.
    assert run.returncode == 1
    assert "2 config error(s)" in run.stderr, run.stderr
    assert "engines.0.model:" in run.stderr and "not a readable ONNX model" in run.stderr
    assert "engines.1.model:" in run.stderr and f"{b.with_suffix('.json').name} is missing" \
        in run.stderr


@pytest.mark.parametrize("sidecar,message", [
    (json.dumps({"name": "caf\xe9"}).encode("latin-1").replace(b"\\u00e9", b"\xe9"),
     "model metadata is not UTF-8 text"),
    (json.dumps({"labels": "x"}).encode("utf-16"), "model metadata is not UTF-8 text"),
    (b"[" * 100_000, "nested too deeply"),
    (b"[1, 2]", "expected a JSON object"),
    (None, "not a regular file"),  # a FIFO: opening it would wait for a writer forever
])
def test_a_broken_sidecar_is_named_by_check_at_its_rung_and_skipped(tmp_path, videos, sidecar, message):
    bad = _copy_model(tmp_path, PRIMARY)
    if sidecar is None:
        bad.with_suffix(".json").unlink()
        os.mkfifo(bad.with_suffix(".json"))
    else:
        bad.with_suffix(".json").write_bytes(sidecar)
    with pytest.raises(ModelError, match=message):
        read_model_info(bad)
    cfg = write_config(tmp_path / "cfg", 1, {"north": {"source": str(videos["north"])}},
                       {"engines": [{"name": "primary", "model": str(bad)},
                                    {"name": "small", "model": str(SMALL)}]})
    # `check` (the unit's ExecStartPre) names it at its line and passes, since the other rung
    # serves; a FIFO does not make it wait.
    run = subprocess.run([sys.executable, "-m", "edgeswin", "check", "-c", str(cfg)],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stdout.splitlines() if "engines.0.model:" in line]
    assert len(lines) == 1 and message in lines[0] and "edgeswin.yaml:" in lines[0] and \
        lines[0].startswith("  rung 0 (primary) is skipped: "), run.stdout
