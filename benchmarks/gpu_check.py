"""What can be checked on a real NVIDIA GPU without TensorRT, in one run; prints and writes JSON.

1. NVML temperatures through `sensors.ThermalSensor(nvml=True)` (nvidia-ml-py).
2. The TensorRT backend's CUDA side (real pycuda: context push/pop, page-locked buffers, device
   buffers, async copies on its own stream) under the TensorRT test double of tests/fakes, whose
   network runs the demo ONNX on the bytes in real device memory: same answers as ONNX Runtime?
3. The GPU preprocessing kernel against the CPU `Preprocessor` on 1920x1080 frames (max abs
   difference for each input layout/dtype) and its time against the CPU's.
4. Frames straight to scores (`infer_image`: kernel -> engine input buffer) vs CPU preprocessing.

Run on a GPU machine with pycuda installed: python3 benchmarks/gpu_check.py --out report.json
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

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
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
    from edgeswin.sensors import ThermalSensor

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
    from edgeswin.preprocess import Preprocessor

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

    from edgeswin.preprocess import Preprocessor
    from edgeswin.preprocess_cuda import CudaPreprocessor
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
    ctx = cuda.Device(0).retain_primary_context()
    ctx.push()
    results = {}
    try:
        stream = cuda.Stream()
        for name, spec in specs.items():
            cpu, gpu = Preprocessor(spec), CudaPreprocessor(spec)
            dtype = np.dtype(spec.dtype)
            host = cuda.pagelocked_empty(spec.shape, dtype)
            dest = cuda.mem_alloc(host.nbytes)
            worst = 0.0
            for frame in frames:
                gpu(frame, int(dest), stream)
                cuda.memcpy_dtoh_async(host, dest, stream)
                stream.synchronize()
                worst = max(worst, float(np.abs(host.astype(np.float32)
                                                - cpu(frame).astype(np.float32)).max()))
            frame = frames[0]

            def run_gpu(frame=frame, gpu=gpu, dest=dest):
                gpu(frame, int(dest), stream)
                stream.synchronize()

            start, end = cuda.Event(), cuda.Event()
            kernel_ms = []
            for _ in range(50):
                start.record(stream)
                gpu(frame, int(dest), stream)
                end.record(stream)
                end.synchronize()
                kernel_ms.append(end.time_since(start))
            results[name] = {"max_abs_diff_vs_cpu": worst,
                             "cpu": timed(lambda frame=frame, cpu=cpu: cpu(frame), 200),
                             "gpu_frame_copy_plus_kernel": timed(run_gpu, 200),
                             "gpu_event_timed_median_ms": round(statistics.median(kernel_ms), 3)}
            dest.free()
    finally:
        cuda.Context.pop()
        ctx.detach()
    return results


def check_infer_image(frames: list[np.ndarray], tmp: Path) -> dict:
    from edgeswin.engine import open_engine
    from edgeswin.preprocess import Preprocessor

    engine = open_engine(make_plan(tmp, "FLOAT"))
    engine.enable_gpu_preprocess()
    prep = Preprocessor(engine.info.input)
    via_cpu = [engine.infer(prep(f)) for f in frames]
    via_gpu = [engine.infer_image(f) for f in frames]
    out = {"top1_agreement": float(np.mean([a.argmax() == b.argmax()
                                            for a, b in zip(via_cpu, via_gpu)])),
           "max_abs_logit_diff": float(max(np.abs(a - b).max() for a, b in zip(via_cpu, via_gpu))),
           "cpu_preprocess_then_infer": timed(lambda: engine.infer(prep(frames[0])), 100),
           "infer_image": timed(lambda: engine.infer_image(frames[0]), 100)}
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
                            ("infer_image", lambda: check_infer_image(frames, tmp))):
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
