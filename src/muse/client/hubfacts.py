"""What a hub said about itself last time (its limits, its object store's origin), per user.

A presigned push planned against the remote-tracking refs can skip the refs request (its
presign asks for the refs instead, docs/wire.md §4 "push/presign"), but it must choose its
path from the hub's limits and open the object store's connection beside its first request:
both are hub-wide facts that change rarely, so the last refs answer's are kept here, in
``hubs.json`` beside ``credentials.toml``. It is a cache: a missing, unreadable or stale file
costs one request, never a wrong result (the presign answer is authoritative), and a write
that finds the file locked by another muse is skipped.
"""

from __future__ import annotations

import json
import os
from typing import Any

from muse.core.lockfile import LockFile, LockHeld
from muse.core.record import Record

FILE_NAME = "hubs.json"


class HubFacts(Record):
    """A hub's limits (the refs document's ``limits``) and store origin (None: the hub
    itself serves its presigned URLs)."""

    _fields = ("limits", "store_origin")

    def __init__(self, limits: dict[str, Any], store_origin: str | None) -> None:
        self.limits = limits
        self.store_origin = store_origin


def path() -> str:
    from muse.client.credentials import config_dir

    return os.path.join(config_dir(), FILE_NAME)


def _load_all() -> dict[str, Any]:
    try:
        with open(path(), "rb") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load(origin: str) -> HubFacts | None:
    """What the hub at ``origin`` said last, or None when it was never asked (or the entry
    does not parse)."""
    entry = _load_all().get(origin)
    if not isinstance(entry, dict) or not isinstance(entry.get("limits"), dict):
        return None
    store = entry.get("store_origin")
    return HubFacts(dict(entry["limits"]), store if isinstance(store, str) else None)


def remember(origin: str, facts: HubFacts) -> None:
    """Keep the hub's facts (a write only when they changed)."""
    hubs = _load_all()
    entry = {"limits": facts.limits, "store_origin": facts.store_origin}
    if hubs.get(origin) == entry:
        return
    hubs[origin] = entry
    d = os.path.dirname(path())
    try:
        os.makedirs(d, mode=0o700, exist_ok=True)
        with LockFile(path(), mode=0o600, what="the hub cache") as lock:
            lock.write(json.dumps(hubs, sort_keys=True, indent=1).encode())
    except (OSError, LockHeld):
        pass  # a cache: the next refs answer writes it
