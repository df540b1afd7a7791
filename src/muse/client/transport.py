"""HTTP for MuseWire: one keep-alive connection per host, streaming bodies, retries, errors.

Connections come from a factory handed to :class:`Transport` (``connection=``; the seam is typed
by :class:`Connection` and :class:`RawResponse`). The default is :mod:`muse.client.http11` (only
``socket`` to import): every socket gets TCP_NODELAY so a
small request never waits on a delayed ACK, a verb's requests reuse one connection, request
bodies are streamed (chunked from a generator, or from a file with a Content-Length) and
response bodies are handed to the caller as a stream (fed straight into ``receive_pack``).

Transient failures (a connection reset or cut, a timeout, 5xx, 429) are retried under the one
:class:`RetryPolicy` of the command (every retry of every request and of every verb's
multi-request exchange spends the same budget); "connection refused" and an unknown host fail
at once. Every failure that reaches the user becomes a :class:`WireError` (a
:class:`muse.errors.MuseError` of the right kind) with a one-line message saying what to do.
A token is only ever sent to the hub itself, and never over plain http:// unless the hub is
on this machine (loopback).
"""

from __future__ import annotations

import _thread
import json
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol
from urllib.parse import SplitResult, urlsplit

from muse.client import http11
from muse.core.record import Record
from muse.errors import MuseError, UsageError
from muse.wire.messages import PROTOCOL_HEADER, PROTOCOL_VERSION

InvalidRequest = http11.InvalidRequest
"""A request a connection refuses to send (a ``ValueError``; nothing was sent)."""

NET_ERRORS: tuple[type[BaseException], ...] = (OSError,)
"""What a broken connection raises here (http11 reports protocol errors as OSError too)."""

USER_AGENT = "muse/0.1"
CHUNK = 1 << 20
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_STALE = (ConnectionResetError, BrokenPipeError)
#: A request body at least this big (or streamed) is an upload: re-sent at most MAX_RESENDS times.
BIG_BODY = 1 << 20
MAX_RESENDS = 2


#: What every Transport of this process sent: the --json counters of the one verb a muse
#: command runs (a pull's fetch and any second session included).
TOTALS = {"requests": 0, "connections": 0, "round_trips": 0}
_TOTALS_LOCK = _thread.allocate_lock()  # (the threading module costs start-up: not imported)


class WireError(MuseError):
    """A request that failed for good; ``kind`` says what the user can do about it (see
    :mod:`muse.errors`), ``code`` is the hub's error code (or our own)."""

    def __init__(
        self, message: str, kind: str, code: str = "", status: int = 0, retryable: bool = False
    ) -> None:
        super().__init__(message, kind=kind)
        self.code = code
        self.status = status
        self.retryable = retryable
        #: Seconds the hub asked to wait before a retry (its Retry-After), if it said.
        self.retry_after: float | None = None


class ExpiredURL(WireError):
    """A presigned URL that storage no longer accepts: ask the hub for a new one."""


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, ""))
    except ValueError:
        return default


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, ""))
    except ValueError:
        return default


class RetryPolicy:
    """The one retry policy of one command (one Transport): a total budget for all its retries.

    At most ``retries`` retries in all and none once ``seconds`` have passed since the
    command's first failure, whoever retries (a request, or a verb asking again for a new
    presigned URL or a fetch cut mid-body): nested loops share it, so one failure is never
    tried more than ``retries + 1`` times. The wait before a retry is exponential with jitter
    (``backoff`` x 2^n x [0.5, 1)), or what the hub asked for with ``Retry-After``; a
    ``Retry-After`` beyond what is left of the budget ends the retries at once (waiting
    less would only be refused again). An upload (a body of BIG_BODY bytes or more, or a
    streamed one) is re-sent at most MAX_RESENDS times.
    """

    def __init__(
        self, retries: int | None = None, seconds: float | None = None, backoff: float | None = None
    ) -> None:
        self.retries = _env_int("MUSE_HTTP_RETRIES", 4) if retries is None else retries
        self.seconds = _env_float("MUSE_HTTP_RETRY_SECONDS", 30.0) if seconds is None else seconds
        self.backoff = _env_float("MUSE_HTTP_BACKOFF", 0.25) if backoff is None else backoff
        self.used = 0
        self.resends = 0
        self._first_failure: float | None = None

    def wait(self, retry_after: float | None = None, upload: bool = False) -> bool:
        """Sleep before one more retry and return True, or return False: the budget is spent."""
        now = time.monotonic()
        if self._first_failure is None:
            self._first_failure = now
        left = self._first_failure + self.seconds - now
        if self.used >= self.retries or left <= 0 or (upload and self.resends >= MAX_RESENDS):
            return False
        if retry_after is not None:
            if retry_after > left:
                return False
            delay = max(retry_after, 0.0)
        else:
            import random  # only on a retry: 2 ms of every network command's start-up

            delay = min(self.backoff * (2**self.used) * random.uniform(0.5, 1.0), left)
        self.used += 1
        if upload:
            self.resends += 1
        time.sleep(delay)
        return True


# ------------------------------------------------------------------------------- URLs
class HubURL(Record):
    """``http://host:port[/prefix]/owner/slug``: where the hub is and which repository."""

    _fields = ("scheme", "host", "port", "prefix", "owner", "slug")

    def __init__(
        self, scheme: str, host: str, port: int, prefix: str, owner: str, slug: str
    ) -> None:
        _set = object.__setattr__
        _set(self, "scheme", scheme)
        _set(self, "host", host)
        _set(self, "port", port)
        _set(self, "prefix", prefix)  # path before /owner/slug ("" for a hub at the root)
        _set(self, "owner", owner)
        _set(self, "slug", slug)

    scheme: str
    host: str
    port: int
    prefix: str
    owner: str
    slug: str

    def __setattr__(self, name: str, value: Any) -> None:  # frozen
        raise AttributeError(f"cannot assign to field {name!r}")

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(self._values())

    @classmethod
    def parse(cls, url: str) -> HubURL:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(
                f"not a hub repository URL: {url!r} (expected http(s)://host[:port]/owner/repo)"
            )
        segs = [s for s in parts.path.split("/") if s]
        if len(segs) < 2:
            raise UsageError(f"the URL {url!r} names no repository (expected .../owner/repo)")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise UsageError(f"bad port in URL {url!r}") from None
        prefix = "/" + "/".join(segs[:-2]) if len(segs) > 2 else ""
        return cls(parts.scheme, parts.hostname, port, prefix, segs[-2], segs[-1])

    @property
    def origin(self) -> str:
        """``scheme://host:port``: the key credentials are stored under."""
        return origin_of(f"{self.scheme}://{_hostport(self.host, self.port)}")

    @property
    def hub(self) -> str:
        return self.origin + self.prefix

    @property
    def repo_url(self) -> str:
        return f"{self.hub}/{self.owner}/{self.slug}"

    @property
    def name(self) -> str:
        return f"{self.owner}/{self.slug}"


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def origin_of(url: str) -> str:
    """Normalise a hub URL to ``scheme://host:port`` (explicit port, lower-case host)."""
    p = urlsplit(url.strip())
    if p.scheme not in ("http", "https") or not p.hostname:
        raise UsageError(f"not a hub URL: {url!r} (expected http(s)://host[:port])")
    try:
        port = p.port or (443 if p.scheme == "https" else 80)
    except ValueError:
        raise UsageError(f"bad port in URL {url!r}") from None
    return f"{p.scheme}://{_hostport(p.hostname.lower(), port)}"


def is_loopback(host: str) -> bool:
    h = host.lower().strip("[]")
    if h == "localhost" or h.endswith(".localhost") or h == "::1":
        return True
    parts = h.split(".")
    return len(parts) == 4 and parts[0] == "127" and all(p.isdigit() for p in parts)


# ---------------------------------------------------------------------------- connections
Body = bytes | Iterable[bytes] | tuple[BinaryIO, int] | None
BodyFactory = Callable[[], Body]


if TYPE_CHECKING:  # the seam's types; classes built by typing cost ~0.15 ms at start-up

    class RawResponse(Protocol):
        """What a connection's ``request`` returns: the status and headers have been read, the
        body has not (``http11.Response``; ``http.client.HTTPResponse`` has the same shape)."""

        status: int
        #: Body bytes still to read when known (Content-Length framing), else None.
        length: int | None
        #: The server will close the connection after this answer (it cannot be reused).
        will_close: bool

        def getheader(self, name: str, default: str | None = None) -> str | None: ...

        def read(self, n: int = -1, /) -> bytes: ...

        def readinto(self, b: Any, /) -> int: ...

        def isclosed(self) -> bool: ...

        def close(self) -> None: ...

    class Connection(Protocol):
        """One keep-alive connection to one (scheme, host, port), connected on first use.

        ``request`` sends one request (``body``: None, bytes, ``(file, length)`` sent with a
        Content-Length, or an iterator of chunks sent with chunked encoding) and returns the answer
        with its status and headers read. A broken connection or an answer that is not HTTP raises
        ``OSError`` (``ConnectionResetError`` for a peer that closed an idle connection, so the
        request is retried once on a fresh one); a request the connection refuses to send (CR or
        LF in a header, ...) raises :class:`InvalidRequest` (a ``ValueError``) before anything is
        sent.
        """

        #: Not None while connected: a request on a connected socket may meet a stale keep-alive.
        sock: Any

        def request(
            self, method: str, target: str, headers: dict[str, str], body: Body, /
        ) -> RawResponse: ...

        def close(self) -> None: ...

    class ConnectionFactory(Protocol):
        """Makes a :class:`Connection`; ``http11.Connection`` (the class itself) is one."""

        def __call__(
            self, host: str, port: int, tls: bool = ..., timeout: float = ...
        ) -> Connection: ...


class Response:
    """A response whose body has not been read yet: read ``json()`` or stream ``body``."""

    def __init__(self, transport: Transport, key: tuple[str, str, int], raw: RawResponse) -> None:
        self._transport = transport
        self._key = key
        self.raw: RawResponse = raw
        self.status: int = raw.status
        self.bytes_read = 0

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.raw.getheader(name, default)

    @property
    def content_type(self) -> str:
        return (self.header("Content-Type") or "").split(";")[0].strip().lower()

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n) if n >= 0 else self.raw.read()
        self.bytes_read += len(data)
        return data

    def readinto(self, b: Any) -> int:
        n = self.raw.readinto(b)
        self.bytes_read += n
        return n

    def json(self) -> Any:
        data = self.read()
        self.close()
        try:
            return json.loads(data)
        except ValueError:
            raise WireError(
                f"the hub sent an answer that is not JSON (status {self.status}); "
                "is the URL a MuseHub?",
                "hub_refused",
                "bad_response",
                self.status,
            ) from None

    def close(self) -> None:
        """Finish with the body; the connection is kept when the body was read to the end."""
        if not self.raw.isclosed():
            try:
                # drain a small remainder so the connection can be reused
                left = self.raw.length
                if left is not None and left <= 65536:
                    self.raw.read()
                else:
                    self._transport._drop(self._key)
            except OSError:
                self._transport._drop(self._key)
        if self.raw.will_close:
            self._transport._drop(self._key)


class ErrorContext(Record):
    """What the user was doing, so errors can say what to do next."""

    _fields = ("hub", "repo", "write", "token")

    def __init__(self, hub: str = "", repo: str = "", write: bool = False, token: bool = False):
        self.hub = hub
        self.repo = repo
        self.write = write
        self.token = token


class Transport(Record):
    """One client's HTTP: keep-alive connections per (scheme, host, port), retry policy.

    ``connection`` makes the connections (``connection(host, port, tls=..., timeout=...)``);
    the default is the small HTTP/1.1 client of :mod:`muse.client.http11`.
    """

    _fields = (
        "token",
        "hub_origin",
        "timeout",
        "retries",
        "backoff",
        "context",
        "requests",
        "connection",
    )

    def __init__(
        self,
        token: str | None = None,
        hub_origin: str = "",
        timeout: float | None = None,
        retries: int | None = None,
        backoff: float | None = None,
        context: ErrorContext | None = None,
        requests: int = 0,
        connection: ConnectionFactory | None = None,
    ) -> None:
        self.token = token
        self.hub_origin = hub_origin
        self.timeout = _env_float("MUSE_HTTP_TIMEOUT", 120.0) if timeout is None else timeout
        #: The command's one retry budget (see RetryPolicy); verbs that retry an exchange
        #: of several requests spend the same one.
        self.retry = RetryPolicy(retries, None, backoff)
        self.retries = self.retry.retries
        self.backoff = self.retry.backoff
        self.context = ErrorContext() if context is None else context
        self.requests = requests
        self.connection: ConnectionFactory = http11.Connection if connection is None else connection
        #: Connections opened and round trips spent (each request, plus each new connection's
        #: TCP, proxy CONNECT and TLS handshakes), for --json.
        self.connections = 0
        self.round_trips = 0
        self._last_url = ""
        self._conns: dict[tuple[str, str, int], Connection] = {}
        #: Connections being opened ahead of their first request (preconnect): the thread,
        #: and the connection once its handshakes succeeded.
        self._opening: dict[tuple[str, str, int], tuple[Any, list[Connection]]] = {}
        #: Setup round trips the first request on a preconnected connection still waited for.
        self._preopened: dict[tuple[str, str, int], int] = {}
        self._closed = False
        if self.token and self.hub_origin:
            check_token_allowed(self.hub_origin)

    # ----------------------------------------------------------------------- plumbing
    def preconnect(self, url: str) -> None:
        """Open the connection for ``url``'s origin on a thread (TCP, proxy CONNECT, TLS), so
        that its handshakes overlap the request in flight to the hub; the first request to
        that origin then waits for it. A failure is not reported here: that request opens a
        connection of its own and reports what goes wrong. Nothing is sent on it."""
        key = _conn_key(urlsplit(url))
        if key is None or key in self._conns or key in self._opening:
            return
        self._closed = False  # used again after a close
        import threading

        done: list[Connection] = []

        def open_it() -> None:
            c = self.connection(key[1], key[2], tls=key[0] == "https", timeout=self.timeout)
            try:
                getattr(c, "connect")()  # noqa: B009 - a test's connection may lack it
            except Exception:  # noqa: BLE001 - the real request reports it
                c.close()
                return
            if self._closed:  # the verb ended without it
                c.close()
                return
            done.append(c)

        t = threading.Thread(target=open_it, name="preconnect", daemon=True)
        self._opening[key] = (t, done)
        t.start()

    def _conn(self, key: tuple[str, str, int]) -> Connection:
        c = self._conns.get(key)
        if c is None and key in self._opening:
            thread, done = self._opening.pop(key)
            overlapped = not thread.is_alive()
            thread.join()
            if done:
                c = self._conns[key] = done[0]
                # counted as a connection at its first request; its handshakes are round
                # trips of the critical path only if they were not over by then
                self._preopened[key] = 0 if overlapped else getattr(c, "setup_round_trips", 1)
        if c is None:
            scheme, host, port = key
            c = self.connection(host, port, tls=scheme == "https", timeout=self.timeout)
            self._conns[key] = c
        return c

    def _drop(self, key: tuple[str, str, int]) -> None:
        c = self._conns.pop(key, None)
        if c is not None:
            c.close()

    def close(self) -> None:
        # A connection still being opened is not waited for (a store that drops packets
        # would hold the verb's end for the connect timeout): its thread closes it.
        self._closed = True
        for key, (thread, done) in list(self._opening.items()):
            if not thread.is_alive():
                for c in done:
                    c.close()
            del self._opening[key]
        for key in list(self._conns):
            self._drop(key)

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------ request
    def request(
        self,
        method: str,
        url: str,
        body: BodyFactory | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        presigned: bool = False,
        retry: bool = True,
    ) -> Response:
        """Send one request (retrying transient failures); returns a response with status < 400.

        ``body`` is a factory so that a retry can produce the body again (a generator of a
        pack is made afresh). Error statuses become WireError; a presigned URL that storage
        refuses (403/400 on GET/PUT) becomes ExpiredURL so the caller can ask for a new one.
        """
        p = urlsplit(url)
        self._last_url = url
        key = _conn_key(p)
        if key is None:
            raise WireError(f"bad URL from the hub: {url!r}", "hub_refused", "bad_url")
        target = p.path or "/"
        if p.query:
            target += "?" + p.query
        hdrs = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if not presigned:
            hdrs[PROTOCOL_HEADER] = str(PROTOCOL_VERSION)
        if auth and self.token and not presigned:
            if origin_of(url) != self.hub_origin:
                raise WireError(
                    f"refusing to send your token to {origin_of(url)} (not the hub)",
                    "hub_refused",
                    "foreign_url",
                )
            hdrs["Authorization"] = f"Bearer {self.token}"
        if headers:
            hdrs.update(headers)
        stale_retry = True
        while True:
            conn = self._conn(key)
            reused = conn.sock is not None
            sent = body() if body else None
            upload = _is_upload(sent)
            try:
                raw = self._send(conn, method, target, hdrs, sent)
            except OSError as e:
                self._drop(key)
                if reused and stale_retry and isinstance(e, _STALE):
                    stale_retry = False  # the hub closed an idle keep-alive connection
                    continue
                err = setup_error(e, url, presigned) or network_error(
                    e, url, self.context, presigned
                )
                if retry and err.retryable and self.retry.wait(upload=upload):
                    continue
                raise err from None
            except http11.InvalidRequest as e:  # refused, nothing sent (CR/LF in a header)
                self._drop(key)
                raise WireError(
                    f"refusing to send the request to {origin_of(url)}: {e}",
                    "hub_refused" if presigned else "usage",
                    "bad_request",
                ) from None
            self.requests += 1
            trips = 1 + (0 if reused else getattr(conn, "setup_round_trips", 1))
            first = not reused
            preopened = self._preopened.pop(key, None)
            if preopened is not None:  # its handshakes ran while another request waited
                trips, first = 1 + preopened, True
            self.round_trips += trips
            if first:
                self.connections += 1
            with _TOTALS_LOCK:  # a verb may run two sessions on two threads (push segments)
                TOTALS["requests"] += 1
                TOTALS["round_trips"] += trips
                TOTALS["connections"] += int(first)
            resp = Response(self, key, raw)
            if resp.status < 400:
                return resp
            err = self._error(resp, presigned, method)
            if retry and err.retryable and self.retry.wait(err.retry_after, upload):
                continue
            raise err

    def _send(
        self,
        conn: Connection,
        method: str,
        target: str,
        headers: dict[str, str],
        body: Body,
    ) -> RawResponse:
        if body is None or isinstance(body, bytes | bytearray | tuple):
            return conn.request(method, target, headers, body)
        return conn.request(method, target, headers, _coalesce(body))

    def _error(self, resp: Response, presigned: bool, method: str) -> WireError:
        status = resp.status
        retry_after = resp.header("Retry-After")
        try:
            data = resp.read(1 << 20)
        except OSError:
            data = b""
        resp.close()
        code, message = "", ""
        try:
            obj = json.loads(data)
            if isinstance(obj, dict):
                code = str(obj.get("error", ""))
                message = str(obj.get("message", ""))
        except ValueError:
            message = _plain_text(data[:4096].decode("utf-8", "replace"))
        if presigned and status in (400, 403) and method in ("GET", "PUT"):
            return ExpiredURL(
                f"storage refused the presigned URL ({status} {code or 'expired'})",
                "hub_refused",
                code or "bad_signature",
                status,
                retryable=False,
            )
        if presigned:
            where = origin_of(self._last_url)
            err = WireError(
                f"object storage at {where} failed ({status}{' ' + code if code else ''})"
                f"{': ' + message[:200] if message else ''} (try again later)",
                "hub_refused",
                code or "storage_error",
                status,
            )
        else:
            err = map_error(status, code, message, self.context)
        if status in _RETRY_STATUSES:
            err.retryable = True
            ra: float | None = None
            if retry_after:
                try:
                    ra = float(retry_after)
                except ValueError:
                    ra = None
            err.retry_after = ra
        return err


def _conn_key(p: SplitResult) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL: the connection it goes over; else None."""
    if p.hostname is None or p.scheme not in ("http", "https"):
        return None
    return (p.scheme, p.hostname, p.port or (443 if p.scheme == "https" else 80))


def _plain_text(text: str) -> str:
    """An error page that is not JSON (a proxy's HTML, say) as one short line: its <title>,
    else its text with the whitespace folded."""
    low = text.lower()
    start = low.find("<title>")
    if start >= 0:
        end = low.find("</title>", start)
        text = text[start + 7 : end if end >= 0 else start + 207]
    return " ".join(text.split())[:200]


def _is_upload(body: Body) -> bool:
    """A body big enough that sending it again costs (see RetryPolicy)."""
    if body is None:
        return False
    if isinstance(body, bytes | bytearray):
        return len(body) >= BIG_BODY
    if isinstance(body, tuple):
        return int(body[1]) >= BIG_BODY
    return True


def _coalesce(chunks: Iterable[bytes], size: int = CHUNK) -> Iterator[bytes]:
    """Join small pieces into ~1 MiB chunks: fewer syscalls and chunk headers on the wire."""
    buf: list[bytes] = []
    n = 0
    for c in chunks:
        if not c:
            continue
        buf.append(c)
        n += len(c)
        if n >= size:
            yield b"".join(buf)
            buf, n = [], 0
    if buf:
        yield b"".join(buf)


# ----------------------------------------------------------------------------- errors
def check_token_allowed(origin: str) -> None:
    """A token travels over plain HTTP only to this machine (loopback)."""
    p = urlsplit(origin)
    if p.scheme == "http" and not is_loopback(p.hostname or ""):
        raise WireError(
            f"refusing to send your token over plain http:// to {p.hostname}: "
            "use an https:// URL for this hub (tokens go over http only to this machine)",
            "no_access",
            "insecure_transport",
        )


def setup_error(e: BaseException, url: str, presigned: bool = False) -> WireError | None:
    """A connection that could not be set up safely: a certificate that is not trusted, a TLS
    handshake that failed, a CA file that cannot be read, a proxy that refused the tunnel.
    None for an ordinary network failure. Never retried (waiting changes none of these),
    never downgraded to an unverified connection."""
    origin = origin_of(url)
    who = f"the object store {origin}" if presigned else origin
    name = type(e).__name__
    if isinstance(e, http11.CAFileError):
        return WireError(
            f"{e} (fix http.sslCAInfo / MUSE_SSL_CA_INFO)", "usage", "ca_file", retryable=False
        )
    if isinstance(e, http11.ProxyError):
        return WireError(
            f"{e} (check HTTPS_PROXY / HTTP_PROXY and NO_PROXY)",
            "network",
            "proxy",
            retryable=e.status >= 500,
        )
    if name == "SSLCertVerificationError":
        reason = getattr(e, "verify_message", "") or str(e)
        return WireError(
            f"cannot trust {who}: {reason} (nothing was sent; if it is your own CA, point muse "
            "at its certificate: muse config --global http.sslCAInfo FILE, or MUSE_SSL_CA_INFO)",
            "network",
            "tls",
        )
    if name == "SSLError":  # a handshake that failed (EOF and zero-return are ordinary cuts)
        reason = getattr(e, "reason", None) or str(e)
        return WireError(
            f"TLS with {who} failed: {reason} (is it an https server? check the URL)",
            "network",
            "tls",
        )
    return None


def network_error(
    e: BaseException, url: str, ctx: ErrorContext, presigned: bool = False
) -> WireError:
    """A broken connection as one line naming the host that failed: the hub, or for a
    presigned URL the object store the hub sent us to (the hub itself may be fine).

    Retryable unless the host refused the connection or does not exist: nothing is listening
    there, and waiting will not change that within a command (git fails at once too).
    """
    where = origin_of(url) if presigned else (ctx.hub or origin_of(url))
    where = where.split("://", 1)[-1]
    reason = str(e) or type(e).__name__
    retryable = True
    if isinstance(e, ConnectionRefusedError):
        reason, retryable = "connection refused", False
    elif isinstance(e, socket.timeout | TimeoutError):
        reason = "timed out"
    elif isinstance(e, socket.gaierror):
        reason, retryable = "unknown host", False
    if presigned:
        return WireError(
            f"cannot reach the object store {where}: {reason} (the hub sent this address for "
            "the transfer; the store may be down or the hub's storage settings wrong: tell the "
            "hub's operator, then try again)",
            "network",
            "network",
            retryable=retryable,
        )
    return WireError(
        f"cannot reach {where}: {reason} (is the hub running? check the URL with 'muse remote -v'"
        " and try again)",
        "network",
        "network",
        retryable=retryable,
    )


def map_error(status: int, code: str, message: str, ctx: ErrorContext) -> WireError:
    """The hub's error as one line that says what to do, with the exit code for its kind."""
    hub = ctx.hub or "the hub"
    repo = ctx.repo or "the repository"
    detail = f": {message}" if message else ""
    if status == 401 or code == "unauthorized":
        what = "your token was refused" if ctx.token else "this needs a token"
        return WireError(
            f"{hub}: {what}{detail} (run 'muse auth login {hub}')", "no_access", code, status
        )
    if status == 403 and code in ("forbidden", ""):
        return WireError(
            f"you may not {'write to' if ctx.write else 'read'} {repo}{detail} "
            "(ask its owner for access, or log in with another token: 'muse auth login')",
            "no_access",
            code,
            status,
        )
    if status == 404 and code in ("repo_not_found", ""):
        hint = "check the URL" + (
            "" if ctx.token else f", or log in if it is private: 'muse auth login {hub}'"
        )
        return WireError(
            f"repository {repo} not found on {hub} ({hint})", "not_found", code, status
        )
    if status == 404:
        return WireError(f"{hub}: not found{detail}", "not_found", code, status)
    if code in ("non_fast_forward", "stale_ref") or status == 409:
        return WireError(
            f"{repo} was updated by someone else{detail} (run 'muse pull' first, "
            "or 'muse push --force' to overwrite)",
            "rejected",
            code,
            status,
        )
    if code == "quota_exceeded":
        return WireError(
            f"{hub} refused the push ({status} quota_exceeded){detail} (nothing was stored; "
            "ask the hub's operator for a larger quota)",
            "hub_refused",
            code,
            status,
        )
    if status == 413:
        return WireError(
            f"{hub} (or a proxy in front of it) refused the request as too large "
            f"(413{' ' + code if code else ''}){detail}: push with --path presign to send "
            "it as one bundle straight to storage",
            "hub_refused",
            code or "payload_too_large",
            status,
        )
    if status == 429:
        return WireError(
            f"{hub} is rate limiting requests{detail} (wait, then retry)",
            "hub_refused",
            code,
            status,
        )
    if code == "database_unavailable":
        return WireError(
            f"{hub} cannot reach its database (503 database_unavailable){detail} "
            "(try again later; if it persists, tell the hub's operator)",
            "hub_refused",
            code,
            status,
        )
    if code == "storage_unavailable":
        return WireError(
            f"{hub} cannot reach its object storage (503 storage_unavailable){detail} "
            "(try again later; if it persists, tell the hub's operator)",
            "hub_refused",
            code,
            status,
        )
    if status == 507 or code == "insufficient_storage":
        return WireError(
            f"{hub} is out of disk space (507 insufficient_storage){detail} "
            "(nothing was changed; tell the hub's operator, then try again)",
            "hub_refused",
            code,
            status,
        )
    if status >= 500:
        return WireError(
            f"{hub} failed ({status}{' ' + code if code else ''}){detail} (try again later)",
            "hub_refused",
            code,
            status,
        )
    return WireError(
        f"{hub} refused the request ({status} {code}){detail}", "hub_refused", code, status
    )
