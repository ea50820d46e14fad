"""On a GPU machine with pycuda: the preprocessing kernel is compiled once and cached, then
loaded from the cache with no nvcc on PATH. Prints one JSON line per run:

  python3 -m benchmarks.kernel_cache_check CACHE_DIR      # nvcc on PATH: compiles and caches
  PATH=<no cuda> python3 -m benchmarks.kernel_cache_check CACHE_DIR   # loads the cached cubin
  PATH=<no cuda> python3 -m benchmarks.kernel_cache_check EMPTY_DIR   # KernelUnavailable

max_abs_diff_vs_cpu compares the kernel's output with the CPU path on one random 1080p frame
(noise is the worst case for two different resize filters).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from edgeswin.engine import read_model_info
from edgeswin.prepare.preprocess import Preprocessor
from edgeswin.prepare.preprocess_cuda import CudaPreprocessor, KernelUnavailable

MODEL = Path(__file__).resolve().parent.parent / "models" / "swin-demo-112.onnx"


def main(cache: Path) -> dict:
    import pycuda.driver as cuda

    cuda.init()
    ctx = cuda.Device(0).retain_primary_context()
    ctx.push()
    report = {"nvcc_on_path": any((Path(p) / "nvcc").exists()
                                  for p in os.environ.get("PATH", "").split(":"))}
    try:
        spec = read_model_info(MODEL).input
        t0 = time.perf_counter()
        prep = CudaPreprocessor(spec, ctx, cache)
        report["load_s"] = round(time.perf_counter() - t0, 3)
        report["cached"] = sorted(p.name for p in cache.glob("*.cubin"))
        frame = (np.random.default_rng(1).random((1080, 1920, 3)) * 255).astype(np.uint8)
        prepared = prep(frame)
        prep.wait(prepared)
        gpu = np.empty(spec.shape, np.float32)
        cuda.memcpy_dtoh(gpu, prepared.address)
        cpu = Preprocessor(spec)(frame).reshape(spec.shape)
        report["max_abs_diff_vs_cpu"] = float(np.abs(gpu - cpu).max())
        del prepared
        prep.close()
    except KernelUnavailable as exc:
        report["kernel_unavailable"] = str(exc)
    finally:
        cuda.Context.pop()
        ctx.detach()
    return report


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
