"""Transport details that need no hub: URLs, token safety, https, retries, chunked bodies."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fixtures import QuietHandler

from muse.client.transport import HubURL, Transport, WireError, is_loopback, map_error, origin_of
from muse.errors import MuseError


def test_urls() -> None:
    u = HubURL.parse("http://127.0.0.1:8080/alice/song")
    assert (u.origin, u.owner, u.slug, u.repo_url) == (
        "http://127.0.0.1:8080",
        "alice",
        "song",
        "http://127.0.0.1:8080/alice/song",
    )
    u = HubURL.parse("https://Hub.Example.com/prefix/alice/song/")
    assert u.origin == "https://hub.example.com:443" and u.hub.endswith("/prefix")
    assert origin_of("http://localhost") == "http://localhost:80"
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("10.0.0.1") and not is_loopback("example.com")
    with pytest.raises(MuseError):
        HubURL.parse("http://host/only-owner")


def test_token_never_over_plain_http_to_remote_hosts() -> None:
    with pytest.raises(WireError) as e:
        Transport(token="t", hub_origin="http://hub.example.com:80")
    assert e.value.kind == "no_access"
    Transport(token="t", hub_origin="https://hub.example.com:443")
    Transport(token="t", hub_origin="http://127.0.0.1:8080")


def test_error_mapping() -> None:
    assert map_error(404, "repo_not_found", "", _ctx()).kind == "not_found"
    assert map_error(401, "unauthorized", "", _ctx()).kind == "no_access"
    assert map_error(403, "forbidden", "", _ctx()).kind == "no_access"
    assert map_error(409, "non_fast_forward", "", _ctx()).kind == "rejected"
    assert map_error(409, "stale_ref", "", _ctx()).kind == "rejected"
    assert map_error(400, "bad_pack", "x", _ctx()).kind == "hub_refused"
    for status in (401, 404, 409, 400, 503):
        assert "\n" not in str(map_error(status, "", "", _ctx()))


def _ctx() -> Any:
    from muse.client.transport import ErrorContext

    return ErrorContext("http://h:1", "alice/song", True, True)


class _Handler(QuietHandler):
    calls: list[tuple[str, str, bytes]] = []
    fail_first = 0

    def _answer(self) -> None:
        body = self._body()
        cls = type(self)
        cls.calls.append((self.command, self.headers.get("Authorization") or "", body))
        if cls.fail_first > 0:
            cls.fail_first -= 1
            data = b'{"error": "rate_limited", "message": "slow down"}'
            self.send_response(429)
            self.send_header("Retry-After", "0")
        else:
            data = json.dumps({"ok": True, "len": len(body)}).encode()
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _answer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """An https server on localhost with a self-signed certificate: (base url, cafile)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    _Handler.calls = []
    yield f"https://localhost:{httpd.server_address[1]}", str(cert)
    httpd.shutdown()


def test_https_keepalive_chunked_and_retry(
    server: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, ca = server
    monkeypatch.setenv("MUSE_CA_BUNDLE", ca)
    t = Transport(token="secret", hub_origin=origin_of(base), backoff=0.01)
    assert t.request("GET", base + "/a/b/refs").json() == {"ok": True, "len": 0}
    chunks = [b"x" * 1000] * 3000  # 3 MB, sent chunked without being joined up front
    out = t.request("POST", base + "/a/b/push/stream", body=lambda: iter(chunks)).json()
    assert out["len"] == 3_000_000
    _Handler.fail_first = 2
    assert t.request("GET", base + "/a/b/refs").json()["ok"]
    assert [c[1] for c in _Handler.calls] == ["Bearer secret"] * 5
    # presigned URLs never carry the token
    t.request("PUT", base + "/storage/key?sig=1", body=lambda: b"data", presigned=True).close()
    assert _Handler.calls[-1][1] == "" and _Handler.calls[-1][2] == b"data"
    assert len(t._conns) == 1  # one keep-alive connection for everything
    t.close()
    # an unknown certificate is refused
    monkeypatch.delenv("MUSE_CA_BUNDLE")
    t2 = Transport(retries=0)
    with pytest.raises(WireError) as e:
        t2.request("GET", base + "/a/b/refs")
    assert e.value.kind == "network"


def test_unsafe_requests_are_one_line_errors_and_send_nothing() -> None:
    """CR/LF from a hub (a presigned URL's headers) or a user (a token) never reaches a socket."""
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.setblocking(False)
    base = f"http://127.0.0.1:{srv.getsockname()[1]}"
    t = Transport(hub_origin=origin_of(base), retries=0)
    cases = [
        ({"headers": {"X-Amz-Meta": "v\r\nX-Injected: 1"}, "presigned": True}, "hub_refused"),
        ({"headers": {"Bad\nName": "v"}, "presigned": True}, "hub_refused"),
        ({"headers": {"X-A": "nul\x00"}}, "usage"),
    ]
    for kw, kind in cases:
        with pytest.raises(WireError) as e:
            t.request("PUT", base + "/_storage/k", body=lambda: b"x", **kw)
        assert e.value.kind == kind and e.value.code == "bad_request"
        assert "\n" not in str(e.value)
    with pytest.raises(WireError) as e:
        Transport(token="tok\r\nX-Injected: 1", hub_origin=origin_of(base)).request("GET", base)
    assert e.value.kind == "usage"
    with pytest.raises(BlockingIOError):
        srv.accept()  # not even a connection
    srv.close()
