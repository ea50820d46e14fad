"""A test double of `pycuda.compiler.compile`: like the real one it runs `nvcc` from PATH.
Without one it raises the OSError pycuda's process runner raises; with one that fails (a
broken toolkit) it raises CompileError; with one that works (a test puts a stub on PATH) it
hands back a cubin, an ELF image for the requested architecture."""

from __future__ import annotations

import subprocess

from .driver import CompileError


def compile(source: str, nvcc: str = "nvcc", options=None, keep: bool = False,  # noqa: A001
            no_extern_c: bool = False, arch: str | None = None, code=None, cache_dir=None,
            include_dirs=(), target: str = "cubin") -> bytes:
    try:
        run = subprocess.run([nvcc, "--version"], capture_output=True, timeout=30)
    except FileNotFoundError as exc:
        raise OSError(f"error invoking '{nvcc} --version': {exc}") from None
    if run.returncode != 0:
        raise CompileError(f"nvcc compilation of kernel.cu failed (exit {run.returncode})")
    return b"\x7fELF cubin " + (arch or "sm_native").encode() + b" " + str(hash(source)).encode()
