"""The model toolchain: eval on a labelled folder, INT8 Q/DQ quantization with its validator
and accuracy gate, and the quantized model through the engine builder (TensorRT double)."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeswin.demo.assets import make_image_folder
from edgeswin.errors import EdgeswinError
from edgeswin.toolchain.evaluate import evaluate
from edgeswin.toolchain.quantize import qdq_violations, quantize
from tests.harness import REPO, SMALL


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("toolchain")
    return (make_image_folder(root / "calib", 6, seed=1, width=320, height=180),
            make_image_folder(root / "eval", 12, seed=2, width=320, height=180))


def test_eval_reports_accuracy_agreement_and_latency(folders):
    _, held_out = folders
    result = evaluate(SMALL, held_out, reference=SMALL)
    assert result.images == 72 and result.top1 >= 0.9 and result.top5 == 1.0
    assert result.agreement == 1.0 and 0 < result.latency_ms_median <= result.latency_ms_p95


def test_eval_names_folders_that_are_not_labels(tmp_path):
    (tmp_path / "circle").mkdir()
    (tmp_path / "dog").mkdir()
    with pytest.raises(EdgeswinError, match=r"sub-folders \['dog'\] are not labels"):
        evaluate(SMALL, tmp_path)


def test_quantize_validates_gates_and_builds(tmp_path, folders, trt):
    from edgeswin.engine.build import build_engine

    calibration, held_out = folders
    out = tmp_path / "small-int8.onnx"
    fp32, int8 = quantize(SMALL, calibration, out, held_out, progress=lambda m: None)
    assert out.is_file() and qdq_violations(out) == []
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["precision"] == "int8" and meta["quantization"]["method"] == "minmax"
    assert int8.agreement >= 0.98 and abs(int8.top1 - fp32.top1) <= 0.03
    assert out.stat().st_size < 0.6 * SMALL.stat().st_size
    # The Q/DQ model is what TensorRT 10 builds strongly typed.
    tensorrt, _ = trt
    build_engine(out, tmp_path / "small-int8.engine", "int8", progress=lambda m: None)
    assert tensorrt.plan_header(tmp_path / "small-int8.engine")["strongly_typed"]


def test_the_gate_refuses_a_broken_calibration_and_writes_nothing(tmp_path, folders):
    _, held_out = folders
    dark = tmp_path / "dark"
    dark.mkdir()
    for i in range(12):  # a camera with its lens cap on: calibration ranges of nothing
        cv2.imwrite(str(dark / f"{i}.png"), np.zeros((180, 320, 3), np.uint8))
    out = tmp_path / "broken-int8.onnx"
    with pytest.raises(EdgeswinError, match=r"agreement with FP32 is .* < --min-agreement "
                                            r"98.00%.*nothing written"):
        quantize(SMALL, dark, out, held_out, progress=lambda m: None)
    assert not out.exists() and not list(tmp_path.glob(".broken-int8*"))


def test_validator_names_what_tensorrt_would_refuse(tmp_path):
    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    scale = numpy_helper.from_array(np.array([0.1, 0.2, 0.1, 0.3], np.float32), "scale")
    zero = numpy_helper.from_array(np.array([0, 3, 0, 0], np.uint8), "zero")
    nodes = [helper.make_node("QuantizeLinear", ["w", "scale", "zero"], ["q"], name="qw"),
             helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["y"], name="dqw")]
    graph = helper.make_graph(nodes, "bad", [], [helper.make_tensor_value_info(
        "y", TensorProto.FLOAT, [4, 3])], [w, scale, zero])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, str(tmp_path / "bad.onnx"))
    problems = qdq_violations(tmp_path / "bad.onnx")
    assert "qw: zero point type uint8, TensorRT needs int8" in problems
    assert "qw: non-zero zero point (TensorRT supports symmetric only)" in problems
    assert "qw: per-channel scales without an axis attribute" in problems


def test_quantize_and_eval_commands(tmp_path, folders):
    calibration, held_out = folders
    out = tmp_path / "cli-int8.onnx"
    run = subprocess.run([sys.executable, "-m", "edgeswin", "--log-level", "error", "quantize",
                          str(SMALL), "--calibration", str(calibration), "--eval-data",
                          str(held_out), "-o", str(out)], capture_output=True, text=True,
                         cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "validated: signed INT8, symmetric" in run.stdout and out.is_file()
    ev = subprocess.run([sys.executable, "-m", "edgeswin", "eval", str(out), "--data",
                         str(held_out), "--reference", str(SMALL)], capture_output=True,
                        text=True, cwd=REPO, timeout=300)
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["agreement"] >= 0.98
