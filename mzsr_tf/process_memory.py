"""The process's resident memory: its peak so far, and handing freed memory back to the system.

TensorFlow's CPU tensors are allocated with the C library's ``malloc``. glibc keeps the memory of freed
blocks below its mmap threshold (which it raises, up to 32 MB, after freeing larger blocks) for the next
allocation instead of returning it, so a large transient (making the son of a 12 MP input) stays resident
for the rest of the run beside whatever comes next. ``release_free_memory`` returns such free memory at the
end of a phase; the tiled meta-test (``mzsr_tf.meta_test``) calls it between its phases.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import resource
from typing import Optional


def peak_memory_bytes() -> int:
    """The process's peak resident memory so far, in bytes (``ru_maxrss``; KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Optional[ctypes._CFuncPtr]:
    """glibc's ``malloc_trim``, or ``None`` where the C library has none (macOS, musl)."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None
    if trim is not None:
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return the C heap's free memory to the system (glibc ``malloc_trim(0)``); ``False`` where not possible.

    Memory in use is untouched; the next allocations cost a few page faults more.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
