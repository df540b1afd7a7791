"""What the network commands share: common options and the --json summary.

Kept free of heavy imports: ``add_*`` run for ``--help`` and must not pull in the transport.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


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


def summary(
    verb: str,
    objects: int,
    nbytes: int,
    path: str,
    wire: float,
    restore: float,
    seconds: float,
    **extra: Any,
) -> None:
    obj = {
        "verb": verb,
        "objects": objects,
        "bytes": nbytes,
        "path": path,
        "wire_seconds": round(wire, 6),
        "restore_seconds": round(restore, 6),
        "seconds": round(seconds, 6),
    }
    obj.update(extra)
    import json

    sys.stdout.write(json.dumps(obj) + "\n")
