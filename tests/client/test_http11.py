"""The small HTTP/1.1 client against canned server answers, and the requests it refuses."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from muse.client.http11 import BadResponse, Connection, InvalidRequest, RemoteDisconnected


def _serve(answers: list[bytes]) -> tuple[int, list[bytes]]:
    """A one-connection server: reads a request head (+ body by Content-Length or chunked),
    sends the next canned answer, for each answer in turn; returns (port, requests seen)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    seen: list[bytes] = []

    def run() -> None:
        c, _ = srv.accept()
        f = c.makefile("rb")
        for ans in answers:
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                line = f.readline()
                if not line:
                    return
                head += line
            body = b""
            if b"Content-Length:" in head:
                n = int(head.split(b"Content-Length:")[1].split(b"\r\n")[0])
                body = f.read(n)
            elif b"chunked" in head:
                while True:
                    n = int(f.readline().strip(), 16)
                    if n == 0:
                        f.readline()
                        break
                    body += f.read(n)
                    f.readline()
            seen.append(head + body)
            if ans:
                c.sendall(ans)
        c.close()
        srv.close()

    threading.Thread(target=run, daemon=True).start()
    return srv.getsockname()[1], seen


def _chunks() -> Iterator[bytes]:
    yield b"hello "
    yield b""
    yield b"world"


def test_keepalive_chunked_continue_and_close_delimited() -> None:
    port, seen = _serve(
        [
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked"
            b"\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
        ]
    )
    c = Connection("127.0.0.1", port)
    r = c.request("GET", "/a", {}, None)
    assert (r.status, r.read()) == (200, b"first")
    sock = c.sock
    r = c.request("POST", "/b", {"X-A": "1"}, _chunks())
    assert r.status == 201 and r.read(2) == b"ab" and r.read() == b"cde"
    assert c.sock is sock  # same connection
    r = c.request("PUT", "/c", {}, b"payload")
    assert r.read() == b"until the end" and c.sock is None
    assert seen[1].endswith(b"hello world") and b"Transfer-Encoding: chunked" in seen[1]
    assert seen[2].endswith(b"payload") and b"Host: 127.0.0.1:" in seen[0]


@pytest.mark.parametrize(
    "answer, error",
    [
        (b"", RemoteDisconnected),
        (b"SSH-2.0-OpenSSH\r\n\r\n", BadResponse),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", BadResponse),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", BadResponse),
    ],
)
def test_broken_answers_are_oserrors(answer: bytes, error: type[Exception]) -> None:
    port, _ = _serve([answer])
    c = Connection("127.0.0.1", port, timeout=5)
    with pytest.raises(error) as e:
        c.request("GET", "/", {}, None).read()
    assert isinstance(e.value, OSError)


# --------------------------------------------------------------- refusing unsafe requests
def _silent_server() -> tuple[socket.socket, int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.setblocking(False)
    return srv, srv.getsockname()[1]


def _nothing_arrived(srv: socket.socket) -> bool:
    try:
        c, _ = srv.accept()
    except BlockingIOError:
        return True  # not even a connection was made
    c.setblocking(False)
    try:
        return c.recv(1) == b""
    except BlockingIOError:
        return True
    finally:
        c.close()


BAD_TEXT = ["a\rb", "a\nb", "a\r\nX-Injected: 1", "a\x00b", "\r\n\r\nGET /other HTTP/1.1"]


@pytest.mark.parametrize("bad", BAD_TEXT)
@pytest.mark.parametrize("where", ["header name", "header value", "target", "method"])
def test_cr_lf_nul_are_refused_before_sending(where: str, bad: str) -> None:
    srv, port = _silent_server()
    c = Connection("127.0.0.1", port, timeout=5)
    method, target, headers = "GET", "/ok", {"X-Fine": "yes"}
    if where == "header name":
        headers = {f"X{bad}": "v"}
    elif where == "header value":
        headers = {"X-Value": bad}
    elif where == "target":
        target = f"/path{bad}"
    else:
        method = f"GET{bad}"
    with pytest.raises(InvalidRequest) as e:
        c.request(method, target, headers, b"body")
    assert isinstance(e.value, ValueError) and "refusing" in str(e.value)
    assert c.sock is None and _nothing_arrived(srv)
    srv.close()


def test_refused_on_a_live_connection_sends_nothing() -> None:
    """After a good request on a keep-alive connection, a bad one adds no byte to the stream."""
    a, b = socket.socketpair()
    c = Connection("127.0.0.1", 9)
    c.sock, c._fp = a, a.makefile("rb")
    b.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert c.request("GET", "/", {}, None).read() == b"ok"
    b.settimeout(5)
    sent = b.recv(65536)
    assert sent.startswith(b"GET / HTTP/1.1\r\n")
    for bad in (
        {"X-A": "1\r\nX-Injected: 2"},
        {"X-A\n": "1"},
        {"X A": "1"},
        {"": "1"},
        {"X-A": "\u20ac"},  # not Latin-1
    ):
        with pytest.raises(InvalidRequest):
            c.request("GET", "/", bad, None)
    with pytest.raises(InvalidRequest):
        c.request("GET", "/a b", {}, None)
    b.setblocking(False)
    with pytest.raises(BlockingIOError):
        b.recv(1)
    assert c.sock is a  # nothing was sent, so the connection is still usable
    b.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes")
    assert c.request("GET", "/again", {}, None).read() == b"yes"
    c.close()
    b.close()


def test_tabs_and_latin1_in_values_are_fine() -> None:
    port, seen = _serve([b"HTTP/1.1 204 No Content\r\n\r\n"])
    c = Connection("127.0.0.1", port, timeout=5)
    r = c.request("GET", "/?q=%0D%0A", {"X-A": "a\tb \xe9"}, None)
    assert r.status == 204 and r.read() == b""
    assert b"X-A: a\tb \xe9\r\n" in seen[0] and b"GET /?q=%0D%0A HTTP/1.1" in seen[0]
