"""The JSON repository API and bad input, over HTTP against a real hub."""

from __future__ import annotations

import http.client
import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fixtures import Hub, start_hub

_names = (f"a{i}" for i in itertools.count())


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    h = start_hub(tmp_path_factory.mktemp("api"))
    yield h
    h.stop()
    assert h.unhandled_errors() == []


def new_user(hub: Hub) -> tuple[str, str]:
    name = next(_names)
    return name, hub.create_user(name)


def raw(
    hub: Hub,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def test_healthz_and_protocol_header(hub: Hub) -> None:
    status, headers, body = raw(hub, "GET", "/healthz")
    assert status == 200
    assert json.loads(body) == {"status": "ok"}
    status, headers, body = raw(hub, "GET", "/readyz")
    assert status == 200
    assert json.loads(body) == {"status": "ok", "database": "ok", "storage": "ok"}
    assert headers["muse-protocol"] == "1"
    status, headers, _ = raw(hub, "GET", "/no/such/thing/here")
    assert status == 404 and headers["muse-protocol"] == "1"


def test_repo_lifecycle(hub: Hub) -> None:
    name, tok = new_user(hub)
    status, created = hub.request(
        "POST", "/api/repos", {"slug": "song", "default_branch": "trunk"}, token=tok
    )
    assert status == 201
    assert created["owner"] == name and created["slug"] == "song"
    assert created["private"] is False and created["default_branch"] == "trunk"
    assert isinstance(created["created_at"], int)
    assert hub.request("GET", f"/api/repos/{name}/song")[1] == created
    code, body = hub.request("POST", "/api/repos", {"slug": "song"}, token=tok, check=False)
    assert code == 409 and body["error"] == "repo_exists"
    hub.request("POST", "/api/repos", {"owner": name, "slug": "b", "private": True}, token=tok)
    listed = hub.request("GET", f"/api/repos?owner={name}", token=tok)[1]["repos"]
    assert [(r["slug"], r["private"]) for r in listed] == [("b", True), ("song", False)]
    anon = hub.request("GET", f"/api/repos?owner={name}")[1]["repos"]
    assert [r["slug"] for r in anon] == ["song"]
    # refs of the new repository, through the protocol routes
    code, refs = hub.request("GET", f"/{name}/song/refs", check=False)
    assert code == 200 and refs["refs"] == {} and refs["default_branch"] == "trunk"
    assert hub.request("DELETE", f"/api/repos/{name}/song", token=tok)[0] == 204
    assert hub.request("GET", f"/api/repos/{name}/song", check=False)[0] == 404
    assert hub.request("DELETE", f"/api/repos/{name}/song", token=tok, check=False)[0] == 404
    # the slug is free again
    assert hub.request("POST", "/api/repos", {"slug": "song"}, token=tok)[0] == 201


def test_create_for_another_owner_needs_admin(hub: Hub) -> None:
    a, atok = new_user(hub)
    b, _ = new_user(hub)
    code, body = hub.request("POST", "/api/repos", {"owner": b, "slug": "x"}, atok, check=False)
    assert code == 403 and body["error"] == "forbidden"
    assert hub.create_repo(b, "x")["owner"] == b
    code, body = hub.request(
        "POST", "/api/repos", {"owner": "ghost", "slug": "x"}, hub.admin_token, check=False
    )
    assert code == 404 and body["error"] == "not_found"


def test_get_user(hub: Hub) -> None:
    name, tok = new_user(hub)
    assert hub.request("GET", "/api/user", token=tok)[1] == {
        "username": name,
        "scopes": ["read", "write"],
        "admin": False,
    }
    me = hub.request("GET", "/api/user", token=hub.admin_token)[1]
    assert me["admin"] is True and me["scopes"] == ["read", "write", "admin"]


def test_user_admin_api(hub: Hub) -> None:
    name = next(_names)
    hub.request("POST", "/api/users", {"username": name}, hub.admin_token)
    code, body = hub.request("POST", "/api/users", {"username": name}, hub.admin_token, check=False)
    assert code == 409
    for bad in ("api", "-x", "a/b", "", "x" * 65, "héllo"):
        code, body = hub.request(
            "POST", "/api/users", {"username": bad}, hub.admin_token, check=False
        )
        assert code == 400, bad
    code, body = hub.request(
        "POST", f"/api/users/{name}/tokens", {"scopes": ["root"]}, hub.admin_token, check=False
    )
    assert code == 400
    code, body = hub.request(
        "POST", "/api/users/ghost/tokens", {"scopes": ["read"]}, hub.admin_token, check=False
    )
    assert code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"slug": ""},
        {"slug": "../etc"},
        {"slug": "a/b"},
        {"slug": "x.git"},
        {"slug": "-x"},
        {"slug": "x" * 101},
        {"slug": 5},
        {"slug": None},
        {},
        {"slug": "ok", "private": "yes"},
        {"slug": "ok", "private": 1},
        {"slug": "ok", "default_branch": "bad..name"},
        {"slug": "ok", "default_branch": ""},
        {"slug": "ok", "owner": 7},
    ],
)
def test_bad_repo_bodies(hub: Hub, body: dict[str, object]) -> None:
    _, tok = new_user(hub)
    code, answer = hub.request("POST", "/api/repos", body, token=tok, check=False)
    assert code == 400, answer
    assert answer["error"] in ("bad_request", "invalid_ref_name")
    assert isinstance(answer["message"], str)


@pytest.mark.parametrize(
    "path",
    ["/api/repos", "/api/users", "/api/users/admin/tokens"],
)
@pytest.mark.parametrize(
    "body,ctype,status,code",
    [
        (b"{", "application/json", 400, "invalid_json"),
        (b"", "application/json", 400, "invalid_json"),
        (b"[1, 2]", "application/json", 400, "invalid_json"),
        (b"\xff\xfe", "application/json", 400, "invalid_json"),
        (b"null", "application/json", 400, "invalid_json"),
        (b'{"slug": "x"}', "text/plain", 415, "unsupported_media_type"),
        (b'{"slug": "x"}', "", 415, "unsupported_media_type"),
        (b'{"slug": "x"}', "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b'{"slug": "' + b"x" * (2 << 20) + b'"}', "application/json", 413, "payload_too_large"),
    ],
)
def test_malformed_bodies(
    hub: Hub, path: str, body: bytes, ctype: str, status: int, code: str
) -> None:
    headers = {"Authorization": f"Bearer {hub.admin_token}"}
    if ctype:
        headers["Content-Type"] = ctype
    got, resp_headers, answer = raw(hub, "POST", path, body, headers)
    assert got == status
    assert resp_headers["content-type"] == "application/json"
    assert json.loads(answer)["error"] == code


def test_unknown_routes_and_methods_are_json(hub: Hub) -> None:
    for method, path, status in [
        ("GET", "/nope", 404),
        ("POST", "/healthz", 405),
        ("PATCH", "/api/repos", 405),
        ("GET", "/api/repos/a", 404),
        ("GET", "/_storage/x", 403),
    ]:
        got, headers, body = raw(hub, method, path)
        assert got == status, (method, path)
        assert headers["content-type"] == "application/json"
        assert set(json.loads(body)) == {"error", "message"}


def test_openapi_describes_every_endpoint(hub: Hub) -> None:
    doc = hub.request("GET", "/openapi.json")[1]
    assert doc["openapi"].startswith("3.1")
    assert doc["servers"] == [{"url": hub.url}]
    paths = doc["paths"]
    expected = {
        "/healthz": {"get"},
        "/openapi.json": {"get"},
        "/{owner}/{slug}/refs": {"get"},
        "/{owner}/{slug}/push/stream": {"post"},
        "/{owner}/{slug}/push/presign": {"post"},
        "/{owner}/{slug}/push/commit": {"post"},
        "/{owner}/{slug}/push/stage": {"post"},
        "/{owner}/{slug}/objects/missing": {"post"},
        "/{owner}/{slug}/fetch/bundle": {"post"},
        "/api/repos": {"get", "post"},
        "/api/repos/{owner}/{slug}": {"get", "delete"},
        "/api/repos/{owner}/{slug}/collaborators/{user}": {"put", "delete"},
        "/api/user": {"get"},
        "/api/users": {"post"},
        "/api/users/{username}/tokens": {"post"},
        "/_storage/{key}": {"get", "put"},
    }
    for path, methods in expected.items():
        assert methods <= set(paths[path]), path
    # every route the app serves is described
    from starlette.routing import Route

    from musehub.app import create_app
    from musehub.config import load_settings

    app = create_app(load_settings(env=hub.env), migrate=False)
    for route in app.routes:
        assert isinstance(route, Route)
        documented = route.path.replace("{key:path}", "{key}")
        assert documented in paths, route.path
        for m in route.methods or ():
            if m != "HEAD":
                assert m.lower() in paths[documented], (m, route.path)


def test_rate_limit(tmp_path_factory: pytest.TempPathFactory) -> None:
    h = start_hub(tmp_path_factory.mktemp("rl"), env={"MUSEHUB_RATE_LIMIT_PER_MINUTE": "5"})
    try:
        codes = [h.request("GET", "/api/user", token=h.admin_token, check=False) for _ in range(6)]
        assert [c for c, _ in codes[:5]] == [200] * 5
        code, body = codes[5]
        assert code == 429 and body["error"] == "rate_limited"
        status, headers, _ = raw(
            h, "GET", "/api/user", headers={"Authorization": f"Bearer {h.admin_token}"}
        )
        assert status == 429 and 1 <= int(headers["retry-after"]) <= 60
        # another caller (anonymous, by address) has its own budget; health checks are exempt
        assert h.request("GET", "/api/repos", check=False)[0] == 200
        assert all(h.request("GET", "/healthz")[0] == 200 for _ in range(10))
    finally:
        h.stop()


def test_rate_limiter_window() -> None:
    from musehub.ratelimit import RateLimiter

    rl = RateLimiter(2)
    assert rl.hit("a", 0.0) == 0 and rl.hit("a", 1.0) == 0
    assert rl.hit("a", 2.0) == pytest.approx(58.0)
    assert rl.hit("b", 2.0) == 0
    assert rl.hit("a", 60.5) == 0  # the first hit left the window
    assert RateLimiter(0).hit("a") == 0


def asgi_get(app: Any, path: str) -> tuple[int, dict[bytes, bytes], bytes]:
    """One in-process GET through an ASGI app: (status, headers, body)."""
    import asyncio

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 1),
        "client": ("127.0.0.1", 2),
        "root_path": "",
    }
    asyncio.run(app(scope, receive, send))
    headers = dict(sent[0]["headers"])
    return sent[0]["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])


def _app_raising(exc: Exception) -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Route

    from musehub.app import AccessLogMiddleware
    from musehub.errors import exception_handlers
    from musehub.metrics import ObserveMiddleware

    async def boom(request: object) -> None:
        raise exc

    return Starlette(
        routes=[Route("/boom", boom)],
        middleware=[Middleware(ObserveMiddleware), Middleware(AccessLogMiddleware)],
        exception_handlers=exception_handlers(),
    )


def test_unexpected_exception_is_a_logged_json_500(caplog: pytest.LogCaptureFixture) -> None:
    """A crashing route gives a JSON 500 and a logged traceback."""
    import logging

    hub_log = logging.getLogger("musehub")  # may not propagate (configure_logging)
    hub_log.addHandler(caplog.handler)
    try:
        with caplog.at_level("INFO", logger="musehub"):
            status, headers, body = asgi_get(_app_raising(ZeroDivisionError("boom")), "/boom")
    finally:
        hub_log.removeHandler(caplog.handler)
    assert status == 500
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"muse-protocol"] == b"1"
    assert json.loads(body) == {"error": "internal_error", "message": "internal server error"}
    assert any("unhandled error in GET /boom" in r.getMessage() for r in caplog.records)
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)
    assert any("GET /boom 500" in r.getMessage() for r in caplog.records)


def test_storage_down_is_503() -> None:
    from musehub.storage import StorageUnavailable

    status, headers, body = asgi_get(_app_raising(StorageUnavailable("gone")), "/boom")
    assert status == 503 and headers[b"retry-after"] == b"2"
    assert json.loads(body)["error"] == "storage_unavailable"


def test_id_lists_of_the_protocols_size_are_accepted(hub: Hub) -> None:
    """objects/missing and fetch/bundle take up to 100,000 ids (docs/wire.md): 6.7 MB of
    JSON, past the API's 1 MiB; one more id, or a larger body, is refused with a 4xx."""
    name, tok = new_user(hub)
    hub.request("POST", "/api/repos", {"slug": "ids"}, token=tok)
    auth = {"Authorization": f"Bearer {tok}", "Content-Type": "application/json"}
    ids = [f"{i:064x}" for i in range(100_000)]
    body = json.dumps({"ids": ids}).encode()
    assert len(body) > 6_000_000
    status, _, out = raw(hub, "POST", f"/{name}/ids/objects/missing", body, auth)
    assert status == 200 and len(json.loads(out)["missing"]) == 100_000
    status, _, out = raw(
        hub,
        "POST",
        f"/{name}/ids/objects/missing",
        json.dumps({"ids": [*ids, "0" * 64]}).encode(),
        auth,
    )
    assert status == 400 and json.loads(out)["error"] == "bad_request"
    status, _, out = raw(hub, "POST", f"/{name}/ids/objects/missing", b" " * (9 << 20), auth)
    assert status == 413 and json.loads(out)["error"] == "payload_too_large"
    doc = {"wants": [], "haves": [], "have_objects": ids, "path": "stream"}
    status, _, out = raw(hub, "POST", f"/{name}/ids/fetch/bundle", json.dumps(doc).encode(), auth)
    assert status == 200, out[:200]  # an empty pack: nothing wanted
