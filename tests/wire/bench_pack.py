"""Micro-benchmark of the pack codec and negotiation on docs/benchmarks.md's tiers (not a test).

    python tests/wire/bench_pack.py [--tier xl] [--runs 3]

Builds the tier's objects directly (tests/wire/wire_workload.py), then reports: encode
(write_pack to memory, in the order objects_to_send produces), receive_pack to disk (MB/s of
pack bytes), read_pack alone, pack size, trees' compressed size, peak Python memory of a
streamed receive, objects_to_send (full history and one commit), check_connectivity and
verify_structure over every tree and commit. Also 100 MB of incompressible 4 KiB blobs:
the cost of the compression probe.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from wire_workload import build  # noqa: E402

from muse.core import objects as O  # noqa: E402
from muse.core.pack import codec as P  # noqa: E402
from muse.core.pack.file import PackFile  # noqa: E402
from muse.core.pack.write import receive_pack  # noqa: E402
from muse.wire.negotiate import objects_to_send  # noqa: E402
from muse.wire.verify import check_connectivity, verify_structure  # noqa: E402

TIERS = {"xs": (1, 1), "s": (10, 5), "m": (100, 5), "l": (1000, 5), "xl": (5000, 5)}


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """(median seconds, last result)."""
    times = []
    result = None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


class Mem:
    def __init__(self, m: dict[bytes, tuple[int, bytes]]) -> None:
        self.m = m

    def get(self, oid: bytes) -> tuple[int, bytes] | None:
        return self.m.get(oid)

    def has(self, oid: bytes) -> bool:
        return oid in self.m


class Empty:
    def get(self, oid: bytes) -> None:
        return None

    def has(self, oid: bytes) -> bool:
        return False


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tier", default="xl", choices=sorted(TIERS))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--gigabyte", action="store_true", help="only: receive a generated 1 GB pack")
    args = ap.parse_args()
    if args.gigabyte:
        gigabyte()
        return
    commits, per = TIERS[args.tier]
    t0 = time.perf_counter()
    h = build(args.tier.upper(), commits, per)
    print(f"built {args.tier.upper()}: {len(h.objects)} objects in {time.perf_counter() - t0:.2f}s")
    by_kind = {k: sum(len(b) for kk, _, b in h.objects if kk == k) for k in (1, 2, 3)}
    print(
        f"  blobs {by_kind[1] / 1e6:.1f} MB, trees {by_kind[2] / 1e6:.1f} MB, "
        f"commits {by_kind[3] / 1e6:.2f} MB"
    )
    mem = Mem(h.get_map())
    tip = h.commits[-1]

    el, order = timed(lambda: objects_to_send(mem, [tip], []), args.runs)
    print(f"objects_to_send full history (dict reader): {el:.3f}s, {len(order)} objects")
    bodies = mem.m

    def encode() -> bytes:
        out = io.BytesIO()
        w = P.PackWriter(out)
        for kind, oid in order:
            w.add(kind, bodies[oid][1], oid)
        w.finish()
        return out.getvalue()

    el, data = timed(encode, args.runs)
    total = sum(by_kind.values())
    print(
        f"encode: {el:.3f}s, {total / el / 1e6:.0f} MB/s of objects; pack {len(data) / 1e6:.2f} MB "
        f"({len(data) / total:.3f} of the raw objects)"
    )
    trees_out = io.BytesIO()
    P.write_pack(trees_out, [(O.TREE, bodies[o][1]) for k, o in order if k == O.TREE])
    print(f"  trees alone: {by_kind[2] / 1e6:.1f} MB -> {len(trees_out.getvalue()) / 1e6:.2f} MB")

    el, n = timed(lambda: sum(1 for _ in P.read_pack(io.BytesIO(data))), args.runs)
    print(f"read_pack (decode + re-hash, no disk): {el:.3f}s, {len(data) / el / 1e6:.0f} MB/s")

    root = tempfile.mkdtemp(prefix="bench-pack-")
    try:
        times = []
        pf = None
        for i in range(args.runs):
            d = os.path.join(root, f"r{i}")
            os.mkdir(d)
            t = time.perf_counter()
            pf = receive_pack(io.BytesIO(data), d)
            times.append(time.perf_counter() - t)
        el = statistics.median(times)
        print(
            f"receive_pack (tee to disk + verify + index): {el:.3f}s, "
            f"{len(data) / el / 1e6:.0f} MB/s, {n / el:.0f} objects/s"
        )
        assert pf is not None
        d = os.path.join(root, "mem")
        os.mkdir(d)
        tracemalloc.start()
        receive_pack(_Chunked(data), d)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"  peak Python memory of a streamed receive: {peak / 1e6:.1f} MB")

        el, out = timed(lambda: objects_to_send(PackFile(pf.path), [tip], []), args.runs)
        print(f"objects_to_send full history (PackFile): {el:.3f}s, {len(out)} objects")
        if len(h.commits) > 1:
            el, out = timed(
                lambda: objects_to_send(PackFile(pf.path), [tip], [h.commits[-2]]),
                args.runs,
            )
            print(f"objects_to_send one commit (PackFile): {el * 1e3:.2f} ms, {len(out)} objects")
        el, _ = timed(lambda: check_connectivity(pf, Empty(), [tip]), args.runs)
        print(f"check_connectivity (whole pack): {el:.3f}s")

        def structure() -> None:
            for kind, _, body in pf.iter_objects((O.TREE, O.COMMIT)):
                verify_structure(kind, body)

        el, _ = timed(structure, args.runs)
        print(f"verify_structure over every tree and commit: {el:.3f}s")
    finally:
        shutil.rmtree(root)

    rng = random.Random(0)
    blobs = [rng.randbytes(4096) for _ in range(25_000)]
    for compress in (False, True):
        el, _ = timed(lambda c=compress: P.write_pack(_Null(), ((1, b) for b in blobs), c), 1)  # type: ignore[misc]
        print(
            f"100 MB of incompressible 4 KiB blobs, compress={compress}: {el:.3f}s "
            f"({102.4 / el:.0f} MB/s)"
        )


def gigabyte() -> None:
    """Receive a 1 GB pack (262,144 incompressible 4 KiB blobs) in a fresh process.

    The pack is written to a file first (untimed); a child process then receives it from the
    file in 64 KiB reads and reports time and its peak RSS (max RSS covers the interpreter too).
    """
    import subprocess

    root = tempfile.mkdtemp(prefix="bench-pack-gb-")
    try:
        src = os.path.join(root, "in.pack")
        rng = random.Random(1)
        with open(src, "wb") as f:
            w = P.PackWriter(f)
            for _ in range(262_144):
                w.add(O.BLOB, rng.randbytes(4096))
            w.finish()
        size = os.path.getsize(src)
        os.mkdir(os.path.join(root, "out"))
        code = (
            "import io, resource, sys, time\n"
            "from muse.core.pack.write import receive_pack\n"
            "class R(io.RawIOBase):\n"
            "    def __init__(s, f): s.f = f\n"
            "    def readable(s): return True\n"
            "    def read(s, n=-1): return s.f.read(min(n, 65536))\n"
            "f = open(sys.argv[1], 'rb', buffering=0)\n"
            "t = time.perf_counter()\n"
            "pf = receive_pack(R(f), sys.argv[2])\n"
            "el = time.perf_counter() - t\n"
            "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3\n"
            "print(f'{el:.3f} {pf.count} {rss:.0f}')\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, src, os.path.join(root, "out")],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        el, count, rss = float(out[0]), int(out[1]), out[2]
        print(
            f"1 GB receive_pack: {el:.2f}s, {size / el / 1e6:.0f} MB/s, {count} objects, "
            f"max RSS of the receiving process {rss} MB"
        )
    finally:
        shutil.rmtree(root)


class _Null:
    def write(self, data: bytes) -> int:
        return len(data)


class _Chunked(io.RawIOBase):
    """A network-like stream: 64 KiB reads from bytes that are not copied up front."""

    def __init__(self, data: bytes) -> None:
        self.view = memoryview(data)
        self.pos = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = min(n, 64 << 10)
        out = bytes(self.view[self.pos : self.pos + n])
        self.pos += len(out)
        return out


if __name__ == "__main__":
    main()
