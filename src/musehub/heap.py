"""glibc's malloc, kept from handing memory back to the kernel after every request body piece.

uvicorn hands a request body to the app in pieces of 64-256 KiB, each a fresh ``bytes``
copied out of a growing ``bytearray``. Under glibc's defaults (a dynamic mmap threshold of
128 KiB and more, a trim threshold of twice the last freed mmapped piece) every such piece
is mapped or grown at the top of the heap and given back soon after, so each costs page
faults and zeroed pages: receiving 1 GiB in a bare Starlette PUT handler took 1.6-1.8 s of
CPU, 1.3 s of it in the kernel (``strace -c``: 7,142 ``brk`` calls), against 0.36-0.38 s
with the settings below (same run, this 2-core machine; docs/benchmarks.md 2026-12-07
night). Pack blocks of a few MiB (decoding a push) take the same path.

The settings keep up to :data:`TRIM_THRESHOLD` of freed memory for reuse, which costs at
most that much resident memory per arena; the hub's workers stay well under the 256 MiB
a large transfer may take (issue 10). A value the operator set in the environment wins.
"""

from __future__ import annotations

import os
import sys

#: Allocations up to this size come from the heap (and are reused), not a fresh mapping.
MMAP_THRESHOLD = 16 << 20
#: Free memory at the top of the heap kept rather than returned to the kernel.
TRIM_THRESHOLD = 64 << 20
#: Extra memory taken with each heap growth, so the next pieces need no system call.
TOP_PAD = 16 << 20

_SETTINGS = {
    # (environment variable glibc reads at start-up, mallopt parameter number)
    "MALLOC_MMAP_THRESHOLD_": (-3, MMAP_THRESHOLD),
    "MALLOC_TRIM_THRESHOLD_": (-1, TRIM_THRESHOLD),
    "MALLOC_TOP_PAD_": (-2, TOP_PAD),
}


def tune(environ: dict[str, str] | None = None) -> bool:
    """Apply the settings to this process (``mallopt``) and put them in ``environ`` (default
    ``os.environ``) for the worker processes it starts; True where glibc took them."""
    env = os.environ if environ is None else environ
    for name, (_param, value) in _SETTINGS.items():
        env.setdefault(name, str(value))
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt): nothing to tune
        return False
    ok = True
    for name, (param, _value) in _SETTINGS.items():
        try:
            wanted = int(env[name])
        except ValueError:
            continue  # the operator's own, unreadable value: glibc ignores it as well
        ok = bool(mallopt(param, wanted)) and ok
    return ok
