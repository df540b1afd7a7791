"""A small HTTP/1.1 client connection: exactly what MuseWire needs, and quick to import.

``http.client`` costs ~15 ms to import (it loads the ``email`` package to parse headers and
``ssl`` for HTTPS); at small sizes that is a tenth of what a user waits for. This module needs
only ``socket``: requests with a Content-Length body (bytes, or a file sent in 1 MiB pieces) or
a chunked body from an iterator; responses framed by Content-Length, chunked encoding or the
connection's end; keep-alive; TCP_NODELAY; TLS through ``ssl`` imported only for https.

Failures are ``OSError`` subclasses (``ConnectionError`` for a peer that vanished or spoke
nonsense), so callers retry them like any network error.
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


class Response:
    """Status, headers (lower-case names) and a body read as a stream."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._fp = conn._reader()
        while True:
            line = self._fp.readline(MAX_LINE + 1)
            if not line:
                raise RemoteDisconnected("the server closed the connection without answering")
            parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
                raise BadResponse(f"not an HTTP/1.x answer: {line[:60]!r}")
            try:
                self.status = int(parts[1])
            except ValueError:
                raise BadResponse(f"bad status line: {line[:60]!r}") from None
            self.version = parts[0]
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
                try:
                    self.length = int(cl)
                except ValueError:
                    raise BadResponse(f"bad Content-Length {cl!r}") from None
            elif self.status in (204, 304) or conn.last_method == "HEAD":
                self.length = 0
            else:
                self.will_close = True  # body runs to the end of the connection
        self._done = self.length == 0

    def _read_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS):
            line = self._fp.readline(MAX_LINE + 1)
            if not line:
                raise BadResponse("the connection ended inside the headers")
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
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self._fail()
                raise BadResponse(f"bad chunk size line {line[:40]!r}") from None
            if size == 0:
                while True:  # trailers, then the final empty line
                    t = fp.readline(MAX_LINE + 1)
                    if not t:
                        self._fail()
                        raise BadResponse("the connection ended inside the chunked trailer")
                    if t in (b"\r\n", b"\n"):
                        break
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
