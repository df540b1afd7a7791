"""What the network commands share: common options and the --json summary.

Kept free of heavy imports: ``add_*`` run for ``--help`` and must not pull in the transport.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Protocol


def add_transfer_options(p: argparse.ArgumentParser, path: bool = True) -> None:
    if path:
        p.add_argument(
            "--path",
            choices=("auto", "stream", "presign"),
            default="auto",
            help="transport path: stream through the hub or a presigned bundle "
            "(default: by size, see docs/client.md)",
        )
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress or messages")


class _Moved(Protocol):
    objects: int
    bytes: int
    path: str
    wire_seconds: float


def summary(verb: str, moved: _Moved, started: float, restore: float = 0.0, **extra: Any) -> None:
    """The --json line of a network verb: what moved (a Transfer or a PushResult), the time
    since ``started`` (time.monotonic()), the restore part, and the verb's own fields."""
    import time

    obj = {
        "verb": verb,
        "objects": moved.objects,
        "bytes": moved.bytes,
        "path": moved.path,
        "wire_seconds": round(moved.wire_seconds, 6),
        "restore_seconds": round(restore, 6),
        "seconds": round(time.monotonic() - started, 6),
    }
    obj.update(extra)
    tr = sys.modules.get("muse.client.transport")
    if tr is not None:  # HTTP requests, connections and round trips of the whole verb
        obj.update(tr.TOTALS)
    import json

    sys.stdout.write(json.dumps(obj) + "\n")
