"""Stage 2, prepare: a captured frame (or a region of it) -> the engine's input tensor, as the
engine's `InputSpec` declares: on the CPU (`preprocess`), or in one CUDA kernel on the GPU for
TensorRT rungs (`preprocess_cuda`).

Hands on a contiguous array of exactly the input's shape and dtype (or a device buffer) to `engine/`.
"""
