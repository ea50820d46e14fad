"""Preprocessing on the GPU (optional, TensorRT rungs): one CUDA kernel does what `preprocess`
does on the CPU — area resize, colour order, scale/mean/std, NCHW or NHWC, float32 or float16 —
reading a BGR frame copied from a page-locked buffer and writing straight into the engine's
input device buffer, so the CPU only copies the frame once.

Hands on nothing to the CPU: the result lives in device memory, where TensorRT reads it.
Matches `Preprocessor` within 1e-3 (float32 output) for downscaling, which is the case on a
camera (frames larger than the model input); an upscale falls back to the CPU path.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from .errors import EdgeswinError
from .records import InputSpec

log = logging.getLogger(__name__)

# Area resize as OpenCV's INTER_AREA defines it for shrinking: each output pixel is the mean of
# the source box [x*sx, (x+1)*sx) x [y*sy, (y+1)*sy), partial source pixels weighted by overlap.
KERNEL = r"""
#include <cuda_fp16.h>

template <typename T> __device__ T cast_out(float v);
template <> __device__ float cast_out<float>(float v) { return v; }
template <> __device__ __half cast_out<__half>(float v) { return __float2half(v); }

template <typename T>
__device__ void preprocess(const unsigned char* __restrict__ src, T* __restrict__ dst,
                           int src_h, int src_w, int src_pitch, int dst_h, int dst_w,
                           float sx, float sy, float m0, float m1, float m2,
                           float a0, float a1, float a2, int swap_rb, int nhwc)
{
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= dst_w || y >= dst_h) return;
    float fx0 = x * sx, fx1 = fminf((x + 1) * sx, (float)src_w);
    float fy0 = y * sy, fy1 = fminf((y + 1) * sy, (float)src_h);
    float acc[3] = {0.f, 0.f, 0.f};
    for (int iy = (int)fy0; iy < (int)ceilf(fy1); ++iy) {
        float wy = fminf(fy1, iy + 1.f) - fmaxf(fy0, (float)iy);
        const unsigned char* row = src + (size_t)iy * src_pitch;
        for (int ix = (int)fx0; ix < (int)ceilf(fx1); ++ix) {
            float w = wy * (fminf(fx1, ix + 1.f) - fmaxf(fx0, (float)ix));
            acc[0] += w * row[3 * ix];
            acc[1] += w * row[3 * ix + 1];
            acc[2] += w * row[3 * ix + 2];
        }
    }
    float inv_area = 1.f / ((fx1 - fx0) * (fy1 - fy0));
    float mul[3] = {m0, m1, m2}, add[3] = {a0, a1, a2};
    for (int c = 0; c < 3; ++c) {
        float v = acc[swap_rb ? 2 - c : c] * inv_area * mul[c] + add[c];
        size_t i = nhwc ? ((size_t)y * dst_w + x) * 3 + c
                        : ((size_t)c * dst_h + y) * dst_w + x;
        dst[i] = cast_out<T>(v);
    }
}

extern "C" __global__ void preprocess_f32(const unsigned char* src, float* dst, int src_h,
    int src_w, int src_pitch, int dst_h, int dst_w, float sx, float sy, float m0, float m1,
    float m2, float a0, float a1, float a2, int swap_rb, int nhwc)
{ preprocess<float>(src, dst, src_h, src_w, src_pitch, dst_h, dst_w, sx, sy, m0, m1, m2,
                    a0, a1, a2, swap_rb, nhwc); }

extern "C" __global__ void preprocess_f16(const unsigned char* src, __half* dst, int src_h,
    int src_w, int src_pitch, int dst_h, int dst_w, float sx, float sy, float m0, float m1,
    float m2, float a0, float a1, float a2, int swap_rb, int nhwc)
{ preprocess<__half>(src, dst, src_h, src_w, src_pitch, dst_h, dst_w, sx, sy, m0, m1, m2,
                     a0, a1, a2, swap_rb, nhwc); }
"""

BLOCK = (16, 16, 1)


def free_pinned(array) -> None:
    """Page-locked host memory goes back at once (pycuda: the array's base allocation)."""
    free = getattr(getattr(array, "base", None), "free", None)
    if free is not None:
        free()


class KernelUnavailable(EdgeswinError):
    """No cached kernel for this GPU and no compiler to make one: preprocess on the CPU."""


def kernel_module(cache_dir: Path | None):
    """The kernel's module for the current context's GPU. The cubin is compiled once (nvcc,
    for this compute capability) and kept in `cache_dir`; later starts load it with
    `module_from_buffer` and need no compiler (the unit's PATH, a device without the CUDA
    toolkit). Call with the CUDA context current."""
    import pycuda.driver as cuda

    major, minor = cuda.Context.get_device().compute_capability()
    digest = hashlib.sha256(KERNEL.encode()).hexdigest()[:12]
    cached = cache_dir / f"preprocess-{digest}-sm{major}{minor}.cubin" if cache_dir else None
    if cached is not None and cached.is_file():
        return cuda.module_from_buffer(cached.read_bytes())
    try:
        from pycuda.compiler import compile as nvcc
        cubin = nvcc(KERNEL, no_extern_c=True, arch=f"sm_{major}{minor}")
    except (ImportError, OSError, cuda.Error) as exc:  # no nvcc on PATH is an OSError
        raise KernelUnavailable(
            f"cannot compile the preprocessing kernel for sm_{major}{minor} and none is cached"
            f"{f' in {cache_dir}' if cache_dir else ''} ({type(exc).__name__}: {exc})") from None
    if cached is not None:
        from .engine.build import write_atomic  # engine.trt imports this module
        from .errors import ModelError
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(cached, cubin)
        except (OSError, ModelError) as exc:  # compiled fine; the next start compiles again
            log.warning("preprocessing kernel not cached in %s: %s", cache_dir, exc)
    return cuda.module_from_buffer(cubin)


class CudaPreprocessor:
    """Frame (BGR uint8, any size >= the input) -> the engine's input buffer, on a stream.
    Call with the CUDA context current (the TensorRT engine pushes it)."""

    def __init__(self, spec: InputSpec, cache_dir: Path | None = None):
        import pycuda.driver as cuda

        if spec.dtype not in ("float32", "float16"):
            raise ValueError(f"GPU preprocessing writes float32/float16, not {spec.dtype}")
        self.spec = spec
        self._cuda = cuda
        module = kernel_module(cache_dir)
        self._kernel = module.get_function("preprocess_f16" if spec.dtype == "float16"
                                           else "preprocess_f32")
        std = np.asarray(spec.std, np.float32)
        # value = (pixel * scale - mean) / std = pixel * (scale / std) + (-mean / std)
        self._mul = (np.float32(spec.scale) / std).astype(np.float32)
        self._add = (-np.asarray(spec.mean, np.float32) / std).astype(np.float32)
        self._pinned: np.ndarray | None = None
        self._device = None

    def close(self) -> None:
        """Free the staging buffers and drop the kernel's module; the context must be current."""
        if self._device is not None:
            self._device.free()
            self._device = None
        free_pinned(self._pinned)
        self._pinned = self._kernel = None

    def fits(self, frame: np.ndarray) -> bool:
        """Whether the kernel handles this frame (3-channel, not smaller than the input)."""
        return (frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
                and frame.shape[0] >= self.spec.height and frame.shape[1] >= self.spec.width)

    def __call__(self, frame: np.ndarray, dest: int, stream) -> None:
        cuda = self._cuda
        h, w = frame.shape[:2]
        if self._pinned is None or self._pinned.size < frame.size:
            self._pinned = cuda.pagelocked_empty(frame.size, np.uint8)
            if self._device is not None:
                self._device.free()
            self._device = cuda.mem_alloc(frame.size)
        staging = self._pinned[:frame.size].reshape(frame.shape)
        np.copyto(staging, frame)  # the one CPU copy of the frame
        cuda.memcpy_htod_async(self._device, staging, stream)
        spec = self.spec
        grid = ((spec.width + BLOCK[0] - 1) // BLOCK[0], (spec.height + BLOCK[1] - 1) // BLOCK[1])
        self._kernel(self._device, np.uintp(dest), np.int32(h), np.int32(w), np.int32(w * 3),
                     np.int32(spec.height), np.int32(spec.width),
                     np.float32(w / spec.width), np.float32(h / spec.height),
                     *self._mul, *self._add, np.int32(spec.color == "RGB"),
                     np.int32(spec.layout == "NHWC"), block=BLOCK, grid=grid, stream=stream)
