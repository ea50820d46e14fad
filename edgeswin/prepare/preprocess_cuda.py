"""Stage 2 on the GPU (optional, TensorRT rungs): one CUDA kernel does what `preprocess` does
on the CPU — area resize, colour order, scale/mean/std, NCHW or NHWC, float32 or float16 —
reading a BGR frame from page-locked memory and writing the engine's input in device memory.

Hands on a `DeviceInput`: the input tensor in device memory and an event that fires when it
is complete. The work runs on the calling thread's own stream — a capture thread, for cameras
prepared ahead — so the copy and the kernel overlap the engine's inference of the previous
frame instead of adding to it. Frames live in a pool of slots (page-locked staging, device
buffers, a stream and an event each); a slot goes back to the pool when its DeviceInput is
dropped. On a Jetson the GPU shares the memory: the kernel reads the staging buffer mapped
into the device's address space, so there is no host-to-device copy at all.

`choose_way.ChoosePerSize` decides per frame size whether this kernel or the CPU is faster
here (a 4K frame's copy can cost more than the CPU's pre-shrinking resize).
The kernel computes exact INTER_AREA for downscaling, which is the case on a camera (frames
larger than the model input; an upscale goes the CPU way). The CPU path shrinks a large frame
bilinearly first (see `preprocess`), so the two differ at single pixels (up to 0.31 in
normalised units on 1080p scenes, on an H200) and agree on top-1.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import weakref
from pathlib import Path

import numpy as np

from ..errors import EdgeswinError
from ..files import write_whole
from ..records import InputSpec

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
    cached = cached_kernel_path(cache_dir, (major, minor)) if cache_dir else None
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
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            write_whole(cached, cubin)
        except OSError as exc:  # compiled fine; the next start compiles again
            log.warning("preprocessing kernel not cached in %s: %s", cache_dir,
                        exc.strerror or exc)
    return cuda.module_from_buffer(cubin)


def cached_kernel_path(cache_dir: Path, compute_capability: tuple[int, int]) -> Path:
    """Where the kernel compiled for one compute capability is kept (the source's digest in
    the name: a changed kernel is compiled afresh)."""
    digest = hashlib.sha256(KERNEL.encode()).hexdigest()[:12]
    major, minor = compute_capability
    return Path(cache_dir) / f"preprocess-{digest}-sm{major}{minor}.cubin"


class DeviceInput:
    """An engine input made on the GPU: `nbytes` at device `address`, complete once `ready`
    (an event on the preprocessing stream) has fired. Its slot is reused only after this
    object is gone, so whoever holds it may read the buffer."""

    __slots__ = ("address", "nbytes", "ready", "started", "__weakref__")

    def __init__(self, address: int, nbytes: int, ready, started=None):
        self.address, self.nbytes, self.ready, self.started = address, nbytes, ready, started


class _Slot:
    """One frame in flight: staging (page-locked, mapped on a shared-memory GPU), the frame on
    the device (None when mapped), the engine input it becomes, a stream and an event."""

    def __init__(self, cuda, capacity: int, input_bytes: int, mapped: bool):
        flags = cuda.host_alloc_flags.DEVICEMAP if mapped else 0
        self.staging = cuda.pagelocked_empty(capacity, np.uint8, mem_flags=flags)
        self.raw = None if mapped else cuda.mem_alloc(capacity)
        self.source = self.staging.base.get_device_pointer() if mapped else int(self.raw)
        self.input = cuda.mem_alloc(input_bytes)
        self.stream = cuda.Stream()
        self.start = cuda.Event()  # with `done`: the device's own time for this frame
        self.done = cuda.Event()
        self.capacity = capacity

    def free(self) -> None:
        self.done.synchronize()  # the kernel may still read the staging buffer
        if self.raw is not None:
            self.raw.free()
        self.input.free()
        free_pinned(self.staging)
        self.stream = self.start = self.done = None


class CudaPreprocessor:
    """Frame (BGR uint8, any size >= the input) -> DeviceInput, from any thread: it makes the
    engine's CUDA context current itself."""

    MAX_SLOTS = 32  # frames in flight at once: about two per camera prepared ahead

    def __init__(self, spec: InputSpec, context, cache_dir: Path | None = None,
                 mapped: bool | None = None):
        import pycuda.driver as cuda

        if spec.dtype not in ("float32", "float16"):
            raise ValueError(f"GPU preprocessing writes float32/float16, not {spec.dtype}")
        self.spec = spec
        self._cuda, self._ctx = cuda, context
        self._input_bytes = int(np.prod(spec.shape)) * np.dtype(spec.dtype).itemsize
        module = kernel_module(cache_dir)  # the context is current (the engine pushed it)
        self._kernel = module.get_function("preprocess_f16" if spec.dtype == "float16"
                                           else "preprocess_f32")
        gpu = cuda.Context.get_device()
        attr = cuda.device_attribute
        # A GPU that shares the host's memory (Jetson) reads mapped page-locked memory at
        # full speed; a discrete one would read it across PCIe on every kernel access.
        self.mapped = mapped if mapped is not None else bool(
            gpu.get_attribute(attr.INTEGRATED) and gpu.get_attribute(attr.CAN_MAP_HOST_MEMORY))
        std = np.asarray(spec.std, np.float32)
        # value = (pixel * scale - mean) / std = pixel * (scale / std) + (-mean / std)
        self._mul = (np.float32(spec.scale) / std).astype(np.float32)
        self._add = (-np.asarray(spec.mean, np.float32) / std).astype(np.float32)
        self._idle = threading.Condition()  # guards the pool; notified when a launch ends
        self._all: list[_Slot] = []
        self._free: list[_Slot] = []
        self._launching = 0  # launches under way (close waits for them)
        self._closed = False
        self._keep_up_to: int | None = None  # set by trim(larger_than): larger slots go

    def close(self) -> None:
        """Free every slot, in use or not, and drop the kernel's module; the context must be
        current. DeviceInputs still held are invalid after this (the engine is closed too)."""
        with self._idle:
            self._closed = True
            self._idle.wait_for(lambda: not self._launching, timeout=1.0)
            slots, self._all, self._free = self._all, [], []
        for slot in slots:
            slot.free()
        self._kernel = None

    def fits(self, frame: np.ndarray) -> bool:
        """Whether the kernel handles this frame (3-channel, not smaller than the input)."""
        return (frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
                and frame.shape[0] >= self.spec.height and frame.shape[1] >= self.spec.width)

    def __call__(self, frame: np.ndarray) -> DeviceInput | None:
        """Start preprocessing `frame` on a stream of its own; None when every slot is in use
        (the caller preprocesses on the CPU), or after close."""
        if self._closed:
            return None
        self._ctx.push()
        try:
            slot = self._acquire(frame.nbytes)
            if slot is None:
                return None
            try:
                self._launch(slot, frame)
            except BaseException:
                self._release(slot)
                raise
        finally:
            with self._idle:
                self._launching -= 1
                self._idle.notify_all()
            self._cuda.Context.pop()
        result = DeviceInput(int(slot.input), self._input_bytes, slot.done, slot.start)
        weakref.finalize(result, self._release, slot).atexit = False  # exit frees it all
        return result

    def device_ms(self, prepared: DeviceInput) -> float:
        """Block until `prepared` is complete; the device's own time for it (the copy to the
        device and the kernel, between two events on its stream), whatever the host did
        meanwhile."""
        self._ctx.push()
        try:
            prepared.ready.synchronize()
            return float(prepared.ready.time_since(prepared.started))
        finally:
            self._cuda.Context.pop()

    def trim(self, larger_than: int = -1) -> int:
        """Free the slots no frame holds now and that hold more than `larger_than` bytes
        (page-locked and device memory back): after the CPU won every size, or a size the
        kernel no longer prepares, they would sit idle. Returns how many were freed."""
        with self._idle:
            # Slots in use now are freed when they come back (`_acquire`), not reused.
            self._keep_up_to = larger_than if larger_than >= 0 else None
            idle = [s for s in self._free if s.capacity > larger_than]
            self._free = [s for s in self._free if s.capacity <= larger_than]
            for slot in idle:
                self._all.remove(slot)
        if idle:
            self._ctx.push()
            try:
                for slot in idle:
                    slot.free()
            finally:
                self._cuda.Context.pop()
        return len(idle)

    def _launch(self, slot: _Slot, frame: np.ndarray) -> None:
        cuda, spec = self._cuda, self.spec
        h, w = frame.shape[:2]
        slot.done.synchronize()  # its previous frame is no longer read
        staging = slot.staging[:frame.nbytes].reshape(frame.shape)
        np.copyto(staging, frame)  # the one CPU copy of the frame
        slot.start.record(slot.stream)
        if slot.raw is not None:
            cuda.memcpy_htod_async(slot.raw, staging, slot.stream)
        grid = ((spec.width + BLOCK[0] - 1) // BLOCK[0], (spec.height + BLOCK[1] - 1) // BLOCK[1])
        self._kernel(np.uintp(slot.source), np.uintp(int(slot.input)), np.int32(h), np.int32(w),
                     np.int32(w * 3), np.int32(spec.height), np.int32(spec.width),
                     np.float32(w / spec.width), np.float32(h / spec.height),
                     *self._mul, *self._add, np.int32(spec.color == "RGB"),
                     np.int32(spec.layout == "NHWC"), block=BLOCK, grid=grid, stream=slot.stream)
        slot.done.record(slot.stream)

    @property
    def slots(self) -> int:
        return len(self._all)

    @property
    def held_bytes(self) -> int:
        """The frame bytes its slots can hold (each has as much page-locked memory, and on a
        discrete GPU as much device memory again)."""
        with self._idle:
            return sum(slot.capacity for slot in self._all)

    @property
    def idle_slots(self) -> int:
        return len(self._free)

    def _acquire(self, nbytes: int) -> _Slot | None:
        """A free slot that holds `nbytes`, a new one, or None when the pool is full. Counts a
        launch under way (the caller ends it)."""
        with self._idle:
            self._launching += 1
            if self._closed:
                return None
            keep = None if self._keep_up_to is None else max(self._keep_up_to, nbytes)
            unwanted = [s for s in self._free if keep is not None and s.capacity > keep]
            for slot in unwanted:  # sized for frames the kernel no longer prepares
                self._free.remove(slot)
                self._all.remove(slot)
            fitting = sorted((s for s in self._free if s.capacity >= nbytes),
                             key=lambda s: s.capacity)
            if fitting:
                self._free.remove(fitting[0])
                slot = fitting[0]
            elif self._free:  # the frame size changed: a smaller slot is of no use now
                unwanted.append(self._free.pop())
                self._all.remove(unwanted[-1])
                slot = None
            elif len(self._all) >= self.MAX_SLOTS:
                return None
            else:
                slot = None
        for old in unwanted:
            old.free()
        if slot is not None:
            return slot
        slot = _Slot(self._cuda, nbytes, self._input_bytes, self.mapped)
        with self._idle:
            self._all.append(slot)
        return slot

    def _release(self, slot: _Slot) -> None:
        """The slot's DeviceInput is gone (any thread, any time, no CUDA call here): the slot
        may be reused. After close() its memory is already freed."""
        with self._idle:
            if not self._closed and slot in self._all:
                self._free.append(slot)
