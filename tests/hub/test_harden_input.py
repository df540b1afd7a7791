"""Hostile input that once crashed the hub answers 4xx on both backends, with the same code.

One test per class of issue 11 ("Answers that must be 4xx, not 500"): JSON nested 10,000
deep on every JSON endpoint, lone surrogates in an upload id and a default branch, NUL bytes
in every name that reaches a query (PostgreSQL refuses them in text), a non-ASCII signature on
``/_storage``. The hubs fail the test at teardown if any request was answered with a 500.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fixtures import Hub, start_hub

ID = "a" * 64
DEEP_ARRAY = b"[" * 10_000 + b"]" * 10_000
DEEP_OBJECT = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
#: Below the parser's recursion limit, above the hub's depth limit: parses, then is refused.
NESTED_500 = b'{"wants":' + b"[" * 500 + b"]" * 500 + b"}"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def hub(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    tmp = tmp_path_factory.mktemp("harden-input")
    if request.param == "sqlite":
        h = start_hub(tmp)
    else:
        pg, s3 = request.getfixturevalue("postgres"), request.getfixturevalue("seaweedfs")
        h = start_hub(tmp, storage="s3", s3=s3, database=pg.new_database())
    h.create_user("alice")
    h.create_repo("alice", "pub")
    yield h
    h.stop()
    assert h.unhandled_errors() == []
    assert "Traceback" not in h.log()


@pytest.fixture(scope="module")
def alice(hub: Hub) -> str:
    return hub.create_token("alice")


def call(
    hub: Hub,
    method: str,
    path: str,
    body: bytes | None = None,
    token: str | None = None,
    ctype: str | None = "application/json",
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if body is not None and ctype:
        headers["Content-Type"] = ctype
    conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        raw = r.read()
    finally:
        conn.close()
    return r.status, json.loads(raw) if raw else {}


JSON_ENDPOINTS = [
    ("/api/repos", "admin"),
    ("/api/users", "admin"),
    ("/api/users/alice/tokens", "admin"),
    ("/alice/pub/fetch/bundle", None),  # a public repository: reached anonymously
    ("/alice/pub/push/presign", "alice"),
    ("/alice/pub/push/commit", "alice"),
]


@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT, NESTED_500], ids=["arr", "obj", "500"])
@pytest.mark.parametrize(("path", "who"), JSON_ENDPOINTS, ids=[p for p, _ in JSON_ENDPOINTS])
def test_deep_json_is_invalid_json(
    hub: Hub, alice: str, path: str, who: str | None, body: bytes
) -> None:
    token = {"admin": hub.admin_token, "alice": alice, None: None}[who]
    status, doc = call(hub, "POST", path, body, token)
    assert (status, doc["error"]) == (400, "invalid_json"), doc


def test_deep_json_in_a_push_header(hub: Hub, alice: str) -> None:
    head = DEEP_ARRAY
    body = len(head).to_bytes(4, "big") + head
    status, doc = call(
        hub, "POST", "/alice/pub/push/stream", body, alice, "application/x-muse-push"
    )
    assert (status, doc["error"]) == (400, "invalid_json"), doc


def _commit_body(upload_id: str) -> bytes:
    upd = {"ref": "refs/heads/main", "old": None, "new": ID}
    return json.dumps({"upload_id": upload_id, "updates": [upd]}).encode()


@pytest.mark.parametrize("upload_id", ["\ud800", "a\x00b", "\udfff" * 40, "x" * 5000])
def test_hostile_upload_id_is_upload_not_found(hub: Hub, alice: str, upload_id: str) -> None:
    status, doc = call(hub, "POST", "/alice/pub/push/commit", _commit_body(upload_id), alice)
    assert (status, doc["error"]) == (404, "upload_not_found"), doc


@pytest.mark.parametrize("branch", ["\ud800", "ma\x00in", "a\udc80b"])
def test_hostile_default_branch_is_invalid_ref_name(hub: Hub, branch: str) -> None:
    body = json.dumps({"owner": "alice", "slug": "db1", "default_branch": branch}).encode()
    status, doc = call(hub, "POST", "/api/repos", body, hub.admin_token)
    assert (status, doc["error"]) == (400, "invalid_ref_name"), doc


@pytest.mark.parametrize(
    ("method", "path", "code"),
    [
        ("GET", "/api/repos/al%00ice/pub", "repo_not_found"),
        ("GET", "/api/repos/alice/p%00ub", "repo_not_found"),
        ("DELETE", "/api/repos/alice/p%00ub", "repo_not_found"),
        ("GET", "/al%00ice/pub/refs", "repo_not_found"),
        ("GET", "/alice/pub%00/refs", "repo_not_found"),
        ("POST", "/al%00ice/pub/fetch/bundle", "repo_not_found"),
        ("PUT", "/api/repos/alice/pub/collaborators/b%00b", "not_found"),
        ("DELETE", "/api/repos/alice/pub/collaborators/b%00b", "not_found"),
        ("PUT", "/api/repos/al%00ice/pub/collaborators/bob", "repo_not_found"),
        ("POST", "/api/users/al%00ice/tokens", "not_found"),
    ],
)
def test_nul_in_a_name_is_not_found(hub: Hub, method: str, path: str, code: str) -> None:
    body = b"{}" if method == "POST" else None
    status, doc = call(hub, method, path, body, hub.admin_token)
    assert (status, doc["error"]) == (404, code), doc


def test_nul_in_owner_query_lists_nothing(hub: Hub) -> None:
    for q in ("a%00", "alice%00", "%00", "%ED%A0%80"):
        assert call(hub, "GET", f"/api/repos?owner={q}") == (200, {"repos": []})
    assert [r["slug"] for r in call(hub, "GET", "/api/repos?owner=alice")[1]["repos"]] == ["pub"]


@pytest.mark.parametrize("field", ["owner", "username"])
def test_nul_or_surrogate_in_a_json_name(hub: Hub, field: str) -> None:
    for name in ("al\x00ice", "\ud800"):
        if field == "owner":
            body, path, want = {"owner": name, "slug": "x"}, "/api/repos", (404, "not_found")
        else:
            body, path, want = {"username": name}, "/api/users", (400, "bad_request")
        status, doc = call(hub, "POST", path, json.dumps(body).encode(), hub.admin_token)
        assert (status, doc["error"]) == want, doc


@pytest.mark.parametrize("sig", ["%C3%A9" * 32, "%C3%A9", "%00" * 64, "g" * 64, ""])
def test_bad_signature_characters_are_403(hub: Hub, sig: str) -> None:
    for method in ("GET", "PUT"):
        path = f"/_storage/repos/1/uploads/x.pack?m={method}&exp=9999999999&sig={sig}"
        status, doc = call(hub, method, path, b"x" if method == "PUT" else None, ctype=None)
        if hub.storage == "local":
            assert (status, doc["error"]) == (403, "bad_signature"), doc
        else:  # no /_storage route without local storage
            assert status in (404, 405), doc


@pytest.mark.parametrize(
    "days", [b"Infinity", b"-Infinity", b"NaN", b"9223372036854775808", b"1e308", b"36501", b"0"]
)
def test_token_lifetimes_beyond_any_date_are_bad_request(hub: Hub, days: bytes) -> None:
    body = b'{"scopes": ["read"], "expires_days": ' + days + b"}"
    status, doc = call(hub, "POST", "/api/users/alice/tokens", body, hub.admin_token)
    assert (status, doc["error"]) == (400, "bad_request"), doc
    assert "expires_days" in doc["message"]
