"""What can be checked on a real NVIDIA GPU without TensorRT, in one run; prints and writes JSON.

1. NVML temperatures through `sensors.ThermalSensor(nvml=True)` (nvidia-ml-py).
2. The TensorRT backend's CUDA side (real pycuda: context push/pop, page-locked buffers, device
   buffers, async copies on its own stream) under the TensorRT test double of tests/fakes, whose
   network runs the demo ONNX on the bytes in real device memory: same answers as ONNX Runtime?
3. The GPU preprocessing kernel against the CPU `Preprocessor` on 1920x1080 frames (max abs
   difference for each input layout/dtype), staged through a device copy and through mapped
   page-locked memory (what a Jetson uses), and its time to a ready input against the CPU's,
   at 1080p and 4K.
4. A GPU-fed engine (`gpu_preprocessor` -> DeviceInput -> `infer_device`) vs CPU
   preprocessing: same answers, and the inference thread's time per frame when another
   thread prepared the frame (as the capture threads do).

Run on a GPU machine with pycuda installed: python3 -m benchmarks.gpu_check --out report.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "fakes" / "trt"))  # the TensorRT double only

PRIMARY = REPO / "models" / "swin-demo-112.onnx"


def timed(fn, n: int) -> dict:
    for _ in range(5):
        fn()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return {"median_ms": round(statistics.median(samples), 3),
            "p95_ms": round(samples[int(0.95 * (len(samples) - 1))], 3), "n": n}


def check_nvml() -> dict:
    from edgeswin.govern.sensors import ThermalSensor

    sensor = ThermalSensor("/nonexistent", ["gpu"], nvml=True)
    return {"zones": [z.type for z in sensor.zones], "readings_c": sensor.read(),
            "trips": {z.type: [(t.type, t.temp_c) for t in z.trips] for z in sensor.zones},
            "throttling_before_85": sensor.throttling_before(85.0)}


def make_plan(tmp: Path, dtype: str) -> Path:
    import tensorrt

    path = tmp / f"primary-{dtype.lower()}.engine"
    tensorrt.build_plan(PRIMARY, path, [
        {"name": "input", "mode": "input", "shape": [1, 3, 112, 112], "dtype": dtype},
        {"name": "logits", "mode": "output", "shape": [1, 6], "dtype": dtype}])
    meta = json.loads(PRIMARY.with_suffix(".json").read_text())
    meta["input"]["dtype"] = {"FLOAT": "float32", "HALF": "float16"}[dtype]
    path.with_suffix(".json").write_text(json.dumps(meta))
    return path


def check_backend(frames: list[np.ndarray], tmp: Path) -> dict:
    from edgeswin.engine import open_engine
    from edgeswin.prepare.preprocess import Preprocessor

    reference = open_engine(PRIMARY)
    prep = Preprocessor(reference.info.input)
    inputs = [prep(f) for f in frames]
    expected = [reference.infer(x) for x in inputs]
    out = {}
    for dtype in ("FLOAT", "HALF"):
        engine = open_engine(make_plan(tmp, dtype))
        eprep = Preprocessor(engine.info.input)
        got = [engine.infer(eprep(f)) for f in frames]
        in_thread: list[np.ndarray] = []
        x0 = eprep(frames[0])
        worker = threading.Thread(target=lambda e=engine, x=x0, sink=in_thread: sink.append(e.infer(x)))
        worker.start()
        worker.join()
        out[dtype] = {
            "gpu": engine.gpu,
            "top1_agreement": float(np.mean([g.argmax() == e.argmax()
                                             for g, e in zip(got, expected)])),
            "max_abs_diff": float(max(np.abs(g - e).max() for g, e in zip(got, expected))),
            "other_thread_same": bool(np.allclose(in_thread[0], got[0])),
        }
        engine.close()
    return out


def check_preprocess(frames: list[np.ndarray]) -> dict:
    import pycuda.driver as cuda

    from edgeswin.prepare.preprocess import Preprocessor
    from edgeswin.prepare.preprocess_cuda import CudaPreprocessor
    from edgeswin.records import InputSpec

    base = json.loads(PRIMARY.with_suffix(".json").read_text())["input"]
    specs = {
        "demo112_nchw_rgb_f32": InputSpec("input", 112, 112, "NCHW", "float32", "RGB",
                                          base["scale"], tuple(base["mean"]), tuple(base["std"])),
        "demo112_nchw_rgb_f16": InputSpec("input", 112, 112, "NCHW", "float16", "RGB",
                                          base["scale"], tuple(base["mean"]), tuple(base["std"])),
        "224_nhwc_bgr_f32": InputSpec("input", 224, 224, "NHWC", "float32", "BGR"),
        "160x96_nchw_rgb_f32": InputSpec("input", 96, 160, "NCHW", "float32", "RGB",
                                         base["scale"], tuple(base["mean"]), tuple(base["std"])),
    }
    uhd = cv2.resize(frames[0], (3840, 2160), interpolation=cv2.INTER_LINEAR)
    ctx = cuda.Device(0).retain_primary_context()
    ctx.push()
    results = {}
    try:
        for name, spec in specs.items():
            cpu = Preprocessor(spec)
            dtype = np.dtype(spec.dtype)
            host = cuda.pagelocked_empty(spec.shape, dtype)
            entry = {}
            for staging in ("copy", "mapped"):
                gpu = CudaPreprocessor(spec, ctx, mapped=staging == "mapped")
                worst = 0.0
                for frame in frames:
                    prepared = gpu(frame)
                    gpu.wait(prepared)
                    cuda.memcpy_dtoh(host, prepared.address)
                    worst = max(worst, float(np.abs(host.astype(np.float32)
                                                    - cpu(frame).astype(np.float32)).max()))
                entry[staging] = {
                    "max_abs_diff_vs_cpu": worst,
                    "1080p_gpu_ready": timed(lambda gpu=gpu: gpu.wait(gpu(frames[0])), 200),
                    "4k_gpu_ready": timed(lambda gpu=gpu: gpu.wait(gpu(uhd)), 100)}
                gpu.close()
            entry["1080p_cpu"] = timed(lambda cpu=cpu: cpu(frames[0]), 200)
            entry["4k_cpu"] = timed(lambda cpu=cpu: cpu(uhd), 100)
            results[name] = entry
            host.base.free()
    finally:
        cuda.Context.pop()
        ctx.detach()
    return results


def check_gpu_fed(frames: list[np.ndarray], tmp: Path) -> dict:
    """Frames prepared on another thread (the capture threads' job), then inferred: what the
    inference thread spends per frame, for the GPU-fed and the CPU-fed engine."""
    from edgeswin.engine import open_engine
    from edgeswin.prepare.choose_way import ChoosePerSize
    from edgeswin.prepare.preprocess import Preprocessor

    engine = open_engine(make_plan(tmp, "FLOAT"))
    cpu = Preprocessor(engine.info.input)
    gpu = engine.gpu_preprocessor()
    choose = ChoosePerSize(gpu, cpu, "gpu_check")
    uhd = cv2.resize(frames[0], (3840, 2160), interpolation=cv2.INTER_LINEAR)
    for _ in range(ChoosePerSize.TRIALS + 1):
        choose(frames[0])
        choose(uhd)
    via_cpu = [engine.infer(cpu(f)) for f in frames]
    via_gpu = [engine.infer_device(gpu(f)) for f in frames]

    def ahead(prepare) -> list:
        out: list = []
        worker = threading.Thread(target=lambda: out.extend(prepare(f) for f in frames))
        worker.start()
        worker.join()
        return out

    def infer_all(inputs, infer) -> dict:
        samples = []
        for x in inputs:
            t0 = time.perf_counter()
            infer(x)
            samples.append((time.perf_counter() - t0) * 1000)
        samples.sort()
        return {"median_ms": round(statistics.median(samples), 3), "n": len(samples)}

    for _ in range(3):  # warm
        engine.infer_device(gpu(frames[0]))
    cpu_ready = ahead(cpu)
    gpu_ready = ahead(gpu)  # at most MAX_SLOTS frames in flight
    out = {"top1_agreement": float(np.mean([a.argmax() == b.argmax()
                                            for a, b in zip(via_cpu, via_gpu)])),
           "max_abs_logit_diff": float(max(np.abs(a - b).max() for a, b in zip(via_cpu, via_gpu))),
           "chosen_per_size": {f"{w}x{h}": way for (h, w), way in choose.chosen.items()},
           "inference_thread_cpu_prepared_ahead": infer_all(cpu_ready, engine.infer),
           "inference_thread_gpu_prepared_ahead": infer_all(
               [x for x in gpu_ready if x is not None], engine.infer_device),
           "gpu_slots_used": gpu.slots}
    del gpu_ready
    engine.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--frames", type=int, default=40)
    args = parser.parse_args()
    import pycuda.driver as cuda

    from edgeswin.scenes import random_scene

    cuda.init()
    rng = np.random.default_rng(5)
    frames = [random_scene(rng, 1920, 1080)[0] for _ in range(args.frames)]
    report = {"gpu": cuda.Device(0).name(), "cuda_driver": cuda.get_driver_version(),
              "cuda_version": ".".join(map(str, cuda.get_version())), "frames": len(frames)}
    tmp = Path(tempfile.mkdtemp())
    try:
        for name, check in (("nvml", check_nvml),
                            ("tensorrt_backend_real_pycuda", lambda: check_backend(frames, tmp)),
                            ("gpu_preprocess", lambda: check_preprocess(frames)),
                            ("gpu_fed_engine", lambda: check_gpu_fed(frames, tmp))):
            try:
                report[name] = check()
            except Exception as exc:  # report every check, even after one fails
                report[name] = {"error": f"{exc.__class__.__name__}: {exc}"}
            print(name, json.dumps(report[name], indent=1), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
