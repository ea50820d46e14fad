"""Building TensorRT engines from ONNX (engine/build.py) against the TensorRT test double: the
plan must load in the TensorRT backend and answer like ONNX Runtime; flags, precision pinning,
Q/DQ handling, timing cache and the cache key follow the documented rules."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeswin.engine import open_engine
from edgeswin.errors import ModelError
from edgeswin.preprocess import Preprocessor
from edgeswin.scenes import random_scene

from .conftest import FAKE_CUDA, FAKE_TRT, PRIMARY, REPO


def copy_primary(tmp_path):
    dst = tmp_path / PRIMARY.name
    shutil.copy(PRIMARY, dst)
    shutil.copy(PRIMARY.with_suffix(".json"), dst.with_suffix(".json"))
    return dst


def tiny_model(tmp_path, name, opset=16, qdq=False):
    """A small classifier over an 8x8 input whose normalisation is decomposed (Pow, ReduceMean)
    as LayerNorm is before opset 17; optionally with Q/DQ on its input."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((3, 6)).astype(np.float32), "w"),
             numpy_helper.from_array(np.array(2.0, np.float32), "two")]
    nodes = []
    x = "input"
    if qdq:
        inits += [numpy_helper.from_array(np.array(0.02, np.float32), "s"),
                  numpy_helper.from_array(np.array(0, np.int8), "z")]
        nodes += [helper.make_node("QuantizeLinear", ["input", "s", "z"], ["q"], name="q_in"),
                  helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"], name="dq_in")]
        x = "dq"
    axes = [2, 3]
    nodes += [helper.make_node("ReduceMean", [x], ["mean"], axes=axes, keepdims=0, name="mean"),
              helper.make_node("Pow", ["mean", "two"], ["sq"], name="pow"),
              helper.make_node("MatMul", ["sq", "w"], ["logits"], name="head")]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 6])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    path.with_suffix(".json").write_text(json.dumps({
        "name": name, "labels": list("abcdef"),
        "input": {"name": "input", "shape": [1, 3, 8, 8], "layout": "NCHW", "dtype": "float32"}}))
    return path


def test_fp16_build_loads_and_answers_like_onnxruntime(tmp_path, trt):
    from edgeswin.engine.build import build_engine, sha256

    tensorrt, _ = trt
    onnx_path = copy_primary(tmp_path)
    out, cache = tmp_path / "primary-fp16.engine", tmp_path / "timing.cache"
    messages = []
    meta = build_engine(onnx_path, out, "fp16", timing_cache=cache, progress=messages.append)
    assert messages[0].startswith("parsing swin-demo-112.onnx (TensorRT 10.3.0, Orin (fake))")
    header = tensorrt.plan_header(out)
    assert header["flags"] == ["FP16"] and not header["strongly_typed"]
    assert header["pinned_fp32"] == [], "opset 17 has LayerNormalization: nothing to pin"
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar == meta and sidecar["precision"] == "fp16"
    assert sidecar["tensorrt"]["onnx_sha256"] == sha256(onnx_path)
    assert sidecar["tensorrt"]["compute_capability"] == "8.7"
    assert sidecar["tensorrt"]["timing_cache_reused"] is False and cache.stat().st_size > 0
    assert build_engine(onnx_path, out, "fp16", timing_cache=cache,
                        progress=lambda m: None)["tensorrt"]["timing_cache_reused"] is True

    engine, reference = open_engine(out), open_engine(PRIMARY)
    rng = np.random.default_rng(9)
    for _ in range(8):
        image = random_scene(rng, 640, 360)[0]
        x = Preprocessor(reference.info.input)(image)
        np.testing.assert_allclose(engine.infer(x), reference.infer(x), atol=1e-4)


def test_before_opset_17_layernorm_parts_stay_fp32(tmp_path, trt):
    from edgeswin.engine.build import build_engine

    tensorrt, _ = trt
    meta = build_engine(tiny_model(tmp_path, "tiny16"), tmp_path / "t.engine", "fp16",
                        progress=lambda m: None)
    header = tensorrt.plan_header(tmp_path / "t.engine")
    assert sorted(header["pinned_fp32"]) == ["mean", "pow"]  # not the MatMul head
    assert "OBEY_PRECISION_CONSTRAINTS" in header["flags"]
    assert meta["tensorrt"]["layernorm_layers_kept_fp32"] == 2
    build_engine(tiny_model(tmp_path, "tiny17", opset=17), tmp_path / "u.engine", "fp16",
                 progress=lambda m: None)
    assert tensorrt.plan_header(tmp_path / "u.engine")["pinned_fp32"] == []


def test_int8_needs_qdq_and_uses_strong_typing_on_10x_flags_on_86(tmp_path, trt, monkeypatch):
    from edgeswin.engine.build import build_engine

    tensorrt, _ = trt
    with pytest.raises(ModelError, match="INT8 needs an explicitly quantized.*edgeswin quantize"):
        build_engine(tiny_model(tmp_path, "plain"), tmp_path / "p.engine", "int8")
    qdq = tiny_model(tmp_path, "qdq", opset=17, qdq=True)
    build_engine(qdq, tmp_path / "q10.engine", "int8", progress=lambda m: None)
    header = tensorrt.plan_header(tmp_path / "q10.engine")
    assert header["strongly_typed"] and header["flags"] == []
    monkeypatch.setattr(tensorrt, "__version__", "8.6.2")
    build_engine(qdq, tmp_path / "q86.engine", "int8", progress=lambda m: None)
    header = tensorrt.plan_header(tmp_path / "q86.engine")
    assert not header["strongly_typed"] and header["flags"] == ["FP16", "INT8"]


def test_parser_errors_are_listed_and_nothing_is_written(tmp_path, trt):
    from edgeswin.engine.build import build_engine

    onnx_path = copy_primary(tmp_path)
    onnx_path.write_bytes(onnx_path.read_bytes()[:4000])
    out = tmp_path / "x.engine"
    with pytest.raises(ModelError, match="ONNX parser refused it:\n  In node -1"):
        build_engine(onnx_path, out, "fp16", progress=lambda m: None)
    assert not out.exists() and not list(tmp_path.glob(".x.engine.tmp*"))


def test_cache_key_changes_with_everything_that_invalidates_a_plan(tmp_path, trt):
    from edgeswin.engine.build import cache_key

    a = copy_primary(tmp_path)
    ident = {"tensorrt": "10.3.0", "gpu": "Orin", "compute_capability": "8.7"}
    key = cache_key(a, "fp16", ident)
    assert key == cache_key(a, "fp16", dict(ident))
    assert key != cache_key(a, "int8", ident)
    assert key != cache_key(a, "fp16", {**ident, "tensorrt": "10.4.0"})
    assert key != cache_key(a, "fp16", {**ident, "gpu": "Xavier", "compute_capability": "7.2"})
    meta = json.loads(a.with_suffix(".json").read_text())
    meta["input"]["dtype"] = "float16"
    a.with_suffix(".json").write_text(json.dumps(meta))
    assert key != cache_key(a, "fp16", ident), "input spec is part of the key"
    a.write_bytes(a.read_bytes() + b"\0")
    assert cache_key(a, "fp16", ident) != key


def test_build_engine_command(tmp_path):
    onnx_path = copy_primary(tmp_path)
    env = {**os.environ, "PYTHONPATH": f"{FAKE_TRT}:{FAKE_CUDA}:{REPO}"}
    run = subprocess.run([sys.executable, "-m", "edgeswin", "build-engine", str(onnx_path),
                          "--precision", "fp16"], capture_output=True, text=True, env=env,
                         cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "swin-demo-112-fp16.engine").is_file()
    assert "built " in run.stdout and "building fp16 engine" in run.stdout
    missing = subprocess.run([sys.executable, "-m", "edgeswin", "build-engine",
                              str(onnx_path)], capture_output=True, text=True, cwd=REPO,
                             timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert missing.returncode == 1 and "needs TensorRT and pycuda" in missing.stderr


@pytest.mark.mqtt
def test_daemon_builds_the_engine_in_the_background_then_reuses_it(tmp_path, broker, subscriber,
                                                                   videos, daemon_factory):
    from .conftest import SMALL, write_config

    onnx_path = copy_primary(tmp_path)
    cfg = write_config(tmp_path / "cfg", broker.port,
                       {"north": {"source": str(videos["north"]), "loop": True, "fps": 10}},
                       {"engines": [{"name": "primary", "model": str(onnx_path),
                                     "backend": "tensorrt", "precision": "fp16"},
                                    {"name": "small", "model": str(SMALL)}]})
    env = {"PYTHONPATH": f"{FAKE_TRT}:{FAKE_CUDA}:{REPO}"}
    daemon = daemon_factory(cfg, env=env)
    engine_topic, north = "edgeswin/testdev/engine", "edgeswin/testdev/north/classification"
    assert subscriber.wait_for(lambda: any(m["rung"] == 0 for m in subscriber.json_on(engine_topic)),
                               30), daemon.log()
    first, switched = subscriber.json_on(engine_topic)[0], subscriber.json_on(engine_topic)[-1]
    # It started at once on the small rung while the primary engine was being built...
    assert first["rung"] == 1 and first["builds"]["primary"]["state"] == "building"
    # ... and moved up when the engine was built and agreed with ONNX Runtime.
    assert switched["backend"] == "tensorrt" and switched["from"] == 1
    assert switched["reason"].startswith("engine ready: primary (fp16) built on this device")
    assert switched["builds"]["primary"]["state"] == "ready"
    assert "agrees with ONNX Runtime on every check frame" in switched["builds"]["primary"]["detail"]
    assert subscriber.wait_for(lambda: subscriber.json_on(north)[-1]["engine"] == "primary", 10)
    assert daemon.terminate(timeout=10)[0] == 0
    seqs = [m["seq"] for m in subscriber.json_on(north)]
    assert seqs == list(range(1, len(seqs) + 1))
    plans = list((tmp_path / "cfg" / "state" / "engines").glob("swin-demo-112-fp16-*.engine"))
    assert len(plans) == 1

    # A restart reuses the cached engine: rung 0 from the first message, no build.
    subscriber.messages.clear()
    again = daemon_factory(cfg, env=env)
    assert subscriber.wait_for(lambda: subscriber.on(engine_topic), 20), again.log()
    start = subscriber.json_on(engine_topic)[0]
    assert start["rung"] == 0 and start["backend"] == "tensorrt" and "builds" not in start
    assert "cached TensorRT engine" in again.log() and "engine build" not in again.log()
    assert again.terminate(timeout=10)[0] == 0


@pytest.mark.parametrize("with_tensorrt", [False, True])
def test_selftest_prints_a_verdict_with_or_without_tensorrt(with_tensorrt):
    path = f"{FAKE_TRT}:{FAKE_CUDA}:{REPO}" if with_tensorrt else str(REPO)
    run = subprocess.run([sys.executable, "-m", "edgeswin", "probe", "--selftest"],
                         capture_output=True, text=True, cwd=REPO, timeout=180,
                         env={**os.environ, "PYTHONPATH": path})
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "edgeswin self-test" and lines[-1] == "verdict: PASS"
    assert any(line.startswith("Jetson L4T: ") for line in lines)
    onnx_line = next(line for line in lines if line.startswith("ONNX Runtime: swin-demo-112"))
    assert "24/24 scenes right (ok)" in onnx_line or "23/24" in onnx_line
    if with_tensorrt:
        trt_line = next(line for line in lines if line.startswith("TensorRT 10.3.0: fp16"))
        assert "top-1 agreement with ONNX Runtime 100% (ok)" in trt_line
        assert any(line.startswith("CUDA driver ") for line in lines)
    else:
        assert "TensorRT: not installed here: engine build and comparison skipped" in lines
