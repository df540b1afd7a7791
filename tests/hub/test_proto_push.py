"""push/stream and push/presign against a real `musehub serve` (embedded defaults).

Everything here speaks raw HTTP (docs/wire.md §4): the hub is checked on its own.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import time
import urllib.parse

import pytest
from proto_util import History, HubClient, pack_bytes, push_body, request, update
from sqlalchemy import create_engine, text

from muse.core import objects as O

MAIN = "refs/heads/main"
_slugs = itertools.count()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from fixtures import start_hub

    h = start_hub(tmp_path_factory.mktemp("hub"))
    h.alice = h.create_user("alice")  # type: ignore[attr-defined]
    yield h
    h.stop()


@pytest.fixture
def repo(hub) -> HubClient:  # type: ignore[no-untyped-def]
    slug = f"song{next(_slugs)}"
    hub.create_repo("alice", slug)
    return HubClient(hub.url, "alice", slug, hub.alice)


def _refs(repo: HubClient) -> dict[str, str]:
    r = repo.refs()
    assert r.status == 200, r.body
    assert r.headers["muse-protocol"] == "1"
    return r.json()["refs"]  # type: ignore[no-any-return]


def test_refs_of_empty_repo(repo: HubClient) -> None:
    r = repo.refs()
    assert r.status == 200
    doc = r.json()
    assert doc["protocol"] == 1 and doc["refs"] == {} and doc["default_branch"] == "main"
    assert doc["limits"]["stream_max_blobs"] == 500
    assert doc["limits"]["stream_max_bytes"] == 50 * 1024 * 1024
    assert {"max_pack_bytes", "max_object_bytes"} <= set(doc["limits"])


@pytest.mark.parametrize("how", ["stream", "presign"])
def test_push_then_push_more(repo: HubClient, how: str) -> None:
    h = History()
    c1 = h.commit({"a.txt": b"one", "dir/b.txt": b"two"})
    push = repo.push_stream if how == "stream" else repo.push_presign
    r = push([update(MAIN, None, c1)], h.pack_of(h.reachable(c1)))
    assert r.status == 200, r.body
    assert r.headers["muse-protocol"] == "1"
    doc = r.json()
    assert doc["updated"] == [{"ref": MAIN, "old": None, "new": c1.hex()}]
    assert doc["objects"] == len(h.reachable(c1)) and doc["bytes"] > 0
    assert _refs(repo) == {MAIN: c1.hex()}

    c2 = h.commit({"dir/c.txt": b"three"}, c1)
    new = h.reachable(c2) - h.reachable(c1)
    r = push([update(MAIN, c1, c2)], h.pack_of(new))
    assert r.status == 200, r.body
    assert r.json()["objects"] == len(new)
    assert _refs(repo) == {MAIN: c2.hex()}

    # An idempotent retry of the same push succeeds and changes nothing.
    r = push([update(MAIN, c1, c2)], h.pack_of(new))
    assert r.status == 200, r.body
    assert _refs(repo) == {MAIN: c2.hex()}


def test_push_ref_to_existing_commit_with_empty_pack(repo: HubClient) -> None:
    h = History()
    c1 = h.commit({"a": b"1"})
    assert repo.push_stream([update(MAIN, None, c1)], h.pack_of(h.reachable(c1))).status == 200
    r = repo.push_stream([update("refs/heads/topic", None, c1)], pack_bytes([]))
    assert r.status == 200, r.body
    assert r.json()["objects"] == 0
    r = repo.push_stream([update("refs/heads/topic", c1, None)], pack_bytes([]))
    assert r.status == 200, r.body
    assert _refs(repo) == {MAIN: c1.hex()}


def test_stale_and_non_fast_forward(repo: HubClient) -> None:
    h = History()
    c1 = h.commit({"a": b"1"})
    c2 = h.commit({"a": b"2"}, c1)
    side = h.commit({"a": b"side"}, c1)
    assert repo.push_stream([update(MAIN, None, c2)], h.pack_of(h.reachable(c2))).status == 200

    # Stale: the client believes main is at c1.
    c3 = h.commit({"a": b"3"}, c1)
    r = repo.push_stream([update(MAIN, c1, c3)], h.pack_of(h.reachable(c3) - h.reachable(c1)))
    assert r.status == 409 and r.error == "stale_ref", r.body
    # Creating a ref that exists is stale too.
    r = repo.push_stream([update(MAIN, None, c1)], pack_bytes([]))
    assert r.status == 409 and r.error == "stale_ref"
    assert _refs(repo) == {MAIN: c2.hex()}

    # Non-fast-forward: side does not contain c2.
    pack = h.pack_of(h.reachable(side) - h.reachable(c2))
    r = repo.push_stream([update(MAIN, c2, side)], pack)
    assert r.status == 409 and r.error == "non_fast_forward", r.body
    assert r.headers["muse-protocol"] == "1"
    assert _refs(repo) == {MAIN: c2.hex()}
    r = repo.push_stream([update(MAIN, c2, side, force=True)], pack)
    assert r.status == 200, r.body
    assert _refs(repo) == {MAIN: side.hex()}


def test_multi_ref_push_is_all_or_none(repo: HubClient) -> None:
    h = History()
    c1 = h.commit({"a": b"1"})
    assert repo.push_stream([update(MAIN, None, c1)], h.pack_of(h.reachable(c1))).status == 200
    c2 = h.commit({"b": b"2"}, c1)
    new = h.reachable(c2) - h.reachable(c1)
    # The second update is stale (main is not at c2), so the first must not happen either.
    c3 = h.commit({"c": b"3"}, c2)
    r = repo.push_stream(
        [update("refs/heads/feature", None, c2), update(MAIN, c2, c3)],
        h.pack_of(h.reachable(c3) - h.reachable(c1)),
    )
    assert r.status == 409, r.body
    assert _refs(repo) == {MAIN: c1.hex()}
    # Nothing of the refused push is visible: its objects cannot be fetched.
    f, _ = repo.fetch([c2])
    assert f.status == 400 and f.error == "unknown_want"
    # Both at once succeed.
    r = repo.push_stream(
        [update("refs/heads/feature", None, c2), update(MAIN, c1, c2)], h.pack_of(new)
    )
    assert r.status == 200, r.body
    assert _refs(repo) == {MAIN: c2.hex(), "refs/heads/feature": c2.hex()}


def _stored(hub, repo: HubClient) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(packs rows, pack files in storage) of a repository (local storage)."""
    slug = repo.base.rsplit("/", 1)[1]
    engine = create_engine(hub.database_url)
    try:
        with engine.connect() as conn:
            repo_id, rows = conn.execute(
                text(
                    "SELECT repos.id, count(packs.id) FROM repos LEFT JOIN packs"
                    " ON packs.repo_id = repos.id WHERE repos.slug = :s GROUP BY repos.id"
                ),
                {"s": slug},
            ).one()
    finally:
        engine.dispose()
    files = list(hub.data_dir.glob(f"objects/repos/{repo_id}/packs/*.pack"))
    return rows, len(files)


def _assert_untouched(hub, repo: HubClient, expected: dict[str, str], hidden: bytes) -> None:  # type: ignore[no-untyped-def]
    assert _refs(repo) == expected
    f, _ = repo.fetch([hidden])
    assert f.status == 400 and f.error == "unknown_want", f.body
    assert _stored(hub, repo) == (1, 1)  # only the first push's pack, row and file


def test_quarantine_refuses_bad_pushes(hub, repo: HubClient) -> None:  # type: ignore[no-untyped-def]
    h = History()
    c1 = h.commit({"a": b"1", "d/x": b"x"})
    assert repo.push_stream([update(MAIN, None, c1)], h.pack_of(h.reachable(c1))).status == 200
    state = {MAIN: c1.hex()}
    c2 = h.commit({"d/y": b"new file"}, c1)
    new = h.reachable(c2) - h.reachable(c1)
    blob = O.object_id(O.BLOB, b"new file")

    # Missing object: the new blob is not sent.
    r = repo.push_stream([update(MAIN, c1, c2)], h.pack_of(new - {blob}))
    assert r.status == 400 and r.error == "missing_objects", r.body
    _assert_untouched(hub, repo, state, c2)

    # Hash mismatch: one byte of a raw blob record flipped.
    good = h.pack_of(new)
    at = good.find(b"new file")
    assert at > 0
    bad = good[:at] + b"N" + good[at + 1 :]
    r = repo.push_stream([update(MAIN, c1, c2)], bad)
    assert r.status == 400 and r.error == "bad_pack", r.body
    _assert_untouched(hub, repo, state, c2)

    # Truncated body (the client ends early).
    r = repo.push_stream([update(MAIN, c1, c2)], good[: len(good) // 2])
    assert r.status == 400 and r.error == "bad_pack", r.body
    _assert_untouched(hub, repo, state, c2)

    # Trailing garbage after the pack.
    r = repo.push_stream([update(MAIN, c1, c2)], good + b"junk")
    assert r.status == 400 and r.error == "bad_pack", r.body
    _assert_untouched(hub, repo, state, c2)

    # Bad structure: a "tree" that is not a canonical tree, hashed correctly.
    junk_tree = b"\x00\x00\x00\x01\x01" + b"\x11" * 32 + b"../evil\x00"
    junk_id = O.object_id(O.TREE, junk_tree)
    sig = O.Signature("x", "x@example.invalid", 1)
    cbody = O.Commit(junk_id, (c1,), sig, sig, "bad").encode()
    cid = O.object_id(O.COMMIT, cbody)
    r = repo.push_stream(
        [update(MAIN, c1, cid)], pack_bytes([(O.TREE, junk_tree), (O.COMMIT, cbody)])
    )
    assert r.status == 400 and r.error in ("bad_pack", "missing_objects"), r.body
    _assert_untouched(hub, repo, state, cid)

    # A branch pointing at a blob.
    r = repo.push_stream(
        [update("refs/heads/blob", None, blob)], pack_bytes([(O.BLOB, b"new file")])
    )
    assert r.status == 400, r.body
    _assert_untouched(hub, repo, state, blob)

    # And the real push still works afterwards.
    r = repo.push_stream([update(MAIN, c1, c2)], good)
    assert r.status == 200, r.body


def test_bad_requests(repo: HubClient) -> None:
    h = History()
    c1 = h.commit({"a": b"1"})
    pack = h.pack_of(h.reachable(c1))
    base = repo.base
    tok = {"Authorization": f"Bearer {repo.token}"}
    push_ct = {"Content-Type": "application/x-muse-push", **tok}

    def post(body: bytes, headers: dict[str, str]) -> tuple[int, str | None]:
        r = request("POST", f"{base}/push/stream", body=body, headers=headers)
        assert r.headers.get("content-type", "").startswith("application/json"), r.body
        assert r.headers.get("muse-protocol") == "1"
        return r.status, r.error

    body = push_body([update(MAIN, None, c1)], pack)
    assert post(body, {"Content-Type": "application/json", **tok}) == (
        415,
        "unsupported_media_type",
    )
    assert post(b"\x00\x00", push_ct) == (400, "bad_request")
    assert post(b"\x00\x00\x00\x05{}", push_ct) == (400, "bad_request")
    assert post(b"\x00\x00\x00\x03{x}" + pack, push_ct) == (400, "invalid_json")
    bad_ref = push_body([update("refs/heads/a..b", None, c1)], pack)
    assert post(bad_ref, push_ct) == (400, "invalid_ref_name")
    bad_id = push_body([{"ref": MAIN, "old": None, "new": "xyz"}], pack)
    assert post(bad_id, push_ct) == (400, "invalid_id")
    assert post(b"\xff\xff\xff\xff" + b"x" * 100, push_ct) == (400, "bad_request")
    assert post(push_body([update(MAIN, None, c1)], b"not a pack at all"), push_ct) == (
        400,
        "bad_pack",
    )
    # JSON endpoints: wrong type, invalid JSON, wrong fields, bad ids.
    r = repo.post_json("fetch/bundle", {"wants": ["nothex"]})
    assert (r.status, r.error) == (400, "invalid_id")
    r = repo.post_json("fetch/bundle", {"wants": "x"})
    assert (r.status, r.error) == (400, "bad_request")
    r = request(
        "POST", f"{base}/fetch/bundle", body=b"{", headers={"Content-Type": "application/json"}
    )
    assert (r.status, r.error) == (400, "invalid_json")
    r = repo.post_json("push/commit", {"upload_id": "nope", "updates": [update(MAIN, None, c1)]})
    assert (r.status, r.error) == (404, "upload_not_found")
    assert _refs(repo) == {}


def test_too_large_push(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from fixtures import start_hub

    hub = start_hub(tmp_path, env={"MUSEHUB_MAX_PACK_BYTES": "100000"})
    try:
        tok = hub.create_user("bob")
        hub.create_repo("bob", "big")
        repo = HubClient(hub.url, "bob", "big", tok)
        h = History()
        c1 = h.commit({f"f{i}": os.urandom(50_000) for i in range(4)})
        r = repo.push_stream([update(MAIN, None, c1)], h.pack_of(h.reachable(c1)))
        assert (r.status, r.error) == (413, "payload_too_large")
        r = repo.post_json("push/presign", {"size": 200_000, "objects": 5})
        assert (r.status, r.error) == (413, "payload_too_large")
        assert _refs(repo) == {}
    finally:
        hub.stop()


def _raw_push(url: str, token: str, slug_path: str, declared: int, body: bytes) -> bytes:
    """Send a push whose body is shorter than its Content-Length, then half-close."""
    u = urllib.parse.urlsplit(url)
    with socket.create_connection((u.hostname, u.port), timeout=30) as s:
        head = (
            f"POST {slug_path}/push/stream HTTP/1.1\r\nHost: {u.hostname}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/x-muse-push\r\n"
            f"Content-Length: {declared}\r\n\r\n"
        ).encode()
        s.sendall(head + body)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            out += chunk
        return out


def test_client_that_goes_away_mid_body(hub, repo: HubClient) -> None:  # type: ignore[no-untyped-def]
    """A body cut short by the client ends the request (no hang) and leaves nothing behind."""
    h = History()
    c1 = h.commit({f"f{i}": os.urandom(100_000) for i in range(20)})
    body = push_body([update(MAIN, None, c1)], h.pack_of(h.reachable(c1)))
    path = urllib.parse.urlsplit(repo.base).path
    t = time.monotonic()
    answer = _raw_push(hub.url, repo.token, path, len(body), body[: len(body) // 3])
    assert time.monotonic() - t < 20
    if answer:  # the hub may answer 400 or just close: never 200, never a 500
        status = int(answer.split(b" ", 2)[1])
        assert 400 <= status < 500, answer[:300]
    assert _refs(repo) == {}
    f, _ = repo.fetch([c1])
    assert f.error == "unknown_want"
    # No quarantine left over.
    deadline = time.monotonic() + 5
    while list((hub.data_dir / "cache" / "tmp").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list((hub.data_dir / "cache" / "tmp").iterdir()) == []
    # The whole body works (sent normally: a half-closed socket may lose the answer).
    r = request(
        "POST",
        f"{repo.base}/push/stream",
        body=body,
        headers={
            "Content-Type": "application/x-muse-push",
            "Authorization": f"Bearer {repo.token}",
        },
    )
    assert r.status == 200, r.body


def test_mangled_pushes_never_500(repo: HubClient) -> None:
    """Bit flips and cuts anywhere in a push body: a 4xx (or, if harmless, a 200), never 5xx."""
    import random

    h = History()
    c1 = h.commit({f"d{i % 3}/f{i}": os.urandom(300) for i in range(12)})
    body = push_body([update(MAIN, None, c1)], h.pack_of(h.reachable(c1)))
    rnd = random.Random(1234)
    statuses = set()
    for n in range(120):
        data = bytearray(body)
        if n % 3 == 0:
            data = data[: rnd.randrange(len(data))]
        else:
            for _ in range(1 + n % 4):
                data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
        r = request(
            "POST",
            f"{repo.base}/push/stream",
            body=bytes(data),
            headers={
                "Content-Type": "application/x-muse-push",
                "Authorization": f"Bearer {repo.token}",
            },
        )
        statuses.add(r.status)
        assert r.status < 500, (n, r.status, r.body[:300])
        if r.status == 200:  # a flip that changed nothing that matters
            assert _refs(repo) == {MAIN: c1.hex()}
            assert repo.push_stream([update(MAIN, c1, None)], pack_bytes([])).status == 200
        else:
            assert r.headers["content-type"].startswith("application/json")
            assert _refs(repo) == {}
    assert statuses - {200} <= {400, 409, 413}


def test_stalled_body_is_cut_off(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A client that stops sending mid-body (without closing) gets a 400 after the idle timeout."""
    from fixtures import start_hub

    hub = start_hub(tmp_path, env={"MUSEHUB_BODY_IDLE_TIMEOUT_S": "1.5"})
    try:
        tok = hub.create_user("slow")
        hub.create_repo("slow", "s")
        h = History()
        c1 = h.commit({"a": os.urandom(50_000)})
        body = push_body([update(MAIN, None, c1)], h.pack_of(h.reachable(c1)))
        u = urllib.parse.urlsplit(hub.url)
        with socket.create_connection((u.hostname, u.port), timeout=30) as s:
            s.sendall(
                (
                    f"POST /slow/s/push/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}"
                    f"\r\nContent-Type: application/x-muse-push\r\nContent-Length: {len(body)}"
                    "\r\n\r\n"
                ).encode()
                + body[:1000]
            )
            t = time.monotonic()
            answer = b""
            while not re.search(rb"\r\n\r\n.*\}", answer, re.S):
                chunk = s.recv(65536)
                if not chunk:
                    break
                answer += chunk
            assert time.monotonic() - t < 15
        assert answer.split(b" ", 2)[1] == b"400", answer[:300]
        assert b"bad_pack" in answer or b"bad_request" in answer
        assert HubClient(hub.url, "slow", "s", tok).refs().json()["refs"] == {}
    finally:
        hub.stop()


def test_pack_with_more_records_than_allowed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from fixtures import start_hub

    hub = start_hub(tmp_path, env={"MUSEHUB_MAX_OBJECTS": "3"})
    try:
        tok = hub.create_user("bob")
        hub.create_repo("bob", "many")
        repo = HubClient(hub.url, "bob", "many", tok)
        h = History()
        c1 = h.commit({f"f{i}": os.urandom(100) for i in range(5)})
        r = repo.push_stream([update(MAIN, None, c1)], h.pack_of(h.reachable(c1)))
        assert 400 <= r.status < 500 and r.error in ("bad_pack", "payload_too_large"), r
        assert _refs(repo) == {}
    finally:
        hub.stop()
