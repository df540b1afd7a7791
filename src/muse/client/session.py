"""One conversation with a hub repository: its endpoints (docs/wire.md §4) over one Transport.

Each method is one request; a verb uses a fixed, small number of them whatever its size
(refs + one push or fetch request, plus the bundle transfers on the presign path).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, BinaryIO

from muse.client import credentials
from muse.client.transport import (
    ErrorContext,
    HubURL,
    Response,
    Transport,
    WireError,
    check_token_allowed,
)
from muse.core.record import Record
from muse.wire.messages import (
    DEFAULT_LIMITS,
    JSON_TYPE,
    PACK_TYPE,
    PUSH_TYPE,
    STORE_ORIGIN_HEADER,
    MessageError,
    decode_refs,
    encode_push_header,
)

if TYPE_CHECKING:
    from muse.client.transport import ConnectionFactory
    from muse.core.pack.splice import SplicedPack


class RemoteRefs(Record):
    _fields = ("refs", "default_branch", "limits")

    def __init__(
        self,
        refs: dict[str, bytes],
        default_branch: str | None,
        limits: dict[str, Any] | None = None,
    ) -> None:
        self.refs = refs
        self.default_branch = default_branch
        self.limits: dict[str, Any] = {} if limits is None else limits

    def limit(self, name: str) -> Any:
        v = self.limits.get(name)
        return DEFAULT_LIMITS.get(name) if v is None else v


class Session:
    """A hub repository reached at ``url`` with the user's stored token (if any)."""

    def __init__(
        self,
        url: str,
        write: bool = False,
        token: str | None = None,
        connection: ConnectionFactory | None = None,
    ) -> None:
        """``connection``: how connections are made (see Transport); default http11's."""
        self.url = HubURL.parse(url)
        self.token = token if token is not None else credentials.token_for(self.url.origin)
        if self.token:
            check_token_allowed(self.url.origin)
        self.transport = Transport(
            token=self.token,
            hub_origin=self.url.origin,
            context=ErrorContext(self.url.hub, self.url.name, write, bool(self.token)),
            connection=connection,
        )
        #: Where presigned URLs point when the hub said (refs): see open_store.
        self.store_origin: str | None = None

    def open_store(self) -> None:
        """Open the object store's connection while the next request to the hub is in flight
        (a presigned transfer then saves its TCP and TLS round trips)."""
        if self.store_origin is not None and self.store_origin != self.url.origin:
            self.transport.preconnect(self.store_origin)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _url(self, tail: str) -> str:
        return f"{self.url.repo_url}/{tail}"

    def _json_body(self, obj: Any) -> Callable[[], bytes]:
        data = json.dumps(obj, separators=(",", ":")).encode()
        return lambda: data

    # ----------------------------------------------------------------------- endpoints
    def refs(self) -> RemoteRefs:
        resp = self.transport.request("GET", self._url("refs"))
        return self._remote_refs(resp, resp.json())

    def _remote_refs(self, resp: Response, obj: object) -> RemoteRefs:
        """A refs document (``obj``, from ``resp``), its store origin noted here and both
        kept in the hub cache (muse.client.hubfacts) for the next push."""
        from muse.client import hubfacts

        store = resp.header(STORE_ORIGIN_HEADER)
        self.store_origin = store if store and store.startswith(("https://", "http://")) else None
        try:
            doc = decode_refs(obj)
        except MessageError as e:
            if e.code == "unsupported_protocol":
                raise WireError(
                    f"{self.url.hub} {e} (upgrade muse)", "hub_refused", e.code
                ) from None
            raise WireError(
                f"{self.url.hub} did not answer like a MuseHub (check the URL)",
                "hub_refused",
                "bad_response",
            ) from None
        hubfacts.remember(self.url.origin, hubfacts.HubFacts(doc.limits, self.store_origin))
        return RemoteRefs(doc.refs, doc.default_branch, doc.limits)

    def push_stream(
        self, updates: list[dict[str, Any]], pack: Callable[[], Iterable[bytes]]
    ) -> dict[str, Any]:
        prefix = encode_push_header(updates)

        def body() -> Iterable[bytes]:
            yield prefix
            yield from pack()

        resp = self.transport.request(
            "POST",
            self._url("push/stream"),
            body=body,
            headers={"Content-Type": PUSH_TYPE},
        )
        return dict(resp.json())

    def push_stream_file(
        self,
        updates: list[dict[str, Any]],
        path: str,
        size: int,
        on_bytes: Callable[[int], object] | None = None,
    ) -> dict[str, Any]:
        """push/stream of a pack that is a file already, sent with its Content-Length: a body
        cap on the way (the hub's, an edge proxy's) then refuses it on the headers, and the
        connection (muse.client.http11) stops sending as soon as that answer is there."""
        with _FileBody(path, size, on_bytes, encode_push_header(updates)) as body:
            resp = self.transport.request(
                "POST", self._url("push/stream"), body=body, headers={"Content-Type": PUSH_TYPE}
            )
            return dict(resp.json())

    def push_stage(self, pack: Callable[[], Iterable[bytes]]) -> dict[str, Any]:
        """Send one segment of a large push (blobs only; no ref moves)."""
        resp = self.transport.request(
            "POST", self._url("push/stage"), body=pack, headers={"Content-Type": PACK_TYPE}
        )
        return dict(resp.json())

    def objects_missing(self, ids: list[bytes]) -> set[bytes]:
        """Which of ``ids`` the hub's repository lacks (asked in batches of 100,000)."""
        out: set[bytes] = set()
        for i in range(0, len(ids), 100_000):
            resp = self.transport.request(
                "POST",
                self._url("objects/missing"),
                body=self._json_body({"ids": [o.hex() for o in ids[i : i + 100_000]]}),
                headers={"Content-Type": JSON_TYPE},
            )
            out.update(bytes.fromhex(h) for h in resp.json()["missing"])
        return out

    def push_presign(self, size: int, objects: int, sha256: bytes | None = None) -> dict[str, Any]:
        return self.push_presign_with_refs(size, objects, sha256, False)[0]

    def push_presign_with_refs(
        self, size: int, objects: int, sha256: bytes | None, with_refs: bool = True
    ) -> tuple[dict[str, Any], RemoteRefs | None]:
        """An upload ticket and (``with_refs``) the hub's refs as of now, in one request: what
        a push planned against the remote-tracking refs checks its plan with (None from a hub
        that does not answer them)."""
        doc: dict[str, Any] = {"size": size, "objects": objects}
        if sha256 is not None:
            doc["sha256"] = sha256.hex()
        if with_refs:
            doc["refs"] = True
        resp = self.transport.request(
            "POST",
            self._url("push/presign"),
            body=self._json_body(doc),
            headers={"Content-Type": JSON_TYPE},
        )
        ticket = dict(resp.json())
        refs = ticket.pop("refs", None)
        if not with_refs or refs is None:
            return ticket, None
        return ticket, self._remote_refs(resp, refs)

    def put_bundle(
        self,
        url: str,
        headers: dict[str, str],
        source: str | SplicedPack,
        size: int,
        on_bytes: Callable[[int], object] | None = None,
    ) -> None:
        """PUT a pack to a presigned URL: the file at ``source``, or the spliced pack;
        ``on_bytes(n)`` as it is read."""
        body: _FileBody | _SplicedBody
        if isinstance(source, str):
            body = _FileBody(source, size, on_bytes)
        else:
            body = _SplicedBody(source, on_bytes)
        with body:
            resp = self.transport.request(
                "PUT", self._resolve(url), body=body, headers=dict(headers), presigned=True
            )
            resp.read()
            resp.close()

    def push_commit(
        self, upload_id: str, updates: list[dict[str, Any]], stage: bool = False
    ) -> dict[str, Any]:
        doc: dict[str, Any] = {"upload_id": upload_id, "updates": updates}
        if stage:
            doc["stage"] = True
        resp = self.transport.request(
            "POST",
            self._url("push/commit"),
            body=self._json_body(doc),
            headers={"Content-Type": JSON_TYPE},
        )
        return dict(resp.json())

    def fetch_bundle(
        self,
        wants: list[bytes],
        haves: list[bytes],
        path: str,
        have_objects: list[bytes] | None = None,
    ) -> Response:
        """Ask for a pack; ``have_objects``: blobs an interrupted fetch already received."""
        doc: dict[str, Any] = {
            "wants": [w.hex() for w in wants],
            "haves": [h.hex() for h in haves],
            "path": path,
        }
        if have_objects:
            doc["have_objects"] = [o.hex() for o in have_objects]
        return self.transport.request(
            "POST",
            self._url("fetch/bundle"),
            body=self._json_body(doc),
            headers={"Content-Type": JSON_TYPE},
        )

    def get_bundle(self, url: str) -> Response:
        return self.transport.request("GET", self._resolve(url), presigned=True)

    def user(self) -> dict[str, Any]:
        resp = self.transport.request("GET", f"{self.url.hub}/api/user")
        return dict(resp.json())

    def _resolve(self, url: str) -> str:
        """Presigned URLs may be relative to the hub (local storage serves its own)."""
        if url.startswith("/"):
            return self.url.origin + url
        return url


def hub_session(hub_url: str, token: str | None) -> Transport:
    """A transport to a hub itself (no repository), for ``muse auth``."""
    from muse.client.transport import origin_of

    origin = origin_of(hub_url)
    if token:
        check_token_allowed(origin)
    return Transport(token=token, hub_origin=origin, context=ErrorContext(origin, "", False, True))


class _Reporting:
    """A file being sent, reporting each read's size (upload progress)."""

    def __init__(self, f: BinaryIO, on_bytes: Callable[[int], object]) -> None:
        self.f = f
        self.on_bytes = on_bytes

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.on_bytes(len(data))
        return data

    def close(self) -> None:
        self.f.close()


class _FileBody:
    """A request body read from the file at ``path`` (after ``prefix``), ``size`` bytes of
    it: each call (each attempt of the transport) opens the file afresh and closes the last
    one; leaving the block closes what is open. ``on_bytes(n)`` as the file is read."""

    def __init__(
        self,
        path: str,
        size: int,
        on_bytes: Callable[[int], object] | None = None,
        prefix: bytes = b"",
    ) -> None:
        self.path = path
        self.size = size
        self.on_bytes = on_bytes
        self.prefix = prefix
        self._open: BinaryIO | None = None

    def __call__(self) -> tuple[BinaryIO, int]:
        self.close()
        f = self._open = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        body: Any = _Reporting(f, self.on_bytes) if self.on_bytes is not None else f
        if self.prefix:
            body = _Prefixed(self.prefix, body)
        return body, len(self.prefix) + self.size

    def close(self) -> None:
        if self._open is not None:
            self._open.close()
            self._open = None

    def __enter__(self) -> _FileBody:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _SplicedBody(_FileBody):
    """A spliced pack (pack.splice) as a request body: each attempt reads it afresh."""

    def __init__(self, pack: SplicedPack, on_bytes: Callable[[int], object] | None) -> None:
        super().__init__("", pack.size, on_bytes)
        self.pack = pack

    def __call__(self) -> tuple[Any, int]:
        self.close()
        reader: Any = self.pack.reader(self.on_bytes)
        self._open = reader
        return reader, self.pack.size


class _Prefixed:
    """A request body file: ``prefix``, then what ``f`` reads."""

    def __init__(self, prefix: bytes, f: Any) -> None:
        self.prefix = prefix
        self.f = f

    def read(self, n: int = -1) -> bytes:
        if self.prefix:
            head = self.prefix if n < 0 else self.prefix[:n]
            self.prefix = self.prefix[len(head) :]
            return head
        return bytes(self.f.read(n))
