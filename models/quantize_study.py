"""Which calibration method and which ops to quantize, from evidence: every combination on the
demo models, calibrated on one rendered folder and judged on another (held out).

    python models/quantize_study.py build/qstudy   # prints a Markdown table for models/README.md
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edgeswin.demo.assets import make_image_folder  # noqa: E402
from edgeswin.errors import EdgeswinError  # noqa: E402
from edgeswin.toolchain.quantize import DEFAULT_OPS, quantize  # noqa: E402

OPS = {"MatMul/Gemm/Conv only": DEFAULT_OPS, "every op ORT quantizes": ()}


def main() -> int:
    work = Path(sys.argv[1] if len(sys.argv) > 1 else "build/qstudy")
    calib = make_image_folder(work / "calib", 20, seed=1)
    held_out = make_image_folder(work / "eval", 50, seed=2)
    print("| model | method | quantized ops | INT8 top-1 | FP32 top-1 | agreement | "
          "INT8 ms p50 | FP32 ms p50 | MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model in ("swin-demo-112", "swin-demo-64"):
        src = REPO / "models" / f"{model}.onnx"
        for method in ("minmax", "entropy", "percentile"):
            for label, ops in OPS.items():
                out = work / f"{model}-{method}-{len(ops)}.onnx"
                try:
                    fp32, int8 = quantize(src, calib, out, held_out, method, ops,
                                          min_agreement=0.0, progress=lambda m: None)
                except EdgeswinError as exc:
                    print(f"| {model} | {method} | {label} | failed: {exc} |||||")
                    continue
                print(f"| {model} | {method} | {label} | {int8.top1:.1%} | {fp32.top1:.1%} | "
                      f"{int8.agreement:.1%} | {int8.latency_ms_median:.2f} | "
                      f"{fp32.latency_ms_median:.2f} | {out.stat().st_size / 1e6:.1f} |",
                      flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
