"""A small HTTP/1.1 client connection: exactly what MuseWire needs, and quick to import.

``http.client`` costs ~15 ms to import (it loads the ``email`` package to parse headers and
``ssl`` for HTTPS); at small sizes that is a tenth of what a user waits for. This module needs
only ``socket``: requests with a Content-Length body (bytes, or a file sent in 1 MiB pieces) or
a chunked body from an iterator; responses framed by Content-Length, chunked encoding or the
connection's end; keep-alive; TCP_NODELAY; TLS through ``ssl`` imported only for https.

Failures are ``OSError`` subclasses (``ConnectionError`` for a peer that vanished or spoke
nonsense), so callers retry them like any network error. A request that cannot be sent safely
(CR, LF or NUL in its method, target, a header name or value, which would let the caller's
input write other headers or another request) is refused with :class:`InvalidRequest` (a
``ValueError``) before anything is sent.

The parser is strict where leniency would be ambiguous: a status code is three digits, a
Content-Length and a chunk size are plain digits (no sign, no ``0x``, no ``_``), no line is
longer than ``MAX_LINE``; anything else is :class:`BadResponse`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from typing import Any, BinaryIO

CHUNK = 1 << 20
MAX_LINE = 65536
MAX_HEADERS = 200


class RemoteDisconnected(ConnectionResetError):
    """The server closed the connection without answering (e.g. an idle keep-alive socket)."""


class BadResponse(ConnectionError):
    """The server's answer is not HTTP/1.x, or its body ended early."""


class InvalidRequest(ValueError):
    """A request this client refuses to send (nothing was sent): CR, LF or NUL in its method,
    target, a header name or value, or text that is not Latin-1."""


_HEX = frozenset(b"0123456789abcdefABCDEF")
#: The bytes of a header name (RFC 9110 token).
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789" + bytes(range(65, 91)) + bytes(range(97, 123)))
_MAX_DIGITS = 19  # a length of 10**19 bytes is already nonsense; int() of more is slow


def _digits(s: str) -> int | None:
    """A decimal length: ASCII digits only (``int`` would take " 5", "+5", "-5" and "5_0")."""
    if not s or len(s) > _MAX_DIGITS or not (s.isascii() and s.isdigit()):
        return None
    return int(s)


def _chunk_size(line: bytes) -> int | None:
    """The size on a chunk-size line (``1a;ext=v\r\n``): hex digits only, no sign, no 0x."""
    size = line.split(b";", 1)[0].strip(b" \t\r\n")
    if not size or len(size) > 16 or not _HEX.issuperset(size):
        return None
    return int(size, 16)


#: Never in a header value: CR, LF, NUL and the other control characters (HTAB is allowed).
_CTL = "\r\n\x00" + "".join(chr(c) for c in range(1, 32) if c not in (9, 10, 13)) + "\x7f"
#: Never in a method, request target or host: the controls above, space and HTAB.
_CTL_SP = _CTL + " \t"


def _check(what: str, text: str, forbidden: str = _CTL) -> None:
    if text.isascii() and text.isprintable() and (forbidden is _CTL or " " not in text):
        return  # the usual case, in one pass
    for ch in forbidden:
        if ch in text:
            raise InvalidRequest(f"refusing to send {what} holding {ch!r}: {text[:60]!r}")
    if not text.isascii():
        try:
            text.encode("latin-1")
        except UnicodeEncodeError:
            raise InvalidRequest(f"{what} is not Latin-1 text: {text[:60]!r}") from None


class Response:
    """Status, headers (lower-case names) and a body read as a stream."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._fp = conn._reader()
        try:
            self._read_head(conn)
        except BaseException:
            conn.close()  # what follows on this connection cannot be trusted
            raise

    def _read_head(self, conn: Connection) -> None:
        while True:
            line = self._fp.readline(MAX_LINE + 1)
            if not line:
                raise RemoteDisconnected("the server closed the connection without answering")
            if len(line) > MAX_LINE:
                raise BadResponse("the status line is too long")
            parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
            version = parts[0]
            if (
                len(parts) < 2
                or len(version) != 8
                or not version.startswith("HTTP/1.")
                or version[7] not in "0123456789"
            ):
                raise BadResponse(f"not an HTTP/1.x answer: {line[:60]!r}")
            status = _digits(parts[1]) if len(parts[1]) == 3 else None
            if status is None or status < 100:
                raise BadResponse(f"bad status line: {line[:60]!r}")
            self.status = status
            self.version = version
            self.reason = parts[2] if len(parts) > 2 else ""
            self.headers = self._read_headers()
            if not 100 <= self.status < 200:
                break  # 1xx (100 Continue): skip to the real answer
        te = self.headers.get("transfer-encoding", "").lower()
        conn_hdr = self.headers.get("connection", "").lower()
        self.will_close = self.version == "HTTP/1.0" or "close" in conn_hdr
        self.chunked = "chunked" in te
        self._chunk_left: int | None = None
        self.length: int | None = None
        if not self.chunked:
            cl = self.headers.get("content-length")
            if cl is not None:
                self.length = _digits(cl)
                if self.length is None:
                    raise BadResponse(f"bad Content-Length {cl[:40]!r}")
            elif self.status in (204, 304) or conn.last_method == "HEAD":
                self.length = 0
            else:
                self.will_close = True  # body runs to the end of the connection
        self._done = self.length == 0
        if self._done:
            self._finish()

    def _read_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS):
            line = self._fp.readline(MAX_LINE + 1)
            if not line:
                raise BadResponse("the connection ended inside the headers")
            if len(line) > MAX_LINE:
                raise BadResponse("a header line is too long")
            if line in (b"\r\n", b"\n"):
                return headers
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise BadResponse(f"bad header line {line[:60]!r}")
            key = name.strip().lower()
            v = value.strip()
            headers[key] = f"{headers[key]}, {v}" if key in headers else v
        raise BadResponse("too many headers")

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def isclosed(self) -> bool:
        return self._done

    # ---------------------------------------------------------------------------- body
    def read(self, n: int = -1) -> bytes:
        if self._done:
            return b""
        if n is None or n < 0:
            parts: list[bytes] = []
            while True:
                b = self.read(CHUNK)
                if not b:
                    return b"".join(parts)
                parts.append(b)
        if self.chunked:
            return self._read_chunked(n)
        if self.length is not None:
            n = min(n, self.length)
            data = self._fp.read(n)
            if len(data) < n:
                self._fail()
                raise BadResponse("the connection ended before the body did")
            self.length -= len(data)
            if self.length == 0:
                self._finish()
            return data
        data = self._fp.read1(n) if n else b""
        if not data and n:
            self._done = True
            self._conn.close()
        return data

    def _read_chunked(self, n: int) -> bytes:
        fp = self._fp
        if not self._chunk_left:
            line = fp.readline(MAX_LINE + 1)
            size = _chunk_size(line) if len(line) <= MAX_LINE else None
            if size is None:
                self._fail()
                if not line:
                    raise BadResponse("the connection ended before the chunked body did")
                raise BadResponse(f"bad chunk size line {line[:40]!r}")
            if size == 0:
                for _ in range(MAX_HEADERS + 1):  # trailers, then the final empty line
                    t = fp.readline(MAX_LINE + 1)
                    if not t:
                        self._fail()
                        raise BadResponse("the connection ended inside the chunked trailer")
                    if len(t) > MAX_LINE:
                        self._fail()
                        raise BadResponse("a chunked trailer line is too long")
                    if t in (b"\r\n", b"\n"):
                        break
                else:
                    self._fail()
                    raise BadResponse("too many chunked trailers")
                self._finish()
                return b""
            self._chunk_left = size
        left = self._chunk_left
        want = min(n, left)
        data = fp.read(want)
        if len(data) < want:
            self._fail()
            raise BadResponse("the connection ended inside a chunk")
        left -= len(data)
        self._chunk_left = left
        if left == 0:
            if fp.read(2) not in (b"\r\n",):
                self._fail()
                raise BadResponse("a chunk does not end with CRLF")
        return data

    def readinto(self, b: Any) -> int:
        mv = memoryview(b).cast("B")
        data = self.read(len(mv))
        mv[: len(data)] = data
        return len(data)

    def _finish(self) -> None:
        self._done = True
        if self.will_close:
            self._conn.close()

    def _fail(self) -> None:
        self._done = True
        self._conn.close()

    def close(self) -> None:
        if not self._done:
            self._fail()


Body = bytes | bytearray | tuple[BinaryIO, int] | Iterable[bytes] | None


class Connection:
    """One keep-alive connection to ``host:port`` (TLS when ``tls``)."""

    def __init__(self, host: str, port: int, tls: bool = False, timeout: float = 120.0) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self._fp: Any = None
        self.last_method = ""
        hp = f"[{host}]" if ":" in host else host
        default = 443 if tls else 80
        self.host_header = hp if port == default else f"{hp}:{port}"

    def connect(self) -> None:
        _check("a host name", self.host, _CTL_SP)
        # An ASCII host goes to getaddrinfo as bytes: a str is run through the "idna" codec
        # first, which imports encodings.idna, unicodedata and stringprep (~1.5 ms).
        host: str | bytes = self.host.encode("ascii") if self.host.isascii() else self.host
        sock = socket.create_connection((host, self.port), self.timeout)  # type: ignore[arg-type]
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls:
                import ssl

                ctx = ssl.create_default_context()
                cafile = os.environ.get("MUSE_CA_BUNDLE")
                if cafile:
                    ctx.load_verify_locations(cafile)
                sock = ctx.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self._fp = sock.makefile("rb", buffering=CHUNK)

    def _reader(self) -> Any:
        assert self._fp is not None
        return self._fp

    def close(self) -> None:
        if self._fp is not None:
            try:
                self._fp.close()
            except OSError:
                pass
            self._fp = None
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def request(self, method: str, target: str, headers: dict[str, str], body: Body) -> Response:
        """Send one request and read the status and headers of its answer."""
        if not method or not target:
            raise InvalidRequest(f"refusing to send a request line {method!r} {target!r}")
        _check("a method", method, _CTL_SP)
        _check("a request target", target, _CTL_SP)
        for k, v in headers.items():
            if not k or not _TOKEN.issuperset(k.encode("latin-1", "replace")):
                _check("a header name", k)
                raise InvalidRequest(f"refusing to send a header named {k[:60]!r}")
            _check(f"the header {k}", v)
        if self.sock is None:
            self.connect()
        sock = self.sock
        assert sock is not None
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host_header}"]
        chunked = False
        payload: bytes | None = None
        if body is None:
            if method in ("POST", "PUT"):
                lines.append("Content-Length: 0")
        elif isinstance(body, bytes | bytearray):
            payload = bytes(body)
            lines.append(f"Content-Length: {len(payload)}")
        elif isinstance(body, tuple):
            lines.append(f"Content-Length: {body[1]}")
        else:
            chunked = True
            lines.append("Transfer-Encoding: chunked")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.last_method = method
        if payload is not None and len(payload) <= 65536:
            sock.sendall(head + payload)  # one segment for small requests
        else:
            sock.sendall(head)
            if payload is not None:
                sock.sendall(payload)
            elif isinstance(body, tuple):
                f, length = body
                left = length
                while left > 0:
                    data = f.read(min(CHUNK, left))
                    if not data:
                        raise ValueError("the request body file ended early")
                    sock.sendall(data)
                    left -= len(data)
            elif chunked:
                assert body is not None and not isinstance(body, bytes | bytearray | tuple)
                for piece in body:
                    if piece:
                        sock.sendall(b"%x\r\n%b\r\n" % (len(piece), piece))
                sock.sendall(b"0\r\n\r\n")
        return Response(self)
