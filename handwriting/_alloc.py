"""Keep freed memory for reuse: a glibc allocator setting that makes CPU training markedly faster.

A training step allocates and frees the same large tensors every time (gate pre-activations, attention
inputs, MLP activations: tens of MB each).  glibc's ``malloc`` serves every block above a threshold (at most
32 MB) with a fresh ``mmap`` and gives it back to the kernel with ``munmap`` when PyTorch frees it, so the
next step touches brand-new pages again: one page fault and one page zeroed per 4 KiB, ~20,000 faults per
step of the transformer benchmark.  Copying a 34 MB tensor then takes 16 ms instead of 3.4 ms on the 2-core
development machine.

:func:`keep_freed_memory` asks glibc (``mallopt``) to serve large blocks from its heap too and to keep freed
memory instead of trimming it, so later steps reuse pages that are already mapped.  Measured on that machine
(benchmarks/README.md): our Graves training step 2.4–2.7 → 1.7–2.0 s (290,000 → 18,000 page faults per step),
pywritesmooth's about unchanged; our transformer step 2.96 → 2.23 s, and the reference-style transformer,
whose ``T × T`` score tensors are the largest allocations of all, 19.1 → 5.75 s.  The cost: the process keeps its peak memory until it exits (the same as
jemalloc's or tcmalloc's usual configuration, which ``LD_PRELOAD`` users already get).

``handwriting train`` and ``handwriting bench`` call it (the benchmarks for every contender alike, in one
process); a notebook that trains for long can call it too.  Elsewhere (macOS, Windows, musl) it does
nothing and returns ``False``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4

_applied = False


def keep_freed_memory() -> bool:
    """Make glibc keep and reuse freed memory (see the module docstring).  Returns ``True`` when it is in
    effect (also on later calls), ``False`` where the C library is not glibc."""
    global _applied
    if _applied:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = (
        mallopt(_M_MMAP_MAX, 0)  # no mmap per large block: serve it from the heap, where it can be reused
        and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)  # do not hand freed heap memory back to the kernel
        and mallopt(_M_TOP_PAD, 64 << 20)  # grow the heap in 64 MB steps
    )
    _applied = bool(ok)
    return _applied


def allocator_setting() -> str:
    """A short description for benchmark and training records."""
    return "glibc, freed memory kept (mallopt)" if _applied else "default"
