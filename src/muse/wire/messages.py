"""MuseWire's messages: everything client and hub must agree on, written once (docs/wire.md).

The protocol version and its header, the content types, the default stream/presign
thresholds, the ref-update JSON and the push header that carries it, and the refs document.
The client's session builds and reads them with these functions and the hub's routes and
receive path parse and build them with the same ones, so the two cannot drift apart. A
message that does not parse raises :class:`MessageError` with the code the hub answers
(docs/wire.md §2); the client reports the same error as a hub that did not answer like one.
"""

from __future__ import annotations

import json
import struct
from typing import Any, BinaryIO

from muse.core.objects import from_hex
from muse.core.record import Frozen
from muse.core.refnames import RefNameError, check_ref_name
from muse.errors import HubRefused

__all__ = [
    "DEFAULT_LIMITS",
    "JSON_TYPE",
    "MAX_HEADER_BYTES",
    "MAX_UPDATES",
    "PACK_TYPE",
    "PROTOCOL_HEADER",
    "PROTOCOL_VERSION",
    "PUSH_TYPE",
    "MessageError",
    "RefUpdate",
    "RefsDocument",
    "STREAM_MAX_BLOBS",
    "STREAM_MAX_BYTES",
    "STORE_ORIGIN_HEADER",
    "check_protocol",
    "decode_refs",
    "encode_push_header",
    "encode_refs",
    "parse_updates",
    "read_push_header",
    "update_json",
]

PROTOCOL_VERSION = 1
#: Sent by the client on every protocol request and by the hub on every answer.
PROTOCOL_HEADER = "Muse-Protocol"
#: On the refs answer of a hub whose presigned URLs are on another origin (object storage):
#: that origin, so a client opens its connection while the hub prepares a bundle.
STORE_ORIGIN_HEADER = "Muse-Store-Origin"

PUSH_TYPE = "application/x-muse-push"  # push/stream body: push header, then the pack
PACK_TYPE = "application/x-muse-pack"  # a fetch answer streamed by the hub
JSON_TYPE = "application/json"

#: The default stream/presign thresholds (docs/wire.md §3): a transfer of at most 500 blobs
#: whose sizes add up to at most 50 MiB streams through the hub, a larger one is presigned.
STREAM_MAX_BLOBS = 500
STREAM_MAX_BYTES = 50 * 1024 * 1024

#: What the hub announces in the refs document unless configured otherwise.
DEFAULT_LIMITS: dict[str, int | None] = {
    "stream_max_blobs": STREAM_MAX_BLOBS,
    "stream_max_bytes": STREAM_MAX_BYTES,
    "max_pack_bytes": None,
    "max_object_bytes": None,
}

#: A push moves at most this many refs, and its header is at most this long.
MAX_UPDATES = 1000
MAX_HEADER_BYTES = 1 << 20

_HEADER_LEN = struct.Struct(">I")


class MessageError(HubRefused):
    """A protocol message that does not parse; ``code`` is docs/wire.md §2's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_protocol(value: str | None) -> None:
    """Refuse a peer that names a protocol version other than ours (absent means ours)."""
    if value is None or value.strip() == str(PROTOCOL_VERSION):
        return
    raise MessageError(
        "unsupported_protocol",
        f"MuseWire protocol {value.strip()[:20]!r} is not supported; this side speaks "
        f"{PROTOCOL_VERSION}",
    )


# ------------------------------------------------------------------------- ref updates
class RefUpdate(Frozen):
    """Move ``ref`` from ``old`` to ``new`` (None: absent); ``force`` skips the ancestry check."""

    __slots__ = ("ref", "old", "new", "force")

    ref: str
    old: bytes | None
    new: bytes | None
    force: bool

    def __init__(self, ref: str, old: bytes | None, new: bytes | None, force: bool = False):
        _set = object.__setattr__
        _set(self, "ref", ref)
        _set(self, "old", old)
        _set(self, "new", new)
        _set(self, "force", force)


def update_json(ref: str, old: bytes | None, new: bytes | None, force: bool) -> dict[str, Any]:
    """One entry of the ``updates`` list."""
    return {
        "ref": ref,
        "old": old.hex() if old else None,
        "new": new.hex() if new else None,
        "force": force,
    }


def _id_or_null(value: object, what: str) -> bytes | None:
    if value is None:
        return None
    try:
        return from_hex(value)  # type: ignore[arg-type]
    except ValueError:
        raise MessageError("invalid_id", f"{what}: not an object id: {value!r}") from None


def parse_updates(doc: object) -> list[RefUpdate]:
    """The validated ``updates`` list of a push (push/stream header or push/commit body)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("updates"), list):
        raise MessageError("bad_request", 'expected {"updates": [...]}')
    raw = doc["updates"]
    if not raw:
        raise MessageError("bad_request", "no ref updates")
    if len(raw) > MAX_UPDATES:
        raise MessageError("bad_request", f"more than {MAX_UPDATES} ref updates")
    out: list[RefUpdate] = []
    seen: set[str] = set()
    for u in raw:
        if not isinstance(u, dict) or not isinstance(u.get("ref"), str):
            raise MessageError("bad_request", "each update needs a 'ref' string")
        try:
            ref = check_ref_name(u["ref"])
        except RefNameError as e:
            raise MessageError("invalid_ref_name", str(e)) from None
        if ref in seen:
            raise MessageError("bad_request", f"ref {ref} updated twice")
        seen.add(ref)
        old = _id_or_null(u.get("old"), f"{ref} old")
        new = _id_or_null(u.get("new"), f"{ref} new")
        force = u.get("force", False)
        if not isinstance(force, bool):
            raise MessageError("bad_request", "'force' must be true or false")
        if old is None and new is None:
            raise MessageError("bad_request", f"{ref}: old and new are both null")
        out.append(RefUpdate(ref, old, new, force))
    return out


def encode_push_header(updates: list[dict[str, Any]]) -> bytes:
    """What opens a push/stream body: the JSON's length (u32 big-endian), then the JSON."""
    head = json.dumps({"updates": updates}, separators=(",", ":")).encode()
    return _HEADER_LEN.pack(len(head)) + head


def parse_json(raw: bytes) -> Any:
    """JSON of a message; nesting too deep for the parser is invalid JSON, not a crash."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise MessageError("invalid_json", f"invalid JSON: {e}") from None
    except RecursionError:
        raise MessageError("invalid_json", "invalid JSON: nested too deeply") from None


def read_push_header(stream: BinaryIO) -> list[RefUpdate]:
    """Read and validate the push header at the start of a push/stream body."""
    head = stream.read(4)
    if len(head) < 4:
        raise MessageError("bad_request", "body too short for the push header")
    n = int.from_bytes(head, "big")
    if n > MAX_HEADER_BYTES:
        raise MessageError("bad_request", f"push header of {n} bytes is too large")
    raw = b""
    while len(raw) < n:
        chunk = stream.read(n - len(raw))
        if not chunk:
            raise MessageError("bad_request", "body ends inside the push header")
        raw += chunk
    return parse_updates(parse_json(raw))


# ---------------------------------------------------------------------- refs document
class RefsDocument(Frozen):
    """``GET .../refs``: the refs, the default branch and the limits the hub announces."""

    __slots__ = ("refs", "default_branch", "limits")

    refs: dict[str, bytes]
    default_branch: str | None
    limits: dict[str, Any]

    def __init__(
        self, refs: dict[str, bytes], default_branch: str | None, limits: dict[str, Any]
    ) -> None:
        _set = object.__setattr__
        _set(self, "refs", refs)
        _set(self, "default_branch", default_branch)
        _set(self, "limits", limits)

    def __hash__(self) -> int:  # dict fields: equality only
        raise TypeError("RefsDocument is not hashable")


def encode_refs(
    refs: dict[str, bytes], default_branch: str | None, limits: dict[str, Any]
) -> dict[str, Any]:
    return {
        "protocol": PROTOCOL_VERSION,
        "default_branch": default_branch,
        "refs": {name: oid.hex() for name, oid in sorted(refs.items())},
        "limits": {k: limits.get(k, v) for k, v in DEFAULT_LIMITS.items()},
    }


def decode_refs(obj: object) -> RefsDocument:
    """Parse a refs document; MessageError ("bad_response" or "unsupported_protocol")."""
    if not isinstance(obj, dict) or not isinstance(obj.get("refs"), dict):
        raise MessageError("bad_response", "not a MuseWire refs document")
    version = obj.get("protocol", PROTOCOL_VERSION)
    if version != PROTOCOL_VERSION:
        raise MessageError(
            "unsupported_protocol",
            f"speaks MuseWire protocol {version!r}, this side speaks {PROTOCOL_VERSION}",
        )
    refs: dict[str, bytes] = {}
    for name, value in obj["refs"].items():
        if not value:
            continue
        try:
            refs[str(name)] = from_hex(value)
        except (ValueError, TypeError):
            raise MessageError("bad_response", f"ref {name!r}: not an object id") from None
    default = obj.get("default_branch")
    limits = obj.get("limits")
    return RefsDocument(
        refs,
        default if isinstance(default, str) else None,
        dict(limits) if isinstance(limits, dict) else {},
    )
