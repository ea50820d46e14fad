"""The TensorRT backend against the test double in tests/fakes (TensorRT and pycuda cannot be
installed here). The double runs the real demo ONNX behind its plan files, so the same frames
must give the same answers through ONNX Runtime and through the TensorRT code path."""

from __future__ import annotations

import shutil
import sys
import threading
import time

import numpy as np
import pytest

from edgeswin.engine import open_engine
from edgeswin.errors import BackendUnavailable, ModelError
from edgeswin.prepare.preprocess import Preprocessor
from edgeswin.scenes import random_scene
from tests.harness import FAKE_CUDA, FAKE_TRT, PRIMARY, REPO, plan, write_config


def frames(n=12, seed=3):
    rng = np.random.default_rng(seed)
    return [random_scene(rng, 1280, 720)[0] for _ in range(n)]


@pytest.mark.parametrize("io_dtype,atol", [("FLOAT", 1e-4), ("HALF", 0.05)])
def test_same_frames_same_answers_as_onnxruntime(tmp_path, trt, io_dtype, atol):
    tensorrt, cuda = trt
    reference = open_engine(PRIMARY)
    engine = open_engine(plan(tmp_path, tensorrt, input_dtype=io_dtype, output_dtype=io_dtype))
    assert engine.backend == "tensorrt" and engine.gpu == "Orin (fake) (sm_87)"
    prep_ref, prep = Preprocessor(reference.info.input), Preprocessor(engine.info.input)
    for image in frames():
        expected = reference.infer(prep_ref(image))
        x = prep(image)
        assert x.dtype == np.dtype(engine.info.input.dtype)
        got = engine.infer(x)
        assert got.dtype == np.float32 and got.shape == expected.shape
        assert got.argmax() == expected.argmax()
        np.testing.assert_allclose(got, expected, atol=atol)
    assert cuda.context_depth() == 0, "the CUDA context is popped after every call"
    assert engine._stream.pageable_copies == 0, "copies go through page-locked buffers"
    engine.close()


def test_infer_from_another_thread_pushes_the_context_there(tmp_path, trt):
    tensorrt, _ = trt
    engine = open_engine(plan(tmp_path, tensorrt))
    x = Preprocessor(engine.info.input)(frames(1)[0])
    results = []
    worker = threading.Thread(target=lambda: results.append(engine.infer(x)))
    worker.start()
    worker.join()
    assert len(results) == 1 and np.allclose(results[0], engine.infer(x))


def test_outputs_are_copies_not_the_reused_buffer(tmp_path, trt):
    tensorrt, _ = trt
    engine = open_engine(plan(tmp_path, tensorrt))
    prep = Preprocessor(engine.info.input)
    a_frame, b_frame = frames(2, seed=11)
    a = engine.infer(prep(a_frame))
    a_copy = a.copy()
    engine.infer(prep(b_frame))
    np.testing.assert_array_equal(a, a_copy)


def test_int8_output_is_dequantized_with_the_metadata_scale(tmp_path, trt):
    tensorrt, _ = trt
    io = [{"name": "input", "mode": "input", "shape": [1, 3, 112, 112], "dtype": "FLOAT"},
          {"name": "logits", "mode": "output", "shape": [1, 6], "dtype": "INT8", "scale": 0.05}]
    with pytest.raises(ModelError, match=r"INT8 output 'logits' needs its dequantization scale"):
        open_engine(plan(tmp_path, tensorrt, io=io))
    engine = open_engine(plan(tmp_path, tensorrt, io=io,
                              meta={"output": {"name": "logits", "scale": 0.05}}))
    reference = open_engine(PRIMARY)
    image = frames(1)[0]
    expected = reference.infer(Preprocessor(reference.info.input)(image))
    got = engine.infer(Preprocessor(engine.info.input)(image))
    assert got.argmax() == expected.argmax()
    np.testing.assert_allclose(got, expected, atol=0.05 / 2 + 1e-6)


def test_several_outputs_need_the_score_output_named(tmp_path, trt):
    tensorrt, _ = trt
    io = [{"name": "input", "mode": "input", "shape": [1, 3, 112, 112], "dtype": "FLOAT"},
          {"name": "logits", "mode": "output", "shape": [1, 6], "dtype": "FLOAT"},
          {"name": "features", "mode": "output", "shape": [1, 6], "dtype": "FLOAT"}]
    with pytest.raises(ModelError, match=r"cannot tell the score output among \['logits', "
                                         r"'features'\]"):
        open_engine(plan(tmp_path, tensorrt, io=io, meta={"output": {"kind": "logits"}}))
    engine = open_engine(plan(tmp_path, tensorrt, io=io, meta={"output": {"name": "logits"}}))
    assert engine.infer(Preprocessor(engine.info.input)(frames(1)[0])).shape == (6,)


@pytest.mark.parametrize("case,match", [
    ("missing", r"cannot read engine file"),
    ("corrupt", r"cannot deserialize this engine on Orin \(fake\) \(sm_87\) .*Version tag "
                r"does not match.*rebuild it on this device"),
    ("version", r"expecting library version 10.3.0.30 got 8.6.2"),
    ("gpu", r"Unsupported SM: 0x72"),
    ("host_code", r"contains host code"),
    ("shape", r"engine input shape \[1, 3, 96, 96\] differs from the metadata's \[1, 3, 112, 112\]"),
    ("dtype", r"engine input type float16 differs from the metadata's float32"),
    ("labels", r"has 6 values but the metadata lists 2 labels"),
    ("name", r"engine inputs \['images'\] do not match the metadata's single input 'input'"),
    ("dynamic", r"dynamic shape \(-1, 3, 112, 112\).*static batch-1"),
    ("onnx", r"the tensorrt backend loads .engine/.plan files"),
])
def test_every_load_error_is_clear(tmp_path, trt, case, match):
    tensorrt, cuda = trt
    good = [{"name": "input", "mode": "input", "shape": [1, 3, 112, 112], "dtype": "FLOAT"},
            {"name": "logits", "mode": "output", "shape": [1, 6], "dtype": "FLOAT"}]
    kw, meta, io = {}, None, good
    if case == "version":
        kw["version"] = "8.6.2"
    elif case == "gpu":
        kw["gpu"] = (7, 2)  # Xavier
    elif case == "host_code":
        kw["host_code"] = True
    elif case == "shape":
        io = [{**good[0], "shape": [1, 3, 96, 96]}, good[1]]
    elif case == "dtype":
        io = [{**good[0], "dtype": "HALF"}, good[1]]
    elif case == "labels":
        meta = {"labels": ["a", "b"]}
    elif case == "name":
        io = [{**good[0], "name": "images"}, good[1]]
    elif case == "dynamic":
        io = [{**good[0], "shape": [-1, 3, 112, 112]}, good[1]]
    path = plan(tmp_path, tensorrt, io=io, meta=meta, **kw)
    if case == "missing":
        path.unlink()
    elif case == "corrupt":
        path.write_bytes(b"\x00" * 64 + path.read_bytes()[64:])
    elif case == "onnx":
        path = tmp_path / "primary.onnx"
        shutil.copy(PRIMARY, path)
        shutil.copy(PRIMARY.with_suffix(".json"), path.with_suffix(".json"))
        with pytest.raises(ModelError, match=match):
            open_engine(path, backend="tensorrt")
        return
    with pytest.raises(ModelError, match=match):
        open_engine(path)
    assert cuda.context_depth() == 0, "a failed load leaves no context pushed"


def test_host_code_runs_only_when_the_config_allows_it(tmp_path, trt):
    tensorrt, _ = trt
    path = plan(tmp_path, tensorrt, host_code=True)
    with pytest.raises(ModelError, match="contains host code"):
        open_engine(path)
    assert open_engine(path, host_code_allowed=True).backend == "tensorrt"


def test_enqueue_failure_is_an_error_not_a_stale_answer(tmp_path, trt):
    from edgeswin.engine.trt import EngineRunError

    tensorrt, cuda = trt
    engine = open_engine(plan(tmp_path, tensorrt))
    x = Preprocessor(engine.info.input)(frames(1)[0])
    tensorrt.faults["enqueue"] = True
    with pytest.raises(EngineRunError, match="refused to enqueue inference.*illegal instruction"):
        engine.infer(x)
    assert cuda.context_depth() == 0
    tensorrt.faults.clear()
    assert engine.infer(x).shape == (6,)  # recovers once the device does


def test_without_tensorrt_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails as on a machine without it
    path = tmp_path / "primary.engine"
    path.write_bytes(b"plan")
    shutil.copy(PRIMARY.with_suffix(".json"), path.with_suffix(".json"))
    with pytest.raises(BackendUnavailable, match="python3-libnvinfer"):
        open_engine(path)


@pytest.mark.mqtt
@pytest.mark.parametrize("preprocess", ["cpu", "gpu"])
def test_daemon_serves_a_tensorrt_rung_like_any_other(tmp_path, trt, broker, subscriber, videos,
                                                      daemon_factory, preprocess):
    """One camera prepared ahead by its capture thread (fps 0), one on the inference thread
    (fps 5); with GPU preprocessing both go through the kernel and answer like the CPU."""
    from edgeswin.demo.assets import read_ground_truth
    from edgeswin.prepare.preprocess_cuda import cached_kernel_path

    tensorrt, _ = trt
    engine_path = plan(tmp_path, tensorrt, input_dtype="HALF", output_dtype="HALF")
    cfg = write_config(tmp_path / "cfg", broker.port,
                       {"north": {"source": str(videos["north"]), "fps": 0},
                        "south": {"source": str(videos["south"]), "fps": 5, "realtime": True}},
                       {"engines": [{"name": "primary", "model": str(engine_path),
                                     "preprocess": preprocess}]})
    kernel = cached_kernel_path(tmp_path / "cfg" / "state" / "kernels", (8, 7))
    kernel.parent.mkdir(parents=True)
    kernel.write_bytes(b"\x7fELF cubin for sm_87")
    daemon = daemon_factory(cfg, env={"PYTHONPATH": f"{FAKE_TRT}:{FAKE_CUDA}:{REPO}"})
    assert daemon.proc.wait(60) == 0, daemon.log()
    engine = subscriber.json_on("edgeswin/testdev/engine")[-1]
    assert engine["backend"] == "tensorrt" and engine["precision"] == "fp16"
    for camera, least in (("north", 40), ("south", 20)):
        msgs = subscriber.json_on(f"edgeswin/testdev/{camera}/classification")
        truth = read_ground_truth(videos[camera])
        agree = sum(m["label"] == truth[m["frame_index"]] for m in msgs) / len(msgs)
        assert len(msgs) > least and agree >= 0.9, (camera, len(msgs), agree)
    chose = "640x360 frames preprocessed on the" in daemon.log()
    assert chose == (preprocess == "gpu"), daemon.log()
    assert "Traceback" not in daemon.log()


@pytest.mark.parametrize("call", ["init", "Device", "Stream"])
def test_cuda_failing_is_a_clear_reason_not_a_crash(tmp_path, trt, monkeypatch, call):
    """No device, a node the unit does not allow, no permission: pycuda raises its own errors;
    the rung is then skipped with a reason that says where to look."""
    from edgeswin.engine.build import build_engine
    from edgeswin.errors import BackendUnavailable

    tensorrt, cuda = trt
    path = plan(tmp_path, tensorrt)

    def refuse(*args, **kw):
        raise cuda.RuntimeError(f"cu{call} failed: operation not permitted")

    monkeypatch.setattr(cuda, call, refuse)
    with pytest.raises(BackendUnavailable, match=rf"CUDA is unusable here: cu{call} failed.*"
                                                 r"DeviceAllow"):
        open_engine(path)
    assert cuda.context_depth() == 0
    if call != "Stream":
        with pytest.raises(BackendUnavailable, match="CUDA is unusable here"):
            build_engine(PRIMARY, tmp_path / "b.engine", "fp32", progress=lambda m: None)
        from edgeswin.engine import build
        assert not build._one_build.locked(), "a failed build lets the next one run"


def test_gpu_preprocessing_without_a_compiler_or_cached_kernel_falls_back_to_the_cpu(
        tmp_path, trt, caplog, monkeypatch):
    """No nvcc (the unit's PATH, a device without the CUDA toolkit) and no cached cubin: the
    rung serves with CPU preprocessing and says why, instead of being lost."""
    from edgeswin.config import EngineRung
    from edgeswin.engine.ladder import activate
    from edgeswin.prepare.preprocess import Preprocessor

    tensorrt, _ = trt
    monkeypatch.setenv("PATH", str(tmp_path / "no-cuda-here"))  # the unit's PATH, no nvcc
    path = plan(tmp_path, tensorrt)
    spec = EngineRung(name="fast", model=str(path), preprocess="gpu")
    active = activate(0, spec, open_engine(path), tmp_path / "kernels")
    assert isinstance(active.preprocess, Preprocessor)
    assert "cannot compile the preprocessing kernel for sm_87 and none is cached in" in caplog.text
    assert "preprocessing on the CPU instead" in caplog.text
    frame = frames(1)[0]
    assert active.engine.infer(active.preprocess(frame)).shape == (6,)


def gpu_rung(tmp_path, tensorrt, **plan_kw):
    """An engine rung with GPU preprocessing, its kernel already compiled for the fake Orin
    (what the install or a first start with nvcc leaves in the state dir)."""
    from edgeswin.config import EngineRung
    from edgeswin.engine.ladder import activate
    from edgeswin.prepare.preprocess_cuda import cached_kernel_path

    kernels = tmp_path / "kernels"
    kernels.mkdir(exist_ok=True)
    cached_kernel_path(kernels, (8, 7)).write_bytes(b"\x7fELF cubin for sm_87")
    path = plan(tmp_path, tensorrt, **plan_kw)
    return activate(0, EngineRung(name="fast", model=str(path), preprocess="gpu"),
                    open_engine(path), kernels)


@pytest.mark.parametrize("integrated", [True, False], ids=["jetson-mapped", "discrete-copy"])
def test_gpu_preprocessing_runs_on_the_preparing_threads_stream_and_inference_waits_for_it(
        tmp_path, trt, monkeypatch, integrated):
    """A capture thread starts the copy and kernel on a stream of its own and hands on a
    DeviceInput at once; the engine's stream waits for it on the GPU. The double runs queued
    work only when a stream is synchronised, so an engine that did not wait would read
    garbage. On a shared-memory GPU the kernel reads the mapped staging buffer (no copy)."""
    from edgeswin.prepare.preprocess_cuda import DeviceInput

    tensorrt, cuda = trt
    monkeypatch.setattr(cuda, "INTEGRATED", integrated)
    reference = open_engine(PRIMARY)
    prep_ref = Preprocessor(reference.info.input)
    active = gpu_rung(tmp_path, tensorrt)
    gpu = active.preprocess.gpu
    assert gpu.mapped is integrated
    for image in frames(6):
        prepared = []
        worker = threading.Thread(target=lambda out=prepared, im=image: out.append(gpu(im)))
        worker.start()
        worker.join(10)
        x = prepared[0]
        assert isinstance(x, DeviceInput) and not x.ready.query(), "the work is still queued"
        got, expected = active.engine.infer(x), reference.infer(prep_ref(image))
        assert got.argmax() == expected.argmax()
        np.testing.assert_allclose(got, expected, atol=0.05)  # exact area vs pre-shrunk
    assert cuda.context_depth() == 0
    slot = gpu._free[0]
    assert (slot.raw is None) is integrated, "mapped: no device copy of the frame"
    active.engine.close()


def test_gpu_preprocessing_slots_are_reused_and_freed_with_the_engine(tmp_path, trt):
    """Frames dropped unused (a newer one replaced them) give their slot back; a frame size
    change replaces a slot's buffers; closing the engine frees every one."""
    tensorrt, cuda = trt
    device_before, mapped_before = set(cuda._memory), set(cuda._mapped)
    active = gpu_rung(tmp_path, tensorrt)
    gpu = active.preprocess.gpu
    big, small = frames(1)[0], frames(1)[0][:360, :640].copy()
    for _ in range(20):
        gpu(big)  # dropped at once, as a superseded frame is
    assert gpu.slots == 1, "each dropped frame gave its slot back"
    held = [gpu(big), gpu(big)]
    assert gpu.slots == 2 and not gpu._free
    del held
    assert gpu.slots == 2 and len(gpu._free) == 2
    assert active.engine.infer(gpu(small)).shape == (6,)
    assert gpu.slots == 2, "a smaller frame fits a slot made for a larger one"
    still_held = gpu(big)
    active.engine.close()  # frees slots in use too: the engine they fed is gone
    assert set(cuda._memory) == device_before and set(cuda._mapped) == mapped_before
    del still_held  # its release after close makes no CUDA call (no context needed)
    assert cuda.context_depth() == 0
    assert gpu(big) is None, "a closed preprocessor takes no more frames"


def _burn(ms: float) -> None:
    """Work that costs this thread `ms` of CPU time (a sleep would cost none)."""
    t0 = time.thread_time()
    while (time.thread_time() - t0) * 1000 < ms:
        pass


class _SlowGpu:
    """The real GPU preprocessor, `ms` of host CPU dearer per frame."""

    def __init__(self, gpu, ms: float):
        self._gpu, self._ms = gpu, ms

    def __getattr__(self, name):
        return getattr(self._gpu, name)

    def __call__(self, image):
        _burn(self._ms)
        return self._gpu(image)


def test_each_frame_size_goes_the_way_that_costs_less_and_a_busy_host_does_not_move_it(
        tmp_path, trt, caplog):
    """The first frames of a size go both ways; the cheaper way stays and is logged. Cost is
    the preparing thread's CPU time (plus the device's for the GPU way), so threads fighting
    for the GIL meanwhile change nothing. When the CPU wins, the GPU's slots are freed. Frames
    smaller than the input always go the CPU way (the kernel only shrinks)."""
    import logging

    from edgeswin.prepare.choose_way import ChoosePerSize
    from edgeswin.prepare.preprocess_cuda import DeviceInput

    caplog.set_level(logging.INFO, logger="edgeswin")
    tensorrt, _ = trt
    active = gpu_rung(tmp_path, tensorrt)
    chooser = active.preprocess
    fast_cpu = Preprocessor(active.engine.info.input)

    def slow_cpu(image):
        _burn(30)
        return fast_cpu(image)

    image = frames(1)[0]
    stop = threading.Event()

    def hog() -> None:  # pure Python: holds the GIL in turns with the preparing thread
        while not stop.is_set():
            sum(range(1000))

    hogs = [threading.Thread(target=hog, daemon=True) for _ in range(4)]
    for t in hogs:
        t.start()
    try:
        slow = ChoosePerSize(chooser.gpu, slow_cpu, "rung 0 (fast)")
        for _ in range(ChoosePerSize.TRIALS + 2):
            x = slow(image)
    finally:
        stop.set()
        for t in hogs:
            t.join()
    assert slow.chosen == {(720, 1280): "gpu"} and isinstance(x, DeviceInput)
    gpu_ms, cpu_ms = slow.costs[(720, 1280)]
    assert cpu_ms >= 30 and gpu_ms < cpu_ms
    assert "rung 0 (fast): 1280x720 frames preprocessed on the GPU" in caplog.text
    slow.RETRIAL_EVERY = 3  # later the trial runs again; the same answer is not logged again
    for _ in range(3 + ChoosePerSize.TRIALS + 2):
        slow(image)
    assert slow.chosen == {(720, 1280): "gpu"}
    assert caplog.text.count("frames preprocessed on the GPU") == 1
    tiny = np.zeros((64, 64, 3), np.uint8)
    assert isinstance(slow(tiny), np.ndarray) and (64, 64) not in slow.chosen
    del x
    assert chooser.gpu.slots > 0

    cpu_wins = ChoosePerSize(_SlowGpu(chooser.gpu, 30), fast_cpu, "rung 0 (fast)")
    for _ in range(ChoosePerSize.TRIALS + 2):
        x = cpu_wins(image)
    assert cpu_wins.chosen == {(720, 1280): "cpu"} and isinstance(x, np.ndarray)
    assert "1280x720 frames preprocessed on the CPU" in caplog.text
    del x
    cpu_wins(image)  # the last trial frame's slot came back meanwhile
    assert chooser.gpu.slots == 0, "the losing way's buffers went back"
    active.engine.close()


def test_identical_runs_choose_identically_and_keep_only_what_the_kernel_prepares(tmp_path,
                                                                                  trt):
    """A camera size the kernel serves (640x360) and one the CPU serves (1080p), with the
    canary's 320x180 images in between: three runs choose the same, the canary's images never
    enter the choice, and the slots sized for 1080p trials are freed, so the device keeps
    only what 640x360 frames need (page-locked and device memory)."""
    import pycuda.driver as cuda

    from edgeswin.prepare.choose_way import ChoosePerSize

    tensorrt, _ = trt
    small = np.full((360, 640, 3), 90, np.uint8)
    large = np.full((1080, 1920, 3), 90, np.uint8)
    canary = np.full((180, 320, 3), 90, np.uint8)
    for run in range(3):
        (tmp_path / f"run{run}").mkdir()
        active = gpu_rung(tmp_path / f"run{run}", tensorrt)
        gpu, cpu = active.preprocess.gpu, active.preprocess.cpu

        def cpu_way(image, cpu=cpu):  # the CPU is slow at the small size only
            _burn(20 if image.shape[0] == 360 else 0)
            return cpu(image)

        chooser = ChoosePerSize(_SlowGpuAbove(gpu, 20, 720 * 1280), cpu_way, "rung 0 (fast)")
        active.preprocess = chooser
        held = []
        for _ in range(ChoosePerSize.TRIALS + 2):
            for image in (small, large, canary):
                held.append(active.preprocess(image) if image is not canary
                            else active.own_preprocess(image))
            held.clear()  # the engine is done with them
        assert chooser.chosen == {(360, 640): "gpu", (1080, 1920): "cpu"}, (run, chooser.costs)
        chooser(small)  # a trial slot still held came back meanwhile
        ctx = gpu._ctx
        ctx.push()
        try:
            free, total = cuda.mem_get_info()
        finally:
            cuda.Context.pop()
        assert 0 < gpu.held_bytes <= 2 * small.nbytes, (run, gpu.held_bytes)
        assert total - free < large.nbytes, "no 1080p slot kept on the device"
        active.engine.close()


class _SlowGpuAbove(_SlowGpu):
    """The kernel's way costs `ms` more for frames larger than `pixels`."""

    def __init__(self, gpu, ms: float, pixels: int):
        super().__init__(gpu, ms)
        self._pixels = pixels

    def __call__(self, image):
        if image.shape[0] * image.shape[1] > self._pixels:
            _burn(self._ms)
        return self._gpu(image)


def test_the_kernel_is_compiled_once_and_later_starts_need_no_compiler(tmp_path, trt,
                                                                         monkeypatch):
    """With nvcc on PATH (install time, or a first start on a machine with the toolkit) the
    cubin is compiled for this GPU and kept; a start without nvcc then loads it."""
    from edgeswin.config import EngineRung
    from edgeswin.engine.ladder import activate
    from edgeswin.prepare.choose_way import ChoosePerSize
    from edgeswin.prepare.preprocess_cuda import cached_kernel_path

    tensorrt, _ = trt
    tools = tmp_path / "cuda-bin"
    tools.mkdir()
    (tools / "nvcc").write_text("#!/bin/sh\necho 'Cuda compilation tools'\n")
    (tools / "nvcc").chmod(0o755)
    path = plan(tmp_path, tensorrt)
    spec = EngineRung(name="fast", model=str(path), preprocess="gpu")
    kernels = tmp_path / "kernels"
    for PATH in (str(tools), str(tmp_path / "no-cuda-here")):
        monkeypatch.setenv("PATH", PATH)
        active = activate(0, spec, open_engine(path), kernels)
        assert isinstance(active.preprocess, ChoosePerSize), PATH
        assert active.engine.infer(active.preprocess(frames(1)[0])).shape == (6,)
        active.engine.close()
    assert [p.name for p in kernels.iterdir()] == [cached_kernel_path(kernels, (8, 7)).name]


def test_the_kernel_compiles_for_orin_and_thor_with_a_real_nvcc(tmp_path):
    """The CUDA source itself, through the nvcc of this machine where there is one (a CUDA
    toolkit needs no GPU): a cubin for Orin (sm_87, JetPack 6 and 7) and, with CUDA 13, for
    Thor (sm_110), holding both entry points the preprocessor looks up."""
    import shutil
    import subprocess

    from edgeswin.prepare.preprocess_cuda import KERNEL

    nvcc = shutil.which("nvcc")
    version = subprocess.run([nvcc, "--version"], capture_output=True, text=True) if nvcc else None
    if version is None or version.returncode != 0:
        pytest.skip("no working nvcc on this machine")
    source = tmp_path / "preprocess.cu"
    source.write_text(KERNEL)
    archs = ["sm_87"] + (["sm_110"] if "release 13" in version.stdout else [])
    for arch in archs:
        out = tmp_path / f"{arch}.cubin"
        run = subprocess.run([nvcc, "--cubin", f"-arch={arch}", "-o", str(out), str(source)],
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        cubin = out.read_bytes()
        assert cubin.startswith(b"\x7fELF")
        assert b"preprocess_f32" in cubin and b"preprocess_f16" in cubin


def test_an_engine_made_on_one_thread_is_freed_on_another_by_close(tmp_path, trt):
    """Background builds load engines on their own thread; the daemon frees them on its own
    at exit or when a build is rejected: every device buffer goes back, the context is
    released, and a second close does nothing."""
    import threading

    tensorrt, cuda = trt
    path = plan(tmp_path, tensorrt)
    before_memory, before_live = dict(cuda._memory), cuda.Context.live
    made = []
    builder = threading.Thread(target=lambda: made.append(open_engine(path)))
    builder.start()
    builder.join(30)
    engine = made[0]
    assert len(cuda._memory) > len(before_memory) and cuda.Context.live == before_live + 1
    engine.close()
    assert cuda._memory.keys() == before_memory.keys(), "device buffers left behind"
    assert cuda.Context.live == before_live and cuda.context_depth() == 0
    engine.close()


def test_an_engine_that_fails_at_its_first_inference_gives_its_gpu_memory_back(tmp_path, trt):
    from edgeswin.errors import EdgeswinError

    tensorrt, cuda = trt
    path = plan(tmp_path, tensorrt)
    before, live = dict(cuda._memory), cuda.Context.live
    tensorrt.faults["enqueue"] = True
    with pytest.raises(EdgeswinError, match="refused to enqueue"):
        open_engine(path)
    assert cuda._memory.keys() == before.keys() and cuda.Context.live == live
