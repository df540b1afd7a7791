"""Who may call the protocol endpoints, presigned URL checks, and abandoned uploads."""

from __future__ import annotations

import re
import time

import pytest
from proto_util import History, HubClient, auth, push_body, request, update
from sqlalchemy import create_engine, text

MAIN = "refs/heads/main"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from fixtures import start_hub

    h = start_hub(tmp_path_factory.mktemp("hub"))
    h.alice = h.create_user("alice")  # type: ignore[attr-defined]
    h.bob = h.create_user("bob")  # type: ignore[attr-defined]
    h.alice_ro = h.create_token("alice", "read")  # type: ignore[attr-defined]
    yield h
    h.stop()


def _seed(client: HubClient) -> tuple[History, bytes]:
    h = History()
    c1 = h.commit({"a": b"1"})
    r = client.push_stream([update(MAIN, None, c1)], h.pack_of(h.reachable(c1)))
    assert r.status == 200, r.body
    return h, c1


def test_private_repo_is_invisible(hub) -> None:  # type: ignore[no-untyped-def]
    hub.create_repo("alice", "secret", private=True)
    owner = HubClient(hub.url, "alice", "secret", hub.alice)
    h, c1 = _seed(owner)
    assert owner.refs().status == 200
    for token in (None, hub.bob):
        r = owner.refs(token=token)
        assert (r.status, r.error) == (404, "repo_not_found"), r.body
        assert r.headers["muse-protocol"] == "1"
        f, _ = owner.fetch([c1], token=token)
        assert (f.status, f.error) == (404, "repo_not_found")
        c2 = h.commit({"b": b"2"}, c1)
        p = owner.push_stream([update(MAIN, c1, c2)], h.pack_of({c2}), token=token)
        assert (p.status, p.error) == (404, "repo_not_found")
    # Exactly like a repository that does not exist.
    ghost = HubClient(hub.url, "alice", "nothing-here", hub.alice)
    assert (ghost.refs().status, ghost.refs().error) == (404, "repo_not_found")


def test_tokens_and_scopes(hub) -> None:  # type: ignore[no-untyped-def]
    hub.create_repo("alice", "open")
    owner = HubClient(hub.url, "alice", "open", hub.alice)
    h, c1 = _seed(owner)
    c2 = h.commit({"b": b"2"}, c1)
    pack = h.pack_of(h.reachable(c2) - h.reachable(c1))
    ups = [update(MAIN, c1, c2)]

    # Wrong token: 401 everywhere, even for a public read.
    bad = "mh_" + "x" * 43
    assert (owner.refs(token=bad).status, owner.refs(token=bad).error) == (401, "unauthorized")
    r = owner.push_stream(ups, pack, token=bad)
    assert (r.status, r.error) == (401, "unauthorized")
    # Anonymous: may read a public repository, may not write.
    assert owner.refs(token=None).status == 200
    f, objs = owner.fetch([c1], token=None)
    assert f.status == 200 and c1 in objs
    r = owner.push_stream(ups, pack, token=None)
    assert (r.status, r.error) == (401, "unauthorized")
    r = owner.post_json("push/presign", {"size": len(pack), "objects": 4}, token=None)
    assert (r.status, r.error) == (401, "unauthorized")
    # Another user: 403; the owner's read-only token: 403.
    for token in (hub.bob, hub.alice_ro):
        r = owner.push_stream(ups, pack, token=token)
        assert (r.status, r.error) == (403, "forbidden"), r.body
        r = owner.post_json("push/presign", {"size": len(pack), "objects": 4}, token=token)
        assert (r.status, r.error) == (403, "forbidden")
    assert owner.refs().json()["refs"] == {MAIN: c1.hex()}
    # A read-only token reads.
    f, objs = owner.fetch([c1], token=hub.alice_ro)
    assert f.status == 200
    # And the owner writes.
    assert owner.push_stream(ups, pack).status == 200


def test_presigned_put_url_checks(hub) -> None:  # type: ignore[no-untyped-def]
    hub.create_repo("alice", "urls")
    client = HubClient(hub.url, "alice", "urls", hub.alice)
    h = History()
    c1 = h.commit({"a": b"1"})
    pack = h.pack_of(h.reachable(c1))
    doc = client.post_json("push/presign", {"size": len(pack), "objects": 3}).json()
    url = doc["url"]
    assert doc["method"] == "PUT" and doc["expires_at"] > time.time()
    assert "/_storage/" in url  # the local backend serves its own presigned URLs
    for forged in (
        url.replace("sig=", "sig=00"),
        re.sub(r"exp=\d+", f"exp={int(time.time()) - 10}", url),
        re.sub(r"exp=\d+", f"exp={int(time.time()) + 10**6}", url),
        url.replace("m=PUT", "m=GET"),
        url.replace("/uploads/", "/packs/"),
    ):
        r = request("PUT", forged, body=pack)
        assert (r.status, r.error) == (403, "bad_signature"), (forged, r.body)
    # GET with the PUT URL is refused as well.
    assert request("GET", url).status == 403
    # Nothing reached storage, so the commit finds no pack.
    r = client.post_json(
        "push/commit", {"upload_id": doc["upload_id"], "updates": [update(MAIN, None, c1)]}
    )
    assert r.status == 400, r.body
    assert client.refs().json()["refs"] == {}


def test_upload_ids_are_single_use_and_scoped(hub) -> None:  # type: ignore[no-untyped-def]
    hub.create_repo("alice", "once")
    hub.create_repo("alice", "other")
    client = HubClient(hub.url, "alice", "once", hub.alice)
    other = HubClient(hub.url, "alice", "other", hub.alice)
    h = History()
    c1 = h.commit({"a": b"1"})
    pack = h.pack_of(h.reachable(c1))
    doc = client.post_json("push/presign", {"size": len(pack), "objects": 3}).json()
    assert request("PUT", doc["url"], body=pack).status in (200, 201, 204)
    commit = {"upload_id": doc["upload_id"], "updates": [update(MAIN, None, c1)]}
    r = other.post_json("push/commit", commit)  # someone else's repository
    assert (r.status, r.error) == (404, "upload_not_found")
    r = client.post_json("push/commit", commit)
    assert r.status == 200, r.body
    r = client.post_json("push/commit", commit)  # used up
    assert (r.status, r.error) == (404, "upload_not_found")


def test_abandoned_upload_is_cleaned(hub) -> None:  # type: ignore[no-untyped-def]
    hub.create_repo("alice", "abandon")
    client = HubClient(hub.url, "alice", "abandon", hub.alice)
    h = History()
    c1 = h.commit({"a": b"1"})
    pack = h.pack_of(h.reachable(c1))
    doc = client.post_json("push/presign", {"size": len(pack), "objects": 3}).json()
    assert request("PUT", doc["url"], body=pack).status in (200, 201, 204)
    (stored,) = list(hub.data_dir.glob(f"objects/repos/*/uploads/{doc['upload_id']}.pack"))
    assert stored.exists()
    # The client walks away; time passes (moved forward in the database).
    engine = create_engine(hub.database_url)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE deferred_deletions SET delete_after = :t WHERE id = :id"),
            {"t": int(time.time()) - 5, "id": doc["upload_id"]},
        )
    engine.dispose()
    # The next presign sweeps expired uploads.
    assert client.post_json("push/presign", {"size": 10, "objects": 1}).status == 200
    deadline = time.time() + 10
    while stored.exists() and time.time() < deadline:
        time.sleep(0.1)
    assert not stored.exists()
    r = client.post_json(
        "push/commit", {"upload_id": doc["upload_id"], "updates": [update(MAIN, None, c1)]}
    )
    assert (r.status, r.error) == (410, "upload_expired")
    assert client.refs().json()["refs"] == {}


def test_crashed_push_leftovers_are_swept(hub) -> None:  # type: ignore[no-untyped-def]
    """A pack stored by a push that died before its ref transaction is deleted after expiry."""
    hub.create_repo("alice", "crash")
    client = HubClient(hub.url, "alice", "crash", hub.alice)
    engine = create_engine(hub.database_url)
    with engine.begin() as conn:
        repo_id, user_id = conn.execute(
            text(
                "SELECT repos.id, repos.owner_id FROM repos JOIN users ON users.id = repos.owner_id"
                " WHERE users.username = 'alice' AND repos.slug = 'crash'"
            )
        ).one()
        key = f"repos/{repo_id}/packs/pack-{'ab' * 32}-deadbeef.pack"
        conn.execute(
            text(
                "INSERT INTO deferred_deletions"
                " (id, repo_id, user_id, key, state, created_at, delete_after)"
                " VALUES (:id, :r, :u, :k, 'storing', :t, :t)"
            ),
            {"id": "c" * 32, "r": repo_id, "u": user_id, "k": key, "t": int(time.time()) - 1},
        )
    engine.dispose()
    leftover = hub.data_dir / "objects" / key
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_bytes(b"half a push")
    leftover.with_suffix(".idx").write_bytes(b"its index")
    assert client.post_json("push/presign", {"size": 10, "objects": 1}).status == 200
    deadline = time.time() + 10
    while leftover.exists() and time.time() < deadline:
        time.sleep(0.1)
    assert not leftover.exists() and not leftover.with_suffix(".idx").exists()


def test_an_unsupported_protocol_version_is_refused(hub) -> None:  # type: ignore[no-untyped-def]
    """The hub reads Muse-Protocol: another version is 400 unsupported_protocol, before any
    work; the client's own version (or none: older clients) is served."""
    hub.create_repo("alice", "versions")
    client = HubClient(hub.url, "alice", "versions", hub.alice)
    base = client.base
    for value in ("2", "0", "banana", "1, 2"):
        r = request("GET", f"{base}/refs", headers={"Muse-Protocol": value, **auth(hub.alice)})
        assert (r.status, r.error) == (400, "unsupported_protocol"), (value, r.body)
        p = request(
            "POST",
            f"{base}/push/stream",
            body=push_body([update(MAIN, None, b"\1" * 32)], b""),
            headers={
                "Muse-Protocol": value,
                "Content-Type": "application/x-muse-push",
                **auth(hub.alice),
            },
        )
        assert (p.status, p.error) == (400, "unsupported_protocol"), p.body
    for headers in ({"Muse-Protocol": "1"}, {}):
        r = request("GET", f"{base}/refs", headers={**headers, **auth(hub.alice)})
        assert r.status == 200 and r.json()["protocol"] == 1


def test_a_malformed_push_header_is_a_400_with_its_code(hub) -> None:  # type: ignore[no-untyped-def]
    hub.create_repo("alice", "headers")
    base = HubClient(hub.url, "alice", "headers", hub.alice).base
    cases = [
        (b"\0\0\0\x05{oops", "invalid_json"),
        (b"\0\0\0\x02{}", "bad_request"),
        (push_body([update("refs/heads/a b", None, b"\1" * 32)], b""), "invalid_ref_name"),
        (push_body([{"ref": MAIN, "new": "xyz"}], b""), "invalid_id"),
    ]
    for body, code in cases:
        r = request(
            "POST",
            f"{base}/push/stream",
            body=body,
            headers={"Content-Type": "application/x-muse-push", **auth(hub.alice)},
        )
        assert (r.status, r.error) == (400, code), (body, r.body)
