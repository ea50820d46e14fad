"""The model toolchain: what turns a trained model into engines the daemon can trust.

export.py (PyTorch/timm -> ONNX + sidecar, checked against PyTorch; the model from
architecture.py, its weights from checkpoint.py) -> evaluate.py (accuracy,
agreement, latency on a labelled folder) -> quantize.py (INT8 Q/DQ with an accuracy gate) ->
engine/build.py (TensorRT engines). Never imported by the daemon itself.
"""
