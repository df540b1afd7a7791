"""The transport's connection class is a parameter: a different one, plugged in, carries it all.

``StdlibConnection`` is a thin adapter over the standard library's ``http.client``: the
transport runs over it against a real ``http.server`` in a thread, and a real fetch from a
real hub (stream and presign paths) goes through it, while http11 is never used.
"""

from __future__ import annotations

import http.client
import io
import json
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fixtures import QuietHandler

from muse.client import http11
from muse.client.transport import Body, InvalidRequest, Transport, WireError, origin_of

from .conftest import Muse, write_files


class StdlibConnection:
    """A :class:`muse.client.transport.Connection` over ``http.client.HTTPConnection``."""

    made: list[StdlibConnection] = []

    def __init__(self, host: str, port: int, tls: bool = False, timeout: float = 120.0) -> None:
        cls = http.client.HTTPSConnection if tls else http.client.HTTPConnection
        self._c = cls(host, port, timeout=timeout)
        self.sent: list[tuple[str, str]] = []
        StdlibConnection.made.append(self)

    @property
    def sock(self) -> Any:
        return self._c.sock

    def request(
        self, method: str, target: str, headers: dict[str, str], body: Body
    ) -> http.client.HTTPResponse:
        hdrs = dict(headers)
        data: Any = body
        if isinstance(body, tuple):  # (file, length): exactly length bytes, Content-Length
            f, length = body
            hdrs["Content-Length"] = str(length)
            data = _exactly(f, length)
        elif body is None and method in ("POST", "PUT"):
            data = b""
        try:
            self._c.request(method, target, body=data, headers=hdrs)
        except ValueError as e:  # http.client refuses CR/LF in headers and URLs itself
            raise InvalidRequest(str(e)) from None
        except http.client.HTTPException as e:
            self._c.close()
            raise ConnectionError(f"{type(e).__name__}: {e}") from None
        self.sent.append((method, target))
        try:
            return self._c.getresponse()
        except http.client.HTTPException as e:  # BadStatusLine, ...: not an OSError
            self._c.close()
            if isinstance(e, OSError):
                raise
            raise ConnectionError(f"{type(e).__name__}: {e}") from None

    def close(self) -> None:
        self._c.close()


def _exactly(f: Any, length: int) -> Iterator[bytes]:
    left = length
    while left > 0:
        data = f.read(min(1 << 20, left))
        if not data:
            raise ValueError("the request body file ended early")
        left -= len(data)
        yield data


@pytest.fixture
def no_http11(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any use of the default connection fails the test."""

    def refuse(*a: Any, **k: Any) -> None:
        raise AssertionError("http11 was used although another connection was plugged in")

    monkeypatch.setattr(http11.Connection, "connect", refuse)
    monkeypatch.setattr(http11.Connection, "request", refuse)
    StdlibConnection.made = []


class _Handler(QuietHandler):
    calls: list[dict[str, Any]] = []
    fail_first = 0

    def _answer(self) -> None:
        body = self._body()
        cls = type(self)
        cls.calls.append(
            {
                "method": self.command,
                "path": self.path,
                "auth": self.headers.get("Authorization"),
                "protocol": self.headers.get("Muse-Protocol"),
                "chunked": self.headers.get("Transfer-Encoding") == "chunked",
                "body": body,
                "peer": self.client_address,
            }
        )
        if cls.fail_first > 0:
            cls.fail_first -= 1
            data = b'{"error": "unavailable", "message": "later"}'
            self.send_response(503)
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
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    _Handler.calls = []
    _Handler.fail_first = 0
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_requests_go_through_the_plugged_connection(server: str, no_http11: None) -> None:
    t = Transport(
        token="secret", hub_origin=origin_of(server), backoff=0.01, connection=StdlibConnection
    )
    assert t.connection is StdlibConnection
    assert t.request("GET", server + "/alice/song/refs").json() == {"ok": True, "len": 0}
    chunks = [b"x" * 1000] * 300
    out = t.request("POST", server + "/alice/song/push/stream", body=lambda: iter(chunks)).json()
    assert out["len"] == 300_000
    f = io.BytesIO(b"0123456789" * 100)
    put = t.request("PUT", server + "/_storage/k?sig=1", body=lambda: (f, 1000), presigned=True)
    put.read()
    put.close()
    _Handler.fail_first = 2  # retried over the same plugged-in connection class
    assert t.request("GET", server + "/alice/song/refs").json()["ok"]
    t.close()

    calls = _Handler.calls
    assert [c["method"] for c in calls] == ["GET", "POST", "PUT", "GET", "GET", "GET"]
    assert calls[1]["chunked"] and calls[1]["body"] == b"x" * 300_000
    assert calls[2]["body"] == b"0123456789" * 100 and calls[2]["auth"] is None
    assert [c["auth"] for c in calls if c["method"] == "GET"] == ["Bearer secret"] * 4
    assert calls[0]["protocol"] == "1"
    # every request went through the adapter, on one keep-alive connection
    assert len(StdlibConnection.made) == 1
    assert len(StdlibConnection.made[0].sent) == 6
    assert len({c["peer"] for c in calls}) == 1


def test_a_refusal_of_the_plugged_connection_is_a_wire_error(server: str, no_http11: None) -> None:
    t = Transport(hub_origin=origin_of(server), connection=StdlibConnection)
    with pytest.raises(WireError) as e:
        t.request("GET", server + "/r", headers={"X-A": "1\r\nX-Injected: 2"})
    assert e.value.kind == "usage" and e.value.code == "bad_request"
    with pytest.raises(WireError) as e:
        t.request("PUT", server + "/s", body=lambda: b"x", headers={"X\n": "1"}, presigned=True)
    assert e.value.kind == "hub_refused"
    assert _Handler.calls == []


@pytest.mark.parametrize("path", ["stream", "presign"])
def test_fetch_from_a_hub_over_the_plugged_connection(
    muse: Muse, tmp_path: Path, hub: Any, path: str, no_http11: None
) -> None:
    from muse.client.fetch import fetch
    from muse.client.session import Session
    from muse.core.repo import Repository

    token = hub.create_user("alice")
    hub.create_repo("alice", "song")
    url = hub.repo_url("alice", "song")
    muse.login(hub.url, token)
    src = tmp_path / "src"
    muse.run("init", str(src))
    write_files(src, {f"f{i}.txt": f"file {i}\n" * 50 for i in range(20)})
    muse.run("commit", "-m", "first", cwd=src)
    muse.run("remote", "add", "origin", url, cwd=src)
    muse.run("push", "--path", path, "-u", "origin", "main", cwd=src)
    tip = Repository(str(src)).refs.read("refs/heads/main")
    assert tip is not None

    dst = Repository.init(str(tmp_path / "dst"))
    dst.config.setdefault("remote", {})["origin"] = {"url": url}
    dst.save_config()
    s = Session(url, token="")  # a public repository: anonymous
    ctx = s.transport.context
    s.transport = Transport(hub_origin=s.url.origin, context=ctx, connection=StdlibConnection)
    with s:
        result = fetch(dst, "origin", path=path, session=s)
    assert result.transfer.path == path and result.transfer.objects > 0
    assert dst.refs.read("refs/remotes/origin/main") == tip and dst.store.has(tip)
    sent = [t for c in StdlibConnection.made for _, t in c.sent]
    assert any(t.endswith("/refs") for t in sent) and any("fetch/bundle" in t for t in sent)
