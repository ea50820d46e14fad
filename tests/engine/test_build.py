"""Building TensorRT engines from ONNX (engine/build.py) against the TensorRT test double: the
plan must load in the TensorRT backend and answer like ONNX Runtime; flags, precision pinning,
Q/DQ handling, timing cache and the cache key follow the documented rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeswin.engine import open_engine
from edgeswin.errors import ModelError
from edgeswin.prepare.preprocess import Preprocessor
from edgeswin.scenes import random_scene
from tests.harness import FAKE_CUDA, FAKE_TRT, PRIMARY, REPO, Subscriber, copy_primary, plan


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
    from edgeswin.engine.build import build_engine
    from edgeswin.files import sha256

    tensorrt, _ = trt
    onnx_path = copy_primary(tmp_path)
    out, cache = tmp_path / "primary-fp16.engine", tmp_path / "timing.cache"
    messages = []
    meta = build_engine(onnx_path, out, "fp16", timing_cache=cache, progress=messages.append)
    assert messages[0].startswith(f"parsing swin-demo-112.onnx (TensorRT {tensorrt.__version__}, "
                                  "Orin (fake))")
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


def test_int8_needs_a_qdq_model(tmp_path, trt):
    from edgeswin.engine.build import build_engine

    with pytest.raises(ModelError, match="INT8 needs an explicitly quantized.*edgeswin quantize"):
        build_engine(tiny_model(tmp_path, "plain"), tmp_path / "p.engine", "int8")


# What each release's builder is told, per precision: (network flags, builder flags).
EXPECTED = {
    8: {"fp32": (False, []), "fp16": (False, ["FP16"]), "int8": (False, ["FP16", "INT8"])},
    10: {"fp32": (False, []), "fp16": (False, ["FP16"]), "int8": (True, [])},
    11: {"fp32": (True, []), "fp16": (True, []), "int8": (True, [])},
}


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_every_release_builds_every_precision_its_own_way(tmp_path, trt_each, precision):
    """8.6: explicit batch and precision flags; 10.x: precision flags, strongly typed for Q/DQ;
    11.x: always strongly typed, FP16 from an FP16 copy of the ONNX. The double refuses any
    member its release lacks, so a 10.x-only call on 11.x fails here as it would there."""
    from edgeswin.engine.build import build_engine

    tensorrt, _ = trt_each
    major = int(tensorrt.__version__.split(".")[0])
    source = tiny_model(tmp_path, "q", opset=17, qdq=True) if precision == "int8" \
        else copy_primary(tmp_path)
    out = tmp_path / f"m-{precision}.engine"
    meta = build_engine(source, out, precision, progress=lambda m: None)
    header = tensorrt.plan_header(out)
    strongly, flags = EXPECTED[major][precision]
    assert (header["strongly_typed"], header["flags"]) == (strongly, flags)
    assert meta["tensorrt"]["tensorrt"] == tensorrt.__version__  # build number included
    fp16_copy = major >= 11 and precision == "fp16"
    assert header["onnx_float16"] is fp16_copy
    if fp16_copy:
        built_from = tmp_path / meta["tensorrt"]["built_from"]
        assert built_from.is_file() and built_from.with_suffix(".json").is_file()
        assert json.loads(built_from.with_suffix(".json").read_text())["float16_of"][
            "top1_agreement"] == 1.0
    if precision == "int8":
        return
    engine, reference = open_engine(out), open_engine(PRIMARY)
    rng = np.random.default_rng(9)
    for _ in range(8):
        x = Preprocessor(reference.info.input)(random_scene(rng, 640, 360)[0])
        ours, theirs = engine.infer(x), reference.infer(x)
        assert ours.argmax() == theirs.argmax()
        np.testing.assert_allclose(ours, theirs, atol=5e-3 if fp16_copy else 1e-4)


def test_before_opset_17_layernorm_parts_stay_fp32_on_every_release(tmp_path, trt_each):
    from edgeswin.engine.build import build_engine

    tensorrt, _ = trt_each
    build_engine(tiny_model(tmp_path, "tiny16"), tmp_path / "t.engine", "fp16",
                 progress=lambda m: None)
    header = tensorrt.plan_header(tmp_path / "t.engine")
    if tensorrt.MAJOR >= 11:  # no precision per layer: the FP16 copy keeps them FP32 itself
        assert header["pinned_fp32"] == [] and header["onnx_float16"]
        copy = next(tmp_path.glob("tiny16-fp16-*.onnx"))
        kept = {n.name for n in onnx.load(str(copy)).graph.node if n.op_type in ("ReduceMean", "Pow")}
        assert kept == {"mean", "pow"}
    else:
        assert sorted(header["pinned_fp32"]) == ["mean", "pow"]
        assert "OBEY_PRECISION_CONSTRAINTS" in header["flags"]


def test_a_release_without_a_member_raises_attribute_error_like_the_real_module(trt_each):
    tensorrt, _ = trt_each
    layer = tensorrt.ILayer("x", "Pow")
    if tensorrt.MAJOR >= 11:
        assert not hasattr(tensorrt.BuilderFlag, "FP16")
        assert not hasattr(tensorrt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH")
        with pytest.raises(AttributeError, match="precision"):
            layer.precision = tensorrt.float32
    else:
        assert tensorrt.BuilderFlag.FP16 is not None
        layer.precision = tensorrt.float32
    # Strongly typed networks came with 10.0.
    assert hasattr(tensorrt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED") == (tensorrt.MAJOR >= 10)


def test_the_timing_cache_is_per_release_and_gpu_and_a_bad_one_is_replaced(tmp_path, trt, caplog):
    from edgeswin.engine.build import build_engine, timing_cache_path

    tensorrt, _ = trt
    ident = {"tensorrt": "10.3.0.30", "gpu": "Orin (fake)", "compute_capability": "8.7"}
    path = timing_cache_path(tmp_path, ident)
    assert path.name == "timing-10.3.0.30-orin-fake-sm87.cache"
    assert timing_cache_path(tmp_path, {**ident, "tensorrt": "10.3.0.31"}) != path
    assert timing_cache_path(tmp_path, {**ident, "compute_capability": "7.2"}) != path
    source = tiny_model(tmp_path, "tiny", opset=17)
    for bad in (b"\x00garbage", json.dumps({"fake_timing_cache": 9, "version": "8.6.1.6",
                                             "compute_capability": [8, 7]}).encode()):
        path.write_bytes(bad)
        meta = build_engine(source, tmp_path / "t.engine", "fp16", timing_cache=path,
                            progress=lambda m: None)
        assert meta["tensorrt"]["timing_cache_reused"] is False
        assert "corrupt or from another TensorRT or GPU" in caplog.text
        caplog.clear()
        saved = json.loads(path.read_bytes())  # replaced by one of this release and GPU
        assert saved["version"] == tensorrt.__version__


def test_a_plan_is_never_left_without_its_sidecar(tmp_path, trt, monkeypatch):
    from edgeswin.engine import build

    real = build.write_atomic

    def disk_full_for_sidecars(path, data):
        if path.suffix == ".json":
            raise ModelError(f"cannot write {path}: No space left on device")
        real(path, data)

    monkeypatch.setattr(build, "write_atomic", disk_full_for_sidecars)
    out = tmp_path / "t.engine"
    with pytest.raises(ModelError, match="No space left"):
        build.build_engine(tiny_model(tmp_path, "tiny", opset=17), out, "fp16",
                           progress=lambda m: None)
    assert not out.exists()


def test_builds_run_one_at_a_time(tmp_path, trt, monkeypatch):
    import threading
    import time

    from edgeswin.engine import build

    running, most, said = [0], [0], []
    real = build._build

    def slow_build(*args, **kw):
        running[0] += 1
        most[0] = max(most[0], running[0])
        time.sleep(0.3)
        try:
            return real(*args, **kw)
        finally:
            running[0] -= 1

    monkeypatch.setattr(build, "_build", slow_build)
    source = tiny_model(tmp_path, "tiny", opset=17)
    threads = [threading.Thread(target=build.build_engine, args=(source, tmp_path / f"{i}.engine",
                                                                  "fp16"),
                                kwargs={"progress": said.append}) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert most[0] == 1 and all((tmp_path / f"{i}.engine").is_file() for i in range(3))
    assert "waiting for another engine build to finish" in said


def test_one_tensorrt_logger_serves_every_builder_and_runtime(tmp_path, trt, caplog):
    from edgeswin.engine.build import build_engine
    from edgeswin.engine.trt import process_logger

    tensorrt, _ = trt
    build_engine(tiny_model(tmp_path, "tiny", opset=17), tmp_path / "t.engine", "fp16",
                 progress=lambda m: None)
    logger = process_logger(tensorrt)
    assert logger is process_logger(tensorrt)
    assert tensorrt._LOGGER_OF_CONFIG is logger  # the builder got the process's logger
    stale = plan(tmp_path, tensorrt, version="8.6.2")
    with pytest.raises(ModelError):
        open_engine(stale)
    # The message reached the daemon's log naming what it concerns.
    assert "TensorRT [engine " in caplog.text and "expecting library version" in caplog.text


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
    from tests.harness import SMALL, write_config

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
    # ... said once: the build's progress follows after a few seconds, not as a second copy
    # (a build done within those seconds is a switch, `from` set, and not a copy).
    said = [(json.loads(p), at) for (t, p, _), at in zip(subscriber.messages,
                                                         subscriber.arrivals) if t == engine_topic]
    assert len([m for m, at in said if at - said[0][1] < 2.0 and m["from"] is None]) == 1, \
        [m for m, _ in said[:3]]
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
    assert list((tmp_path / "cfg" / "state" / "engines").glob("timing-10.3.0.30-*.cache")), \
        "the first build on a fresh state dir keeps its timing cache"
    assert "timing cache not saved" not in daemon.log()

    # A restart reuses the cached engine: rung 0 from the first message, no build.
    subscriber.messages.clear()
    again = daemon_factory(cfg, env=env)
    assert subscriber.wait_for(lambda: subscriber.on(engine_topic), 20), again.log()
    start = subscriber.json_on(engine_topic)[0]
    assert start["rung"] == 0 and start["backend"] == "tensorrt" and "builds" not in start
    assert "cached TensorRT engine" in again.log() and "engine build" not in again.log()
    assert again.terminate(timeout=10)[0] == 0

    # A JetPack upgrade brings another TensorRT: the cached plan does not match it, so the small
    # rung serves while the plan is rebuilt, and the primary comes back when it is ready.
    subscriber.messages.clear()
    upgraded = daemon_factory(cfg, env={**env, "EDGESWIN_FAKE_TRT_VERSION": "10.16.0"})
    assert subscriber.wait_for(lambda: any(m["rung"] == 0 for m in subscriber.json_on(
        engine_topic)), 30), upgraded.log()
    first, back = subscriber.json_on(engine_topic)[0], subscriber.json_on(engine_topic)[-1]
    assert first["rung"] == 1 and first["builds"]["primary"]["state"] == "building"
    assert back["backend"] == "tensorrt" and back["builds"]["primary"]["state"] == "ready"
    assert upgraded.terminate(timeout=10)[0] == 0
    assert len(list((tmp_path / "cfg" / "state" / "engines").glob(
        "swin-demo-112-fp16-*.engine"))) == 2, "one plan per TensorRT release"


def test_a_build_reports_the_builders_phases_and_stops_when_cancelled(tmp_path, trt_each,
                                                                       monkeypatch):
    """TensorRT 10 and later report their phases through an IProgressMonitor: the outer ones
    reach `progress`, and a cancel stops the build at its next step with nothing written.
    8.6 has no monitor: its progress is edgeswin's own stages, and a cancel stops it before
    the build starts."""
    import threading

    from edgeswin.engine.build import BuildCancelled, build_engine

    tensorrt, _ = trt_each
    onnx_path = copy_primary(tmp_path)
    said: list[str] = []
    build_engine(onnx_path, tmp_path / "a.engine", "fp16", progress=said.append)
    phases = [m for m in said if m.startswith("TensorRT: Building engine")]
    if tensorrt.MAJOR >= 10:
        assert phases[0] == "TensorRT: Building engine (0/4)", said
    else:
        assert phases == [] and not hasattr(tensorrt, "IProgressMonitor")

    cancel = threading.Event()
    out = tmp_path / "b.engine"
    if tensorrt.MAJOR >= 10:
        def cancel_at_the_first_phase(message: str) -> None:
            if message.startswith("TensorRT: Building engine"):
                cancel.set()

        with pytest.raises(BuildCancelled, match="build cancelled"):
            build_engine(onnx_path, out, "fp16", progress=cancel_at_the_first_phase,
                         cancel=cancel)
    cancel.set()
    with pytest.raises(BuildCancelled, match="cancelled before it started"):
        build_engine(onnx_path, out, "fp16", progress=lambda m: None, cancel=cancel)
    assert not out.exists() and not out.with_suffix(".json").exists()
    from edgeswin.engine import build
    assert not build._one_build.locked()


@pytest.mark.mqtt
def test_a_long_build_shows_its_progress_and_a_stop_cancels_it(tmp_path, broker, subscriber,
                                                                videos, daemon_factory):
    """A build that takes minutes on a Jetson: its phase and elapsed time appear on the
    retained engine topic while the small rung serves, and SIGTERM stops it promptly, leaving
    no plan behind."""
    from tests.harness import SMALL, write_config

    onnx_path = copy_primary(tmp_path)
    cfg = write_config(tmp_path / "cfg", broker.port,
                       {"north": {"source": str(videos["north"]), "loop": True, "fps": 5}},
                       {"engines": [{"name": "primary", "model": str(onnx_path),
                                     "backend": "tensorrt", "precision": "fp16"},
                                    {"name": "small", "model": str(SMALL)}]})
    env = {"PYTHONPATH": f"{FAKE_TRT}:{FAKE_CUDA}:{REPO}", "FAKE_TRT_BUILD_STEP_S": "4"}
    daemon = daemon_factory(cfg, env=env)
    topic = "edgeswin/testdev/engine"

    def stepping():
        return [m["builds"]["primary"] for m in subscriber.json_on(topic)
                if m["builds"]["primary"]["step"].startswith("TensorRT: Building engine (")]

    north = "edgeswin/testdev/north/classification"
    assert subscriber.wait_for(lambda: len(stepping()) >= 2 and subscriber.on(north), 30), \
        daemon.log()  # the small rung serves meanwhile
    report = stepping()[-1]
    assert report["state"] == "building" and report["elapsed_s"] > 0
    code, _ = daemon.terminate(timeout=15)
    assert code == 0, daemon.log()
    assert "engine build: " in daemon.log() and "build cancelled" in daemon.log()
    assert "Traceback" not in daemon.log()
    # The cancellation was asked for: nothing about it is an error.
    assert " ERROR " not in daemon.log(), daemon.log()
    assert not list((tmp_path / "cfg" / "state" / "engines").glob("*.engine"))
    # A subscriber arriving later reads that the build stopped, not that it still runs.
    late = Subscriber(broker.port, topic)
    try:
        assert late.wait_for(lambda: late.json_on(topic), 5)
        assert late.json_on(topic)[-1]["builds"]["primary"]["state"] == "cancelled"
    finally:
        late.close()


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
        trt_line = next(line for line in lines if line.startswith("TensorRT 10.3.0.30: fp16"))
        assert "top-1 agreement with ONNX Runtime 100% (ok)" in trt_line
        assert any(line.startswith("CUDA driver ") for line in lines)
    else:
        assert "TensorRT: not installed here: engine build and comparison skipped" in lines


def test_a_dla_rung_builds_for_its_core_with_gpu_fallback_where_the_release_has_dla(
        tmp_path, trt_each):
    from edgeswin.engine.build import build_engine

    tensorrt, _ = trt_each
    said = []
    meta = build_engine(copy_primary(tmp_path), tmp_path / "d.engine", "fp16", dla_core=1,
                        progress=said.append)
    header = tensorrt.plan_header(tmp_path / "d.engine")
    if tensorrt.MAJOR >= 11:  # no DLA in 11.0-11.3: the GPU, and a warning that says so
        assert header["dla_core"] is None and meta["tensorrt"]["dla"] is None
        assert any("offer 0 DLA core(s): building for the GPU" in m for m in said)
        return
    assert header["dla_core"] == 1 and "GPU_FALLBACK" in header["flags"]
    dla = meta["tensorrt"]["dla"]
    assert dla["core"] == 1 and dla["layers_on_dla"] > 0
    assert {"MATRIX_MULTIPLY", "NORMALIZATION"} <= dla["gpu_fallback"].keys()  # Swin's
    assert any(m.startswith("DLA core 1: ") and "on the GPU: " in m for m in said)


def test_a_device_without_dla_builds_for_the_gpu_and_says_so(tmp_path, trt, monkeypatch,
                                                              caplog):
    from edgeswin.engine.build import build_engine, cached_engine_path

    tensorrt, _ = trt
    monkeypatch.setattr(tensorrt, "DLA_CORES", 0)  # an Orin Nano
    meta = build_engine(copy_primary(tmp_path), tmp_path / "n.engine", "fp16", dla_core=0,
                        progress=lambda m: None)
    assert meta["tensorrt"]["dla"] is None and tensorrt.plan_header(tmp_path / "n.engine")[
        "dla_core"] is None
    assert "DLA core 0 asked for" in caplog.text
    with pytest.raises(ModelError, match="DLA has no FP32"):
        build_engine(copy_primary(tmp_path), tmp_path / "f.engine", "fp32", dla_core=0)
    ident = {"tensorrt": "10.3.0.30", "gpu": "Orin", "compute_capability": "8.7"}
    gpu = cached_engine_path(tmp_path, PRIMARY, "fp16", ident)
    dla = cached_engine_path(tmp_path, PRIMARY, "fp16", ident, 0)
    assert gpu != dla and "-fp16-dla0-" in dla.name


@pytest.mark.parametrize("rung, message", [
    ({"precision": "fp32", "dla_core": 0}, "dla_core needs precision fp16 or int8"),
    ({"backend": "onnxruntime", "dla_core": 1}, "dla_core needs an .onnx model with backend: "
                                                "tensorrt"),
    ({"dla_core": 2}, "dla_core"),
])
def test_dla_settings_are_checked_with_file_and_line(tmp_path, rung, message):
    from edgeswin.config import load_config
    from edgeswin.errors import ConfigError
    from tests.harness import write_config

    spec = {"name": "dla", "model": str(PRIMARY), "backend": "tensorrt", **rung}
    d = write_config(tmp_path, 1883, {"cam": {"source": "x.mp4"}}, {"engines": [spec]})
    (tmp_path / "x.mp4").write_bytes(b"")
    with pytest.raises(ConfigError, match=rf"edgeswin.yaml:\d+: engines.0.*{message}"):
        load_config(d)
