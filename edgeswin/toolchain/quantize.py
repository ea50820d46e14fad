"""`edgeswin quantize`: INT8 post-training quantization into a Q/DQ ONNX that TensorRT's
explicit-quantization path accepts, calibrated on a folder of images with the model's own
preprocessing, checked against TensorRT's rules, and gated on agreement with the FP32 model.

Hands on `<out>.onnx` and its sidecar only when every check passes; on a failed rule or gate
nothing is written where the good model would go. The rules (onnx-tensorrt operators.md):
signed INT8, symmetric (all zero points 0), per-channel weights carry an `axis`, opset >= 13.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..engine import read_model_info, sidecar_path, write_atomic
from ..errors import EdgeswinError
from ..labelled import labelled_images, read_image
from ..prepare.preprocess import Preprocessor
from .evaluate import Evaluation, evaluate

log = logging.getLogger(__name__)

# Which ops get Q/DQ: the matrix products (where INT8 pays) and nothing else. LayerNorm,
# Softmax, GELU (Erf) and the residual Adds stay in higher precision: see models/README.md for
# the agreement each choice gave on the demo model.
DEFAULT_OPS = ("Conv", "MatMul", "Gemm")
METHODS = ("minmax", "entropy", "percentile")


def image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in
                   {".png", ".jpg", ".jpeg", ".bmp", ".webp"})
    if not files:
        raise EdgeswinError(f"{folder}: no calibration images found")
    return files


def qdq_violations(model_path: Path) -> list[str]:
    """What in a Q/DQ model TensorRT would refuse; empty when it follows the rules."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(model_path))
    problems = []
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < 13:
        problems.append(f"opset {opset} < 13: per-channel Q/DQ needs the axis attribute")
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    if not qdq:
        problems.append("no QuantizeLinear/DequantizeLinear nodes: not an explicitly quantized "
                        "model")
    for node in qdq:
        name = node.name or node.output[0]
        if len(node.input) < 3 or not node.input[2]:
            problems.append(f"{name}: no zero point (the default is uint8; TensorRT needs int8)")
            continue
        zero, scale = inits.get(node.input[2]), inits.get(node.input[1])
        if zero is None or scale is None:
            problems.append(f"{name}: scale/zero point are not constants")
            continue
        if zero.dtype != np.int8:
            problems.append(f"{name}: zero point type {zero.dtype}, TensorRT needs int8")
        if np.any(zero != 0):
            problems.append(f"{name}: non-zero zero point (TensorRT supports symmetric only)")
        if np.any(scale <= 0):
            problems.append(f"{name}: a scale is not positive")
        if scale.size > 1 and not any(a.name == "axis" for a in node.attribute):
            problems.append(f"{name}: per-channel scales without an axis attribute")
    return problems


def _image_reader(files: list[Path], prep: Preprocessor, input_name: str):
    """An onnxruntime CalibrationDataReader over images, preprocessed as deployed."""
    from onnxruntime.quantization import CalibrationDataReader

    class ImageReader(CalibrationDataReader):
        def __init__(self):
            self._items = iter(files)

        def get_next(self):
            path = next(self._items, None)
            return None if path is None else {input_name: prep(read_image(path))}

    return ImageReader()


def quantize(model: Path, calibration: Path, out: Path, eval_data: Path,
             method: str = "minmax", ops: tuple[str, ...] = DEFAULT_OPS,
             min_agreement: float = 0.98, limit: int = 200, progress=print
             ) -> tuple[Evaluation, Evaluation]:
    """Quantize, validate, evaluate; write `out` only if it passes. Returns (fp32, int8)."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if method not in METHODS:
        raise EdgeswinError(f"calibration method must be one of {METHODS}")
    info = read_model_info(model)
    files = image_files(calibration)[:limit]
    labelled_images(eval_data, info.labels)  # fail early on a bad evaluation folder
    reader = _image_reader(files, Preprocessor(info.input), info.input.name)
    calibrate = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                 "percentile": CalibrationMethod.Percentile}[method]
    with tempfile.TemporaryDirectory() as tmp:
        candidate = Path(tmp) / out.name
        progress(f"calibrating on {len(files)} image(s) from {calibration} ({method}) ...")
        try:
            quantize_static(
                str(model), str(candidate), reader, quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(ops) or None, per_channel=True,
                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                calibrate_method=calibrate,
                extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                               # int32 biases inside Q/DQ are refused by TensorRT's parser
                               "QuantizeBias": False})
        except Exception as exc:  # ORT raises plain Exceptions for bad graphs
            raise EdgeswinError(f"{model}: quantization failed: {exc}") from None
        shutil.copy(sidecar_path(model), sidecar_path(candidate))
        problems = qdq_violations(candidate)
        if problems:
            raise EdgeswinError("the quantized model breaks TensorRT's Q/DQ rules:\n  "
                                + "\n  ".join(problems))
        progress("validated: signed INT8, symmetric, per-channel weights with axis, "
                 "opset >= 13")
        progress(f"evaluating FP32 and INT8 on {eval_data} ...")
        fp32 = evaluate(model, eval_data)
        int8 = evaluate(candidate, eval_data, reference=model)
        if int8.agreement < min_agreement:
            raise EdgeswinError(
                f"INT8 top-1 agreement with FP32 is {int8.agreement:.2%} < --min-agreement "
                f"{min_agreement:.2%} (INT8 top-1 {int8.top1:.2%}, FP32 {fp32.top1:.2%}); "
                f"nothing written to {out}. Try another --method, more calibration images, "
                "or keep more ops in higher precision.")
        meta = json.loads(sidecar_path(model).read_text())
        meta.update({"name": out.stem, "precision": "int8", "quantization": {
            "source": model.name, "format": "QDQ", "method": method, "ops": list(ops),
            "calibration_images": len(files), "agreement_with_fp32": int8.agreement,
            "top1": int8.top1, "fp32_top1": fp32.top1}})
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, candidate.read_bytes())
        write_atomic(sidecar_path(out), json.dumps(meta, indent=2).encode())
    progress(f"wrote {out}: INT8 top-1 {int8.top1:.2%} (FP32 {fp32.top1:.2%}), agreement "
             f"{int8.agreement:.2%}, {out.stat().st_size / 1e6:.1f} MB")
    return fp32, int8
