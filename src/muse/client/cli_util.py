"""What the network commands share: common options, the --json summary, error translation.

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


def open_repo() -> Any:
    from muse.cli._util import open_repo as _open

    return _open()


def translate(e: BaseException) -> BaseException:
    """Local-library exceptions as one-line UserErrors with the right exit code."""
    from muse.cli.errors import GENERAL, NOT_FOUND, REJECTED, USAGE, UserError

    if isinstance(e, UserError):
        return e
    name = type(e).__name__
    if name == "CheckoutConflict":
        return UserError(str(e), GENERAL)
    if name in ("MergeError", "MergeInProgress", "UnsafePath", "ConfigError"):
        return UserError(str(e), GENERAL)
    if name == "RefConflict":
        return UserError(f"{e} (another muse command is running? try again)", REJECTED)
    if name == "RefNameError":
        return UserError(str(e), USAGE)
    if name in ("UnknownRevision", "NotARepository"):
        return UserError(str(e), NOT_FOUND)
    if name == "PackError":
        return UserError(f"broken pack: {e}", GENERAL)
    return e


class translated:
    """Context manager: re-raise library errors as UserErrors."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, et: Any, e: BaseException | None, tb: Any) -> None:
        if e is None or not isinstance(e, Exception):
            return
        t = translate(e)
        if t is not e:
            raise t from None
