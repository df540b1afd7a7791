"""A small HTTP/1.1 client connection: exactly what MuseWire needs, and quick to import.

``http.client`` costs ~15 ms to import (it loads the ``email`` package to parse headers and
``ssl`` for HTTPS); at small sizes that is a tenth of what a user waits for. This module needs
only ``socket``: requests with a Content-Length body (bytes, or a file sent in 1 MiB pieces) or
a chunked body from an iterator; responses framed by Content-Length, chunked encoding or the
connection's end; keep-alive; TCP_NODELAY; TLS through ``ssl`` imported only for https,
always verified (the system store, ``SSL_CERT_FILE``, or git's ``http.sslCAInfo`` as muse's);
the forward proxy of ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` as curl reads them
(CONNECT for https).

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


def _readline_raw(fp: Any) -> bytes:
    """One line from an unbuffered reader, byte by byte (only for a proxy's short answer)."""
    out = bytearray()
    while len(out) <= MAX_LINE:
        b = fp.read(1)
        if not b:
            raise ProxyError("the proxy closed the connection during CONNECT")
        out += b
        if b == b"\n":
            return bytes(out)
    raise ProxyError("the proxy sent a line that is too long")


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


class ProxyError(ConnectionError):
    """The forward proxy refused or failed the tunnel (its answer to CONNECT was not 2xx)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class CAFileError(OSError):
    """The configured CA certificate file cannot be read or holds no certificate."""


def _env(*names: str) -> str:
    for n in names:
        v = os.environ.get(n)
        if v:
            return v.strip()
    return ""


def _no_proxy(host: str, port: int) -> bool:
    """curl's NO_PROXY: ``*``, host names matching themselves and their subdomains (a leading
    dot optional), ``host:port``, IP addresses and CIDR ranges; comma or space separated."""
    spec = _env("no_proxy", "NO_PROXY")
    if not spec:
        return False
    h = host.lower().strip("[]").rstrip(".")
    for entry in spec.replace(",", " ").split():
        e = entry.lower()
        if e == "*":
            return True
        if e.startswith("[") and "]" in e:  # [::1]:port
            e, _, p = e[1:].partition("]")
            if p.startswith(":") and p[1:] != str(port):
                continue
        elif e.count(":") == 1:
            e, _, p = e.partition(":")
            if p != str(port):
                continue
        e = e.lstrip(".").rstrip(".")
        if not e:
            continue
        if h == e or h.endswith("." + e):
            return True
        if "/" in e:
            import ipaddress

            try:
                if ipaddress.ip_address(h) in ipaddress.ip_network(e, strict=False):
                    return True
            except ValueError:
                continue
    return False


def proxy_for(scheme: str, host: str, port: int) -> str:
    """The forward proxy for a URL, as curl and git choose it: ``https_proxy`` / ``HTTPS_PROXY``
    for https, ``http_proxy`` / ``HTTP_PROXY`` for http, then ``all_proxy`` / ``ALL_PROXY``;
    none for a host ``NO_PROXY`` names. "" when the connection goes direct."""
    if scheme == "https":
        proxy = _env("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")
    else:
        proxy = _env("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")
    if not proxy or _no_proxy(host, port):
        return ""
    return proxy


class ProxyURL:
    """``http://[user:password@]host[:port]``: where the forward proxy listens."""

    def __init__(self, url: str) -> None:
        from urllib.parse import unquote, urlsplit

        p = urlsplit(url if "://" in url else "http://" + url)
        if p.scheme != "http" or not p.hostname:
            raise ProxyError(
                f"unsupported proxy {url!r}: only http:// proxies are supported "
                "(check HTTPS_PROXY / HTTP_PROXY)"
            )
        try:
            self.port = p.port or 1080  # curl's (and so git's) default proxy port
        except ValueError:
            raise ProxyError(f"bad port in the proxy URL {url!r}") from None
        self.host = p.hostname
        self.authorization = ""
        if p.username is not None:
            import base64

            cred = f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
            self.authorization = "Basic " + base64.b64encode(cred).decode("ascii")
        self.name = f"{self.host}:{self.port}"


_CONTEXTS: dict[str, Any] = {}


def configured_ca_file() -> str:
    """git's ``http.sslCAInfo``: ``MUSE_SSL_CA_INFO`` (or the older ``MUSE_CA_BUNDLE``), else
    ``http.sslCAInfo`` in the repository here or the global config; "" for the system store
    (which OpenSSL takes from ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when they are set)."""
    v = _env("MUSE_SSL_CA_INFO", "MUSE_CA_BUNDLE")
    if v:
        return v
    from muse.core import config

    d = os.getcwd()
    while True:
        if os.path.isfile(os.path.join(d, ".muse", "HEAD")):
            v = config.get_value(config.load(os.path.join(d, ".muse", "config")), "http.sslCAInfo")
            break
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    if not v:
        v = config.get_value(config.load(config.global_config_path()), "http.sslCAInfo")
    return os.path.expanduser(v) if isinstance(v, str) else ""


def tls_context(ca_file: str) -> Any:
    """A verifying client context (built once per CA file: loading a store costs ~10 ms):
    certificate chain and host name always checked, TLS 1.2 at least. A CA file replaces the
    system store, as ``http.sslCAInfo`` does for git."""
    ctx = _CONTEXTS.get(ca_file)
    if ctx is None:
        import ssl

        try:
            ctx = ssl.create_default_context(cafile=ca_file or None)
        except (OSError, ssl.SSLError) as e:
            raise CAFileError(
                f"cannot load the CA certificates in {ca_file!r}: "
                f"{getattr(e, 'strerror', None) or e}"
            ) from None
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        _CONTEXTS[ca_file] = ctx
    return ctx


class Connection:
    """One keep-alive connection to ``host:port`` (TLS when ``tls``), direct or through the
    forward proxy of the environment (see :func:`proxy_for`; ``proxy=""`` forces direct):
    a CONNECT tunnel for https, absolute-form request targets for http."""

    def __init__(
        self,
        host: str,
        port: int,
        tls: bool = False,
        timeout: float = 120.0,
        proxy: str | None = None,
        ca_file: str | None = None,
    ) -> None:
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
        self._proxy_setting = proxy
        self._ca_file = ca_file
        self.proxy: ProxyURL | None = None
        #: Round trips the last connect spent before its first request could go: the TCP
        #: handshake, the proxy's CONNECT, the TLS handshake (1 for TLS 1.3, 2 before).
        self.setup_round_trips = 0

    def connect(self) -> None:
        _check("a host name", self.host, _CTL_SP)
        setting = self._proxy_setting
        if setting is None:
            setting = proxy_for("https" if self.tls else "http", self.host, self.port)
        self.proxy = ProxyURL(setting) if setting else None
        where = (self.proxy.host, self.proxy.port) if self.proxy else (self.host, self.port)
        # An ASCII host goes to getaddrinfo as bytes: a str is run through the "idna" codec
        # first, which imports encodings.idna, unicodedata and stringprep (~1.5 ms).
        host: str | bytes = where[0].encode("ascii") if where[0].isascii() else where[0]
        sock = socket.create_connection((host, where[1]), self.timeout)  # type: ignore[arg-type]
        trips = 1
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.proxy and self.tls:
                self._tunnel(sock, self.proxy)
                trips += 1
            if self.tls:
                ca = configured_ca_file() if self._ca_file is None else self._ca_file
                ctx = tls_context(ca)
                sock = ctx.wrap_socket(sock, server_hostname=self.host)
                trips += 1 if sock.version() == "TLSv1.3" else 2
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.setup_round_trips = trips
        self._fp = sock.makefile("rb", buffering=CHUNK)

    def _tunnel(self, sock: socket.socket, proxy: ProxyURL) -> None:
        """CONNECT host:port through the proxy; its whole answer is read before TLS starts."""
        lines = [f"CONNECT {self.host_header_port} HTTP/1.1", f"Host: {self.host_header_port}"]
        if proxy.authorization:
            lines.append(f"Proxy-Authorization: {proxy.authorization}")
        lines.append("User-Agent: muse")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        fp = sock.makefile("rb", buffering=0)  # unbuffered: not one byte of TLS is taken
        try:
            line = _readline_raw(fp)
            parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
                raise ProxyError(f"the proxy {proxy.name} did not answer CONNECT like HTTP")
            for _ in range(MAX_HEADERS):
                if _readline_raw(fp) in (b"\r\n", b"\n"):
                    break
            else:
                raise ProxyError(f"the proxy {proxy.name} sent too many headers")
        finally:
            fp.close()
        status = int(parts[1])
        if not 200 <= status < 300:
            reason = parts[2] if len(parts) > 2 else ""
            raise ProxyError(
                f"the proxy {proxy.name} refused to connect to {self.host_header_port} "
                f"({status} {reason})".rstrip(),
                status,
            )

    @property
    def host_header_port(self) -> str:
        hp = f"[{self.host}]" if ":" in self.host else self.host
        return f"{hp}:{self.port}"

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
        if self.proxy is not None and not self.tls:
            target = f"http://{self.host_header}{target}"  # absolute-form, to the proxy
            if self.proxy.authorization:
                headers = {**headers, "Proxy-Authorization": self.proxy.authorization}
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host_header}"]
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
            lines.append("Transfer-Encoding: chunked")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.last_method = method
        if payload is not None and len(payload) <= 65536:
            sock.sendall(head + payload)  # one segment for small requests
            return Response(self)
        sock.sendall(head)
        try:
            if self._send_body(sock, body, payload):
                answer = Response(self)  # answered before the body was all sent (a 413, say):
                answer.will_close = True  # the rest of the body is never sent
                return answer
        except OSError as e:
            # A server (or a proxy's body cap) may answer and close before the body is all
            # sent: read that answer (a 413, say) rather than report a broken pipe, as curl does.
            if isinstance(e, TimeoutError) or self._fp is None:
                raise
            try:
                return Response(self)
            except OSError:
                raise e from None
        return Response(self)

    def _send_body(self, sock: socket.socket, body: Body, payload: bytes | None) -> bool:
        """Send the body; True when the server answered before it was all sent (checked
        after each CHUNK: a proxy's or a store's refusal, on the headers or at its body
        cap, then costs the bytes in flight, not the whole upload, as with curl)."""
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
                if left and self._answered(sock):
                    return True
        elif body is not None and not isinstance(body, bytes | bytearray):
            unchecked = 0
            for piece in body:
                if piece:
                    sock.sendall(b"%x\r\n%b\r\n" % (len(piece), piece))
                    unchecked += len(piece)
                    if unchecked >= CHUNK:
                        unchecked = 0
                        if self._answered(sock):
                            return True
            sock.sendall(b"0\r\n\r\n")
        return False

    def _answered(self, sock: socket.socket) -> bool:
        """Whether answer bytes are waiting, without waiting or losing any: a zero-timeout
        peek into the connection's buffered reader. Under TLS a readable socket may hold only
        a post-handshake record (a TLS 1.3 session ticket): ssl consumes it and has no data,
        which is no answer."""
        import select

        pending = getattr(sock, "pending", None)
        if not select.select([sock], [], [], 0)[0] and not (pending is not None and pending()):
            return False
        timeout = sock.gettimeout()
        sock.settimeout(0.0)
        try:
            return bool(self._fp.peek(1))
        except OSError:  # nothing yet (ssl's want-read), or a reset the next send reports
            return False
        finally:
            sock.settimeout(timeout)
