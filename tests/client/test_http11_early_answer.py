"""A server that answers before the request body is all sent (a proxy's body cap, a store
refusing a presigned PUT on its headers) is heard at once: the connection stops sending and
reads the answer, over plain TCP and TLS alike, instead of uploading the rest first (curl's
behaviour). A real server on loopback answers 413 after the headers and then keeps reading
and discarding, as nginx's lingering close does; what it had to read is the measure.
"""

from __future__ import annotations

import io
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from staging.pki import CA

from muse.client.http11 import Connection

MiB = 1 << 20
BODY = 64 * MiB
ANSWER = (
    b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 9\r\nConnection: close\r\n\r\ntoo large"
)


class _Refuser:
    """Answers every request with 413 as soon as its headers are in, then drains."""

    def __init__(self, tls: ssl.SSLContext | None) -> None:
        self.tls = tls
        self.body_bytes = 0
        self.done = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = int(self.sock.getsockname()[1])
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        c, _ = self.sock.accept()
        try:
            if self.tls is not None:
                c = self.tls.wrap_socket(c, server_side=True)
            data = b""
            while b"\r\n\r\n" not in data:
                data += c.recv(65536)
            self.body_bytes = len(data.split(b"\r\n\r\n", 1)[1])
            c.sendall(ANSWER)
            c.settimeout(5)
            while True:  # lingering: read and discard until the client stops or closes
                got = c.recv(1 << 20)
                if not got:
                    break
                self.body_bytes += len(got)
        except OSError:
            pass
        finally:
            c.close()
            self.done.set()


@pytest.fixture(params=["plain", "tls"])
def refuser(request: Any, tmp_path: Path) -> Iterator[tuple[_Refuser, Connection]]:
    if request.param == "plain":
        srv = _Refuser(None)
        conn = Connection("127.0.0.1", srv.port, tls=False, timeout=30)
    else:
        ca = CA(tmp_path / "pki")
        crt, key = ca.issue("server", ["localhost"])
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(crt), str(key))
        srv = _Refuser(ctx)
        conn = Connection("localhost", srv.port, tls=True, timeout=30, ca_file=str(ca.cert_path))
    yield srv, conn
    conn.close()
    srv.sock.close()


def _pieces() -> Iterator[bytes]:
    piece = b"\0" * MiB
    for _ in range(BODY // MiB):
        yield piece


@pytest.mark.parametrize("shape", ["length", "chunked"])
def test_an_answer_before_the_body_ends_stops_the_upload(
    refuser: tuple[_Refuser, Connection], shape: str
) -> None:
    srv, conn = refuser
    body: Any = (io.BytesIO(b"\0" * BODY), BODY) if shape == "length" else _pieces()
    resp = conn.request("PUT", "/upload", {"Content-Type": "application/octet-stream"}, body)
    assert resp.status == 413
    assert resp.read() == b"too large"
    conn.close()
    assert srv.done.wait(30)
    # what was in flight when the answer came, not the 64 MiB body
    assert srv.body_bytes < BODY // 4, srv.body_bytes
