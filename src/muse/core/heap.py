"""glibc's malloc, kept from handing memory back to the kernel after every large buffer.

uvicorn hands a request body to the app in pieces of 64-256 KiB, each a fresh ``bytes``
copied out of a growing ``bytearray``. Under glibc's defaults (a dynamic mmap threshold of
128 KiB and more, a trim threshold of twice the last freed mmapped piece) every such piece
is mapped or grown at the top of the heap and given back soon after, so each costs page
faults and zeroed pages: receiving 1 GiB in a bare Starlette PUT handler took 1.3-1.8 s of
CPU, 1.1-1.5 s of it in the kernel (``strace -c``: 7,142 ``brk`` calls), against 0.36-0.38 s
with the settings below (same sitting, this 2-core machine; docs/benchmarks.md 2026-12-07
night). Pack blocks of a few MiB (decoding a push) take the same path.

The settings keep up to :data:`TRIM_THRESHOLD` of freed memory for reuse, which costs at
most that much resident memory per arena; the hub's workers and the client stay well under
the 256 MiB a large transfer may take (issue 10). A value set in the environment wins. The
hub tunes at start (:func:`tune`, its workers by their environment); the client only once
it meets large data (:func:`tune_once`: ``ctypes`` costs a few ms to import, which a small
command should not pay).
"""

from __future__ import annotations

import os
import sys

#: Allocations up to this size come from the heap (and are reused), not a fresh mapping:
#: glibc's largest (32 MiB on 64-bit), above a pack's largest block (16 MiB): decoding the
#: flask pack (11 zstd blocks, 178 MB decompressed) in a fresh process took 32,700 page faults
#: and 0.23 s with glibc's defaults, 12,500 and 0.18 s with this.
MMAP_THRESHOLD = 32 << 20
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


_tuned = False


def tune_once() -> None:
    """:func:`tune` this process the first time it is called (not the environment: the
    client's children are not Python processes moving packs)."""
    global _tuned
    if not _tuned:
        _tuned = True
        tune(dict(os.environ))
