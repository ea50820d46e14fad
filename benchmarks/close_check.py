"""On a GPU machine with pycuda (and the TensorRT double, where TensorRT is absent): an engine
loaded on a background thread, as a background build does, then dropped by the main thread.

  python3 -m benchmarks.close_check close   # TrtEngine.close() on the main thread, then exit
  python3 -m benchmarks.close_check drop    # no close(): what happened before

pycuda prints "... in out-of-thread context could not be cleaned up" at exit for every GPU
object it could not free; the run prints the GPU's free memory before, after load and after
close or drop.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import pycuda.driver as cuda

from edgeswin.engine import open_engine
from edgeswin.engine.build import build_engine

REPO = Path(__file__).resolve().parent.parent


def free_mb() -> int:
    ctx = cuda.Device(0).retain_primary_context()
    ctx.push()
    try:
        return cuda.mem_get_info()[0] >> 20
    finally:
        cuda.Context.pop()
        ctx.detach()


def main(mode: str) -> dict:
    cuda.init()
    work = Path(tempfile.mkdtemp())
    onnx = work / "swin-demo-112.onnx"
    shutil.copy(REPO / "models" / onnx.name, onnx)
    shutil.copy(REPO / "models" / "swin-demo-112.json", onnx.with_suffix(".json"))
    report = {"mode": mode, "free_mb_before": free_mb()}
    made = []

    def background_build() -> None:
        out = work / "e.engine"
        build_engine(onnx, out, "fp16", progress=lambda m: None)
        made.append(open_engine(out, "tensorrt"))

    thread = threading.Thread(target=background_build, name="build")
    thread.start()
    thread.join()
    report["free_mb_loaded"] = free_mb()
    engine = made.pop()
    if mode == "close":
        engine.close()
    del engine
    report["free_mb_after"] = free_mb()
    return report


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])), flush=True)
