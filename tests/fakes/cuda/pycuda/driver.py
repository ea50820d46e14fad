"""A test double of `pycuda.driver`: the subset edgeswin uses, with pycuda's conventions.

- Every call that touches the device needs a current context (pushed on *this* thread), or it
  raises LogicError("... invalid device context"), as the CUDA driver does.
- Device memory is real bytes at fake addresses; a fresh allocation holds garbage (as on a GPU),
  so a copy that is too short shows up as wrong results. A copy larger than the allocation
  raises LogicError("... invalid argument").
- Async copies and kernels are queued on their stream and only happen at `synchronize()`, so
  reading a host buffer before synchronising sees stale data, as on a real GPU.
- A hung GPU: while the file named by $FAKE_CUDA_HANG_FILE exists, `synchronize()` blocks, as
  a stream does when a kernel never finishes (for watchdog tests).
- `pagelocked_empty` arrays are marked; an async copy from pageable memory is counted in
  `Stream.pageable_copies` (CUDA silently makes it synchronous). Allocated with
  `host_alloc_flags.DEVICEMAP`, their `.base.get_device_pointer()` is an address kernels read.
- Events order streams: `Stream.wait_for_event` makes the waiting stream run the recorded
  stream's work first, as the GPU would.
- `module_from_buffer` loads a cubin (ELF bytes) whose functions are edgeswin's preprocessing
  kernel, computed with OpenCV's INTER_AREA (what the real kernel matches within 1e-3), queued
  on the stream like any kernel.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np


class Error(Exception):
    pass


class LogicError(Error):
    pass


class MemoryError(Error):
    pass


class RuntimeError(Error):
    pass


class CompileError(Error):
    pass


_state = threading.local()
_lock = threading.Lock()
_memory: dict[int, bytearray] = {}
_next_address = [0x7F00_0000_0000]
initialised = [False]
DEVICE_NAME = "Orin (fake)"
COMPUTE_CAPABILITY = (8, 7)
TOTAL_MEMORY = 1 << 30
INTEGRATED = True  # Jetson: the GPU shares the host's memory
_mapped: dict[int, np.ndarray] = {}  # device address -> mapped page-locked host memory


def _stack() -> list:
    if not hasattr(_state, "stack"):
        _state.stack = []
    return _state.stack


def _need_context(call: str) -> None:
    if not initialised[0]:
        raise LogicError(f"{call} failed: initialization error (cuda.init() not called)")
    if not _stack():
        raise LogicError(f"{call} failed: invalid device context")


def init(flags: int = 0) -> None:
    initialised[0] = True


class Device:
    def __init__(self, number: int):
        if not initialised[0]:
            raise LogicError("cuDeviceGet failed: initialization error")
        if number != 0:
            raise LogicError("cuDeviceGet failed: invalid device ordinal")
        self.number = number

    def name(self) -> str:
        return DEVICE_NAME

    def compute_capability(self) -> tuple[int, int]:
        return COMPUTE_CAPABILITY

    def retain_primary_context(self) -> Context:
        return Context(self)

    def get_attribute(self, attribute: int) -> int:
        if attribute in (device_attribute.INTEGRATED, device_attribute.CAN_MAP_HOST_MEMORY):
            return int(INTEGRATED) if attribute == device_attribute.INTEGRATED else 1
        raise LogicError("cuDeviceGetAttribute failed: invalid value")


class device_attribute:  # noqa: N801 (pycuda's name)
    INTEGRATED = 18
    CAN_MAP_HOST_MEMORY = 19


class host_alloc_flags:  # noqa: N801
    PORTABLE = 1
    DEVICEMAP = 2
    WRITECOMBINED = 4


class Context:
    live = 0  # retained primary contexts not yet detached

    def __init__(self, device: Device):
        self.device = device
        Context.live += 1
        self.detached = False

    def push(self) -> None:
        if self.detached:
            raise LogicError("cuCtxPushCurrent failed: invalid context")
        _stack().append(self)

    @staticmethod
    def pop() -> None:
        if not _stack():
            raise LogicError("cuCtxPopCurrent failed: invalid context")
        _stack().pop()

    @staticmethod
    def get_current():
        return _stack()[-1] if _stack() else None

    @staticmethod
    def get_device() -> Device:
        """The device of the current context (cuCtxGetDevice)."""
        _need_context("cuCtxGetDevice")
        return _stack()[-1].device

    def detach(self) -> None:
        self.detached = True
        Context.live -= 1


def context_depth() -> int:
    """Test helper: how many contexts this thread has pushed and not popped."""
    return len(_stack())


class DeviceAllocation:
    def __init__(self, nbytes: int):
        with _lock:
            self.address = _next_address[0]
            _next_address[0] += (nbytes + 511) // 256 * 256
        # Fresh device memory is not zeroed: fill it with a NaN pattern for floats.
        _memory[self.address] = bytearray(b"\xff" * nbytes)
        self.nbytes = nbytes

    def __int__(self) -> int:
        return self.address

    def __index__(self) -> int:
        return self.address

    def free(self) -> None:
        _need_context("cuMemFree")
        _memory.pop(self.address, None)


def mem_get_info() -> tuple[int, int]:
    """(free, total) bytes of the current context's device, as cuMemGetInfo."""
    _need_context("cuMemGetInfo")
    with _lock:
        used = sum(len(block) for block in _memory.values())
    return max(TOTAL_MEMORY - used, 0), TOTAL_MEMORY


def mem_alloc(nbytes: int) -> DeviceAllocation:
    _need_context("cuMemAlloc")
    if nbytes <= 0:
        raise LogicError("cuMemAlloc failed: invalid argument")
    if nbytes > TOTAL_MEMORY:
        raise MemoryError("cuMemAlloc failed: out of memory")
    return DeviceAllocation(nbytes)


class _Pinned(np.ndarray):
    pass


class HostAllocation(bytearray):
    """The `.base` of a page-locked array, as in pycuda."""

    mapped_address: int | None = None

    def free(self) -> None:
        _need_context("cuMemFreeHost")
        if self.mapped_address is not None:
            _mapped.pop(self.mapped_address, None)

    def get_device_pointer(self) -> int:
        if self.mapped_address is None:
            raise LogicError("cuMemHostGetDevicePointer failed: invalid value (not allocated "
                             "with DEVICEMAP)")
        return self.mapped_address


def pagelocked_empty(shape, dtype, order: str = "C", mem_flags: int = 0) -> np.ndarray:
    _need_context("cuMemHostAlloc")
    count = int(np.prod(shape))
    owner = HostAllocation(count * np.dtype(dtype).itemsize)
    array = np.ndarray.__new__(_Pinned, shape, dtype, buffer=owner, order=order)
    if mem_flags & host_alloc_flags.DEVICEMAP:
        with _lock:
            owner.mapped_address = _next_address[0]
            _next_address[0] += (len(owner) + 511) // 256 * 256
        _mapped[owner.mapped_address] = np.frombuffer(owner, np.uint8)
    return array


def is_pagelocked(array: np.ndarray) -> bool:
    return isinstance(array, _Pinned) or isinstance(getattr(array, "base", None), _Pinned)


def device_bytes(address: int, nbytes: int) -> memoryview:
    """Test-double helper: the device bytes at an address (which must lie in one allocation,
    device memory or mapped host memory)."""
    for start, buf in list(_memory.items()) + list(_mapped.items()):
        if start <= address and address + nbytes <= start + len(buf):
            return memoryview(buf)[address - start:address - start + nbytes]
    raise LogicError("an illegal memory access was encountered")


class Stream:
    def __init__(self, flags: int = 0):
        _need_context("cuStreamCreate")
        self.handle = 0x5000 + id(self) % 0x1000 * 16  # never 0: that is the default stream
        self._queue: list = []
        self.pageable_copies = 0

    def enqueue(self, op) -> None:
        """Test-double helper: run op at synchronize(), in order with the copies."""
        self._queue.append(op)

    def synchronize(self) -> None:
        _need_context("cuStreamSynchronize")
        hang = os.environ.get("FAKE_CUDA_HANG_FILE")
        while hang and os.path.exists(hang):
            time.sleep(0.05)
        queue, self._queue = self._queue, []
        for op in queue:
            op()

    def is_done(self) -> bool:
        return not self._queue

    def wait_for_event(self, event: Event) -> None:
        """Work queued here after this call runs after the event's stream work (cuStreamWaitEvent)."""
        _need_context("cuStreamWaitEvent")
        self.enqueue(event._complete)


class Event:
    def __init__(self, flags: int = 0):
        _need_context("cuEventCreate")
        self._stream: Stream | None = None

    def record(self, stream: Stream | None = None) -> Event:
        _need_context("cuEventRecord")
        self._stream = stream
        # The device's clock: here the CPU time of the thread running the stream's queued
        # work (it emulates the device), so that, as on a GPU, what other host threads do
        # meanwhile does not count. Stamped when the stream's work before it has run.
        self._at = None
        if stream is None:
            self._at = time.thread_time()
        else:
            stream.enqueue(lambda: setattr(self, "_at", time.thread_time()))
        return self

    def time_since(self, event: Event) -> float:
        """Milliseconds from `event` to this one (cuEventElapsedTime): both must be done."""
        _need_context("cuEventElapsedTime")
        if getattr(self, "_at", None) is None or getattr(event, "_at", None) is None:
            raise LogicError("cuEventElapsedTime failed: device not ready")
        return (self._at - event._at) * 1000

    def time_till(self, event: Event) -> float:
        return event.time_since(self)

    def _complete(self) -> None:
        if self._stream is not None:
            self._stream.synchronize()

    def synchronize(self) -> Event:
        _need_context("cuEventSynchronize")
        self._complete()
        return self

    def query(self) -> bool:
        return self._stream is None or self._stream.is_done()


def memcpy_dtod_async(dest, src, size: int, stream: Stream | None = None) -> None:
    _need_context("cuMemcpyDtoDAsync")
    _check_fits(int(dest), size, "cuMemcpyDtoDAsync")
    _check_fits(int(src), size, "cuMemcpyDtoDAsync")

    def copy() -> None:
        device_bytes(int(dest), size)[:] = bytes(device_bytes(int(src), size))

    if stream is None:
        copy()
    else:
        stream.enqueue(copy)


class _Function:
    """edgeswin's preprocessing kernel: area resize, channel order, affine map, layout."""

    def __init__(self, name: str):
        self.out_dtype = np.float16 if name.endswith("f16") else np.float32

    def __call__(self, src, dst, src_h, src_w, pitch, dst_h, dst_w, sx, sy, m0, m1, m2,
                 a0, a1, a2, swap_rb, nhwc, block=None, grid=None, stream=None) -> None:
        import cv2
        _need_context("cuLaunchKernel")
        src, dst = int(src), int(dst)
        h, w, dh, dw = int(src_h), int(src_w), int(dst_h), int(dst_w)
        out_bytes = dh * dw * 3 * np.dtype(self.out_dtype).itemsize

        def run() -> None:
            frame = np.frombuffer(bytes(device_bytes(src, h * int(pitch))), np.uint8)
            frame = frame.reshape(h, int(pitch))[:, :w * 3].reshape(h, w, 3)
            small = cv2.resize(frame, (dw, dh), interpolation=cv2.INTER_AREA).astype(np.float32)
            if swap_rb:
                small = small[:, :, ::-1]
            x = small * np.float32([m0, m1, m2]) + np.float32([a0, a1, a2])
            if not nhwc:
                x = x.transpose(2, 0, 1)
            device_bytes(dst, out_bytes)[:] = np.ascontiguousarray(x, self.out_dtype).tobytes()

        if stream is None:
            run()
        else:
            stream.enqueue(run)


class _Module:
    def get_function(self, name: str) -> _Function:
        if name not in ("preprocess_f32", "preprocess_f16"):
            raise LogicError(f"cuModuleGetFunction failed: named symbol not found ({name})")
        return _Function(name)


def module_from_buffer(data: bytes) -> _Module:
    _need_context("cuModuleLoadData")
    if not bytes(data).startswith(b"\x7fELF"):
        raise LogicError("cuModuleLoadData failed: device kernel image is invalid")
    return _Module()


streams: dict[int, Stream] = {}


def _stream_of(stream: Stream | None) -> Stream | None:
    if stream is not None:
        streams[stream.handle] = stream
    return stream


def memcpy_htod_async(dest, src: np.ndarray, stream: Stream | None = None) -> None:
    _need_context("cuMemcpyHtoDAsync")
    address, nbytes = int(dest), src.nbytes
    _check_fits(address, nbytes, "cuMemcpyHtoDAsync")
    stream = _stream_of(stream)
    if stream is None or not is_pagelocked(src):
        # Pageable memory: CUDA stages it at once (the call is effectively synchronous).
        data = np.ascontiguousarray(src).tobytes()
        if stream is None:
            device_bytes(address, nbytes)[:] = data
            return
        stream.pageable_copies += 1
        stream.enqueue(lambda: device_bytes(address, nbytes).__setitem__(slice(None), data))
        return
    # Page-locked: the DMA reads the host buffer when the copy runs, not when it is queued.
    stream.enqueue(lambda: device_bytes(address, nbytes).__setitem__(
        slice(None), np.ascontiguousarray(src).tobytes()))


def memcpy_dtoh_async(dest: np.ndarray, src, stream: Stream | None = None) -> None:
    _need_context("cuMemcpyDtoHAsync")
    address, nbytes = int(src), dest.nbytes
    _check_fits(address, nbytes, "cuMemcpyDtoHAsync")

    def copy() -> None:
        flat = np.frombuffer(bytes(device_bytes(address, nbytes)), dest.dtype)
        dest.reshape(-1)[:] = flat

    stream = _stream_of(stream)
    if stream is None:
        copy()
    else:
        if not is_pagelocked(dest):
            stream.pageable_copies += 1
        stream.enqueue(copy)


def memcpy_dtoh(dest: np.ndarray, src) -> None:
    memcpy_dtoh_async(dest, src, None)


def _check_fits(address: int, nbytes: int, call: str) -> None:
    for start, buf in _memory.items():
        if start <= address < start + len(buf):
            if address + nbytes > start + len(buf):
                raise LogicError(f"{call} failed: invalid argument")
            return
    raise LogicError(f"{call} failed: invalid argument")


def get_driver_version() -> int:
    return 12020  # CUDA 12.2, as on JetPack 6.0


def get_version() -> tuple[int, int, int]:
    return (12, 2, 0)
