"""A black-box run of thousands of hostile requests against every endpoint, on both backends.

A seeded generator (the same requests every run) builds raw HTTP/1.1 requests from every
route of ``openapi.json``: path segments, queries, headers, tokens and bodies drawn from pools
of hostile values (NUL bytes, lone surrogates, invalid UTF-8, huge and deep JSON, numbers
past every limit, wrong methods and content types, long headers, forged and mangled tokens,
corrupted packs, mutated presigned URLs), mixed with valid ones so that the checks behind the
first one are reached too. Each request goes on its own connection with a client timeout.

Asserted: no answer >= 500, no request that the hub leaves unanswered (a hang), no traceback
and no ERROR line in the hub's log, and the hub still serves a normal client afterwards.
The figures are printed (``pytest -s``) and kept in ``<tmp>/hostile-<backend>.json``.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures import Hub, start_hub
from proto_util import History, HubClient, request, update

#: Requests per backend; the seed makes every run send the same ones.
REQUESTS = int(os.environ.get("MUSE_HOSTILE_REQUESTS", "8000"))
SEED = int(os.environ.get("MUSE_HOSTILE_SEED", "11"))
CLIENT_TIMEOUT_S = 30.0
MAIN = "refs/heads/main"
SPEC = Path(__file__).resolve().parents[2] / "src" / "musehub" / "openapi.json"

# ----------------------------------------------------------------------- value pools
HOSTILE_TEXT: list[str] = [
    "",
    "\x00",
    "a\x00",
    "\x00alice",
    "\ud800",
    "a\udfffb",
    "\ud83d",
    "..",
    ".",
    "../../secret_key",
    "a" * 65,
    "a" * 300,
    "b" * 5000,
    "é",
    "名前",
    "\u202e\u200d",
    "\ufeff",
    "CON",
    "a/b",
    " ",
    "\t",
    "\r\nX-Injected: 1",
    "'\"",
    "<script>",
    "%00",
    "%s%n",
    "\\",
    "null",
    "-1",
    "9" * 40,
    "refs/heads/main",
    "HEAD",
    ".muse",
    "~",
    "x.git",
    "x.lock",
    "_storage",
    "api",
    "\x7f",
    "\U0010ffff",
]
VALID_NAMES = ["alice", "pub", "priv", "admin", "bob", "nobody"]
HOSTILE_NUMBERS: list[Any] = [0, -1, 1, 2**31, 2**63, 2**64 + 1, 10**30, 1.5, -0.0, 1e308]
RAW_NUMBERS = [b"1e400", b"-1e400", b"NaN", b"Infinity", b"1" + b"0" * 5000, b"0x10", b"01"]
HOSTILE_BODIES: list[bytes] = [
    b"",
    b"{",
    b"[]",
    b"null",
    b'"x"',
    b"\xff\xfe{}",
    b'{"a": "\xff"}',
    b"[" * 10_000 + b"]" * 10_000,
    b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    b"[" * 900 + b"]" * 900,
    b'{"a": "' + b"x" * (2 << 20) + b'"}',
    b"\x00" * 100,
    b'{"a": 1, "a": 2}',
    b'{"size": 1e400}',
    b'{"wants": [' + b'"' + b"a" * 64 + b'",' * 20_000 + b'"' + b"a" * 64 + b'"]}',
]


def _spec_routes() -> list[tuple[str, str]]:
    """(METHOD, path template) of every route the hub documents."""
    doc = json.loads(SPEC.read_text())
    out = []
    for path, ops in doc["paths"].items():
        for method in ops:
            if method != "parameters":
                out.append((method.upper(), path))
    return out


# ----------------------------------------------------------------------- generator
class Generator:
    """Hostile requests for one hub: (method, target bytes, headers, body, chunked)."""

    def __init__(self, rnd: random.Random, hub: Hub, ctx: dict[str, Any]) -> None:
        self.r = rnd
        self.hub = hub
        self.ctx = ctx
        self.routes = _spec_routes()

    def text(self) -> str:
        r = self.r
        if r.random() < 0.45:
            return r.choice(VALID_NAMES)
        s = r.choice(HOSTILE_TEXT)
        if r.random() < 0.2:
            s = r.choice(VALID_NAMES) + s
        return s

    def segment(self) -> bytes:
        """A path segment: mostly percent-encoded, sometimes raw bytes no client should send."""
        s = self.text()
        raw = s.encode("utf-8", "surrogatepass")
        if self.r.random() < 0.1:
            return bytes(b for b in raw if b > 32 and b not in b"?#") or b"x"
        return urllib.parse.quote_from_bytes(raw, safe="").encode()

    def value(self, depth: int = 0) -> Any:
        r = self.r
        x = r.random()
        if x < 0.35:
            return self.text()
        if x < 0.55:
            return r.choice(HOSTILE_NUMBERS)
        if x < 0.65:
            return r.choice([True, False, None])
        if x < 0.8 and depth < 3:
            return [self.value(depth + 1) for _ in range(r.randrange(4))]
        if x < 0.9 and depth < 3:
            return {self.text(): self.value(depth + 1) for _ in range(r.randrange(3))}
        nested: Any = 1
        for _ in range(r.choice([30, 33, 100, 500])):
            nested = [nested]
        return nested

    def token(self) -> bytes | None:
        r, c = self.r, self.ctx
        x = r.random()
        good = r.choice([c["alice"], c["bob"], self.hub.admin_token])
        if x < 0.35:
            return None
        if x < 0.6:
            return f"Bearer {good}".encode()
        return r.choice(
            [
                f"bearer {good}".encode(),
                f"BEARER   {good}  ".encode(),
                f"Bearer mh_{r.randbytes(32).hex()}".encode(),
                b"Bearer mh_" + b"A" * 5000,
                b"Basic YWxpY2U6cHc=",
                b"Bearer",
                b"Bearer ",
                f"Bearer {good[:-1]}".encode(),
                f"Token {good}".encode(),
                b"Bearer mh_\xff\xfe\xe9",
                b"Bearer \xed\xa0\x80",
                b"Bearer mh_%00",
                b"",
            ]
        )

    def json_body(self, template: dict[str, Any]) -> bytes:
        r = self.r
        if r.random() < 0.15:
            return r.choice(HOSTILE_BODIES)
        doc = dict(template)
        for k in list(doc):
            if r.random() < 0.35:
                doc[k] = self.value()
            elif r.random() < 0.1:
                del doc[k]
        if r.random() < 0.1:
            doc[self.text()] = self.value()
        text = json.dumps(doc).encode()
        if r.random() < 0.1:  # a number no encoder writes
            text = text.replace(b"0", r.choice(RAW_NUMBERS), 1)
        return text

    def updates(self) -> list[Any]:
        c = self.ctx
        upd: dict[str, Any] = update(MAIN, c["tip"], c["tip2"])
        if self.r.random() < 0.5:
            key = self.r.choice(["ref", "old", "new", "force"])
            upd[key] = self.value()
        return [upd] if self.r.random() < 0.9 else [self.value()]

    def body_for(self, method: str, template: str) -> tuple[bytes | None, bytes | None]:
        """(body, content type) for a route."""
        r, c = self.r, self.ctx
        if template.endswith("/push/stream"):
            if r.random() < 0.2:
                return r.choice(HOSTILE_BODIES), b"application/x-muse-push"
            head = json.dumps({"updates": self.updates()}).encode()
            pack = c["pack"]
            x = r.random()
            if x < 0.3:
                pack = bytearray(pack)
                for _ in range(r.randrange(1, 8)):
                    pack[r.randrange(len(pack))] = r.randrange(256)
                pack = bytes(pack)
            elif x < 0.45:
                pack = pack[: r.randrange(len(pack))]
            elif x < 0.55:
                pack = r.randbytes(r.randrange(1, 4096))
            n = len(head)
            if r.random() < 0.15:
                n = r.choice([0, 3, n + 1, n - 1, 2**31, 2**32 - 1])
            return (n % 2**32).to_bytes(4, "big") + head + pack, b"application/x-muse-push"
        if template.endswith("/push/presign"):
            return self.json_body({"size": len(c["pack"]), "objects": 3}), b"application/json"
        if template.endswith("/push/commit"):
            doc = {"upload_id": c["upload_id"], "updates": self.updates()}
            return self.json_body(doc), b"application/json"
        if template.endswith("/fetch/bundle"):
            doc = {"wants": [c["tip"].hex()], "haves": [], "path": r.choice(["stream", "presign"])}
            return self.json_body(doc), b"application/json"
        if template == "/api/repos" and method == "POST":
            doc = {"owner": "alice", "slug": f"r{r.randrange(10**6)}", "private": False}
            doc["default_branch"] = "main"
            return self.json_body(doc), b"application/json"
        if template == "/api/users":
            return self.json_body({"username": f"u{r.randrange(10**6)}", "admin": False}), (
                b"application/json"
            )
        if template.endswith("/tokens"):
            return self.json_body({"scopes": ["read"], "expires_days": 1}), b"application/json"
        if template.startswith("/_storage") and method == "PUT":
            return r.randbytes(r.choice([0, 1, 10, 100, 5000])), b"application/octet-stream"
        if r.random() < 0.2:
            return r.choice(HOSTILE_BODIES), b"application/json"
        return None, None

    def target(self, template: str) -> tuple[str, bytes]:
        """(the template actually used, the request target)."""
        r = self.r
        if template.startswith("/_storage"):
            return template, self.storage_target()
        parts = []
        for seg in template.strip("/").split("/"):
            if seg.startswith("{"):
                if r.random() < 0.5:
                    name = {"owner": "alice", "slug": r.choice(["pub", "priv"]), "user": "bob"}
                    parts.append(name.get(seg[1:-1], "alice").encode())
                else:
                    parts.append(self.segment())
            else:
                parts.append(seg.encode())
        path = b"/" + b"/".join(parts)
        if template == "/api/repos" and r.random() < 0.7:
            path += b"?owner=" + self.segment()
        elif r.random() < 0.1:
            path += b"?" + self.segment() + b"=" + self.segment()
        if r.random() < 0.03:
            path = r.choice(
                [b"//", b"/..", b"/%2e%2e/%2e%2e/etc/passwd", b"/a" * 3000, b"/%", b"/%zz"]
            )
        return template, path

    def storage_target(self) -> bytes:
        r, c = self.r, self.ctx
        url = c["put_url"] if r.random() < 0.5 else c["get_url"]
        if not url:  # object storage: there is no /_storage route
            return b"/_storage/" + self.segment() + b"?m=GET&exp=1&sig=00"
        u = urllib.parse.urlsplit(url)
        q = dict(urllib.parse.parse_qsl(u.query))
        path = u.path
        for k in list(q):
            if r.random() < 0.3:
                q[k] = self.text()
        if r.random() < 0.2:
            path = "/_storage/" + self.text()
        qs = urllib.parse.urlencode(q, encoding="utf-8", errors="surrogatepass")
        return (
            urllib.parse.quote(path, safe="/%", errors="surrogatepass").encode()
            + b"?"
            + qs.encode()
        )

    def request(self) -> tuple[str, bytes, bytes, list[tuple[bytes, bytes]], bytes | None, bool]:
        r = self.r
        method, template = r.choice(self.routes)
        if r.random() < 0.1:
            method = r.choice(["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "FOO"])
        template, target = self.target(template)
        if method == "DELETE" and template == "/api/repos/{owner}/{slug}":
            target = target.replace(b"/pub", b"/gone").replace(b"/priv", b"/gone")
        body, ctype = self.body_for(method, template)
        headers: list[tuple[bytes, bytes]] = []
        tok = self.token()
        if tok is not None:
            headers.append((b"Authorization", tok))
        if r.random() < 0.15:
            ctype = r.choice(
                [
                    None,
                    b"text/plain",
                    b"APPLICATION/JSON",
                    b"application/json; charset=utf-16",
                    b"application/x-muse-push",
                    b"multipart/form-data; boundary=x",
                    b"application/json\xff",
                    b"a" * 3000,
                ]
            )
        if ctype is not None:
            headers.append((b"Content-Type", ctype))
        if r.random() < 0.1:
            headers.append(
                (b"Muse-Protocol", r.choice([b"2", b"", b"abc", b"1.0", b"\xff", b"-1"]))
            )
        if r.random() < 0.1:
            headers.append((b"X-Forwarded-For", self.segment()))
        if r.random() < 0.02:
            headers.append((b"X-Long", b"x" * r.choice([8000, 60_000])))
        if r.random() < 0.01:
            headers.extend((f"X-H{i}".encode(), b"v") for i in range(300))
        chunked = body is not None and r.random() < 0.1
        return method, template.encode(), target, headers, body, chunked


# ----------------------------------------------------------------------- sending
def send(
    port: int,
    method: str,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes | None,
    chunked: bool,
) -> int | str:
    """The status, or "hang" (no answer within the timeout) or "dropped" (closed unanswered)."""
    lines = [
        method.encode() + b" " + target + b" HTTP/1.1",
        b"Host: 127.0.0.1",
        b"Connection: close",
    ]
    lines += [k + b": " + v for k, v in headers]
    if body is not None:
        lines.append(
            b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % len(body)
        )
    data = b"\r\n".join(lines) + b"\r\n\r\n"
    if body is not None:
        data += (b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n") if chunked and body else body
        if chunked and not body:
            data += b"0\r\n\r\n"
    sock = socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT_S)
    try:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the hub refused before reading everything: its answer is still there
        resp = http.client.HTTPResponse(sock, method=method)
        try:
            resp.begin()
            resp.read()
        except TimeoutError:
            return "hang"
        except (http.client.RemoteDisconnected, ConnectionResetError):
            return "dropped"
        return resp.status
    finally:
        sock.close()


@pytest.fixture(scope="module", params=["sqlite", "postgres", "sqlite-limits"])
def target_hub(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Hub, dict[str, Any]]]:
    """The hub under attack: on each backend with the limits off (every request reaches
    the code behind them: forged tokens their lookup), and once with the default limits on
    (the 429 paths get the same hostile input)."""
    tmp = tmp_path_factory.mktemp("hostile")
    env = {"MUSEHUB_AUTH_FAILURES_PER_MINUTE": "0"}  # forged tokens must reach the lookup
    if request.param == "sqlite-limits":
        env = {"MUSEHUB_RATE_LIMIT_PER_MINUTE": "1200"}  # and auth failures: the default, 60
    if request.param.startswith("sqlite"):
        hub = start_hub(tmp, env=env)
    else:
        pg, s3 = request.getfixturevalue("postgres"), request.getfixturevalue("seaweedfs")
        hub = start_hub(tmp, storage="s3", s3=s3, database=pg.new_database(), env=env)
    alice = hub.create_user("alice")
    bob = hub.create_user("bob", scopes="read")
    hub.create_repo("alice", "pub")
    hub.create_repo("alice", "priv", private=True)
    h = History()
    tip = h.commit({"a.txt": b"hello", "d/b.txt": os.urandom(300)})
    tip2 = h.commit({"c.txt": b"more"}, tip)
    client = HubClient(hub.url, "alice", "pub", alice)
    assert client.push_stream([update(MAIN, None, tip)], h.pack_of(h.reachable(tip))).status == 200
    pack = h.pack_of(h.reachable(tip2) - h.reachable(tip))
    presign = client.post_json("push/presign", {"size": len(pack), "objects": 3}).json()
    fetch = client.post_json("fetch/bundle", {"wants": [tip.hex()], "path": "presign"}).json()
    local = hub.storage == "local"
    ctx = {
        "alice": alice,
        "bob": bob,
        "tip": tip,
        "tip2": tip2,
        "pack": pack,
        "upload_id": presign["upload_id"],
        "put_url": presign["url"] if local else None,
        "get_url": fetch["bundles"][0]["url"] if local else None,
        "history": h,
    }
    yield request.param, hub, ctx
    hub.stop()


def test_hostile_requests(target_hub: tuple[str, Hub, dict[str, Any]], tmp_path: Path) -> None:
    backend, hub, ctx = target_hub
    gen = Generator(random.Random(f"{SEED}-{backend}"), hub, ctx)
    statuses: Counter[int | str] = Counter()
    per_route: Counter[str] = Counter()
    bad: list[str] = []
    start = time.monotonic()
    count = REQUESTS if backend != "sqlite-limits" else min(REQUESTS, 1500)
    for i in range(count):
        method, template, target, headers, body, chunked = gen.request()
        per_route[f"{method} {template.decode()}"] += 1
        got = send(hub.port, method, target, headers, body, chunked)
        statuses[got] += 1
        if got in ("hang", "dropped") or (isinstance(got, int) and got >= 500):
            bad.append(
                f"#{i} {got}: {method} {target[:200]!r} {headers[:3]!r} {(body or b'')[:200]!r}"
            )
    elapsed = time.monotonic() - start
    figures = {
        "backend": backend,
        "requests": count,
        "server_errors": sum(n for s, n in statuses.items() if isinstance(s, int) and s >= 500),
        "hangs": statuses["hang"],
        "dropped": statuses["dropped"],
        "statuses": {str(k): v for k, v in sorted(statuses.items(), key=str)},
        "routes": len(per_route),
        "seconds": round(elapsed, 1),
    }
    (tmp_path.parent / f"hostile-{backend}.json").write_text(json.dumps(figures, indent=1))
    print("\nhostile requests:", json.dumps(figures))
    # The hub still serves a normal client, and its log shows no crash for any of it.
    # (anonymously when limits are on: the forged tokens have used up this address' failures)
    limited = backend == "sqlite-limits"
    client = HubClient(hub.url, "alice", "pub", None if limited else ctx["alice"])
    assert client.refs().status == 200
    if limited:
        assert statuses[429] > 0
    assert request("GET", f"{hub.url}/healthz").status == 200
    log = hub.log()
    errors = [line for line in log.splitlines() if " ERROR " in line or "Traceback" in line]
    assert not bad, f"{len(bad)} requests failed:\n" + "\n".join(bad[:20])
    assert not errors, "\n".join(errors[:20])
    assert figures["routes"] >= len(_spec_routes())


def test_push_header_lengths_do_not_hang(target_hub: tuple[str, Hub, dict[str, Any]]) -> None:
    """A push header that claims more bytes than the body has is an answer, not a wait."""
    _, hub, ctx = target_hub
    for n in (2**32 - 1, 1 << 20, 100):
        body = n.to_bytes(4, "big") + b'{"updates": []}'
        headers = [
            (b"Authorization", f"Bearer {ctx['alice']}".encode()),
            (b"Content-Type", b"application/x-muse-push"),
        ]
        got = send(hub.port, "POST", b"/alice/pub/push/stream", headers, body, False)
        assert isinstance(got, int) and 400 <= got < 500, got
