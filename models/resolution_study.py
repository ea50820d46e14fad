"""Resolution x precision for the demo models, and swin_t for scale: the evidence behind the
default engine ladder (models/README.md).

Each demo model's weights (rebuilt from its bundled ONNX) are exported at three resolutions
with `edgeswin export`, quantized to INT8 Q/DQ with `edgeswin quantize` (gate off, so every cell
has figures; the verdict of the default 98 % gate is reported), and judged with `edgeswin
eval` on 600 held-out rendered scenes. swin_t with random weights is exported at 224/192/160
and timed only.

    python models/resolution_study.py build/rstudy   # writes build/rstudy/resolution.json, prints Markdown
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "models"))

from checkpoint_from_onnx import write_checkpoint  # noqa: E402

from edgeswin.demo.assets import make_image_folder  # noqa: E402
from edgeswin.engine import open_engine  # noqa: E402
from edgeswin.toolchain.export import ExportOptions, export  # noqa: E402
from edgeswin.toolchain.quantize import quantize  # noqa: E402

LADDERS = {"swin-demo-112": (64, 96, 112), "swin-demo-64": (48, 64, 96)}
SWIN_T = (224, 192, 160)
quiet = {"progress": lambda message: None}


def checkpoint(model: str, work: Path) -> Path:
    path = work / f"{model}.safetensors"
    if not path.is_file():
        write_checkpoint(REPO / "models" / f"{model}.onnx", path)
    return path


def time_engine(path: Path, runs: int = 40) -> tuple[float, float]:
    engine = open_engine(path, "onnxruntime")
    x = np.random.default_rng(0).standard_normal(engine.info.input.shape).astype(np.float32)
    for _ in range(5):
        engine.infer(x)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        engine.infer(x)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (runs - 1))]


def main() -> int:
    work = Path(sys.argv[1] if len(sys.argv) > 1 else "build/rstudy")
    work.mkdir(parents=True, exist_ok=True)
    calib = make_image_folder(work / "calib", 20, seed=1)
    held_out = make_image_folder(work / "eval", 100, seed=2)
    rows = []
    print("| model (trained at) | input | precision | held-out top-1 | agreement with FP32 | "
          "ORT ms p50 / p95 | MB | 98 % gate |")
    print("|---|---|---|---|---|---|---|---|")
    for model, resolutions in LADDERS.items():
        ckpt = checkpoint(model, work)
        for r in resolutions:
            fp32_path = work / f"{model}-at{r}.onnx"
            exp = export(str(REPO / "models" / f"{model}.json"), fp32_path,
                         ExportOptions(checkpoint=ckpt, resolution=r), **quiet)
            int8_path = work / f"{model}-at{r}-int8.onnx"
            fp32, int8 = quantize(fp32_path, calib, int8_path, held_out, min_agreement=0.0,
                                  **quiet)
            for name, ev, path in (("FP32", fp32, fp32_path), ("INT8 Q/DQ", int8, int8_path)):
                row = {"model": model, "resolution": r, "precision": name, "top1": ev.top1,
                       "agreement": ev.agreement if name != "FP32" else 1.0,
                       "ms_p50": ev.latency_ms_median, "ms_p95": ev.latency_ms_p95,
                       "mb": round(path.stat().st_size / 1e6, 1),
                       "gate": None if name == "FP32" else ev.agreement >= 0.98,
                       "fitting": exp.fitting, "images": ev.images}
                rows.append(row)
                gate = "" if row["gate"] is None else ("passes" if row["gate"] else "refused")
                print(f"| {model} | {r}x{r} | {name} | {ev.top1:.1%} | {row['agreement']:.1%} | "
                      f"{ev.latency_ms_median:.2f} / {ev.latency_ms_p95:.2f} | {row['mb']} | "
                      f"{gate} |", flush=True)
    print("\n| swin_t (random weights) | ORT ms p50 / p95 | MB |\n|---|---|---|")
    for r in SWIN_T:
        path = work / f"swin_t-{r}.onnx"
        export("swin_t", path, ExportOptions(num_classes=1000, resolution=r), **quiet)
        p50, p95 = time_engine(path)
        rows.append({"model": "swin_t", "resolution": r, "precision": "FP32", "ms_p50": p50,
                     "ms_p95": p95, "mb": round(path.stat().st_size / 1e6, 1)})
        print(f"| {r}x{r} | {p50:.1f} / {p95:.1f} | {rows[-1]['mb']} |", flush=True)
    (work / "resolution.json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
