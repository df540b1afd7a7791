"""The protocol on PostgreSQL + a real SeaweedFS (S3), and on several hub processes at once.

Two hubs with their own data (and pack cache) directories share one database and one bucket,
as hubs on two machines would: what one accepts, the other serves.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import re
import time

import pytest
from proto_util import History, HubClient, push_body, request, update

MAIN = "refs/heads/main"


@pytest.fixture
def pair(tmp_path, seaweedfs, postgres):  # type: ignore[no-untyped-def]
    from fixtures import start_hub

    db = postgres.new_database()
    bucket = seaweedfs.new_bucket()
    one = start_hub(tmp_path / "one", storage="s3", s3=seaweedfs, bucket=bucket, database=db)
    two = start_hub(tmp_path / "two", storage="s3", s3=seaweedfs, bucket=bucket, database=db)
    yield one, two
    two.stop()
    one.stop()


def test_push_and_fetch_both_paths_across_two_hubs(pair) -> None:  # type: ignore[no-untyped-def]
    one, two = pair
    tok = one.create_user("carol")
    one.create_repo("carol", "tune")
    a = HubClient(one.url, "carol", "tune", tok)
    b = HubClient(two.url, "carol", "tune", tok)
    h = History()
    c1 = h.commit({f"d{i % 4}/f{i}": os.urandom(200) for i in range(20)})
    assert a.push_stream([update(MAIN, None, c1)], h.pack_of(h.reachable(c1))).status == 200
    c2 = h.commit({"d1/new": b"more"}, c1)
    r = b.push_presign([update(MAIN, c1, c2)], h.pack_of(h.reachable(c2) - h.reachable(c1)))
    assert r.status == 200, r.body
    for client in (a, b):
        assert client.refs().json()["refs"] == {MAIN: c2.hex()}
        for path in ("stream", "presign"):
            resp, objs = client.fetch([c2], [], path)
            assert resp.status == 200, resp.body
            assert set(objs) == h.reachable(c2)
            resp, objs = client.fetch([c2], [c1], path)
            assert set(objs) == h.reachable(c2) - h.reachable(c1)
    # The presigned bundles are the store's own URLs, not the hub's.
    resp, _ = b.fetch([c2], [], "presign")
    for bundle in resp.json()["bundles"]:
        assert not bundle["url"].startswith(two.url)
    # Stale pushes are refused whichever hub they reach.
    c3 = h.commit({"x": b"x"}, c1)
    r = a.push_stream([update(MAIN, c1, c3)], h.pack_of(h.reachable(c3) - h.reachable(c1)))
    assert (r.status, r.error) == (409, "stale_ref")


def test_s3_presigned_urls_are_checked(pair, seaweedfs) -> None:  # type: ignore[no-untyped-def]
    one, _ = pair
    tok = one.create_user("dave")
    one.create_repo("dave", "x")
    client = HubClient(one.url, "dave", "x", tok)
    h = History()
    c1 = h.commit({"a": b"1"})
    pack = h.pack_of(h.reachable(c1))
    doc = client.post_json("push/presign", {"size": len(pack), "objects": 3}).json()
    forged = re.sub(
        r"(X-Amz-Signature=)([0-9a-f])",
        lambda m: m.group(1) + ("0" if m.group(2) != "0" else "1"),
        doc["url"],
    )
    assert forged != doc["url"]
    assert request("PUT", forged, body=pack, headers=doc["headers"]).status == 403
    put = request("PUT", doc["url"], body=pack, headers=doc["headers"])
    assert put.status == 200, put.body
    r = client.post_json(
        "push/commit", {"upload_id": doc["upload_id"], "updates": [update(MAIN, None, c1)]}
    )
    assert r.status == 200, r.body
    # The uploaded bundle is gone once committed; the pack and its index rest under packs/.
    s3 = seaweedfs.client()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=one.bucket).get("Contents", [])]
    assert not [k for k in keys if "/uploads/" in k], keys
    assert len([k for k in keys if "/packs/" in k]) == 2, keys


def test_concurrent_pushers_on_two_hubs(pair) -> None:  # type: ignore[no-untyped-def]
    """Pushers spread over two hub processes (own caches, shared PostgreSQL + bucket)."""
    from test_proto_concurrency import race

    one, two = pair
    tok = one.create_user("erin")
    one.create_repo("erin", "race")
    _, rejected = race(
        HubClient(one.url, "erin", "race", tok), (HubClient(two.url, "erin", "race", tok),)
    )
    assert rejected > 0


def _keys(seaweedfs, bucket: str) -> list[str]:  # type: ignore[no-untyped-def]
    s3 = seaweedfs.client()
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_presign_commit_verifies_a_hub_only_copy(pair, seaweedfs) -> None:  # type: ignore[no-untyped-def]
    """push/commit copies the upload server-side to its pack key and verifies the copy: a
    corrupt upload is refused and leaves no pack; re-PUTting to the (still valid) upload URL
    after the commit changes nothing that is stored."""
    one, two = pair
    tok = one.create_user("faye")
    one.create_repo("faye", "s")
    a = HubClient(one.url, "faye", "s", tok)
    h = History()
    c1 = h.commit({f"f{i}": os.urandom(300) for i in range(10)})
    pack = h.pack_of(h.reachable(c1))

    bad = bytearray(pack)
    bad[len(bad) // 2] ^= 0xFF
    doc = a.post_json("push/presign", {"size": len(bad), "objects": 12}).json()
    assert request("PUT", doc["url"], body=bytes(bad), headers=doc["headers"]).status == 200
    r = a.post_json(
        "push/commit", {"upload_id": doc["upload_id"], "updates": [update(MAIN, None, c1)]}
    )
    assert (r.status, r.error) == (400, "bad_pack"), r.body
    assert not [k for k in _keys(seaweedfs, one.bucket) if "/packs/" in k]
    assert a.refs().json()["refs"] == {}

    doc = a.post_json("push/presign", {"size": len(pack), "objects": 12}).json()
    assert request("PUT", doc["url"], body=pack, headers=doc["headers"]).status == 200
    r = a.post_json(
        "push/commit", {"upload_id": doc["upload_id"], "updates": [update(MAIN, None, c1)]}
    )
    assert r.status == 200, r.body
    packs = sorted(k for k in _keys(seaweedfs, one.bucket) if "/packs/" in k)
    assert len(packs) == 2 and packs[0].endswith(".idx") and packs[1].endswith(".pack"), packs
    s3 = seaweedfs.client()
    stored = s3.get_object(Bucket=one.bucket, Key=packs[1])["Body"].read()
    assert stored == pack
    # The client's URL is still valid (for a body of the presigned size, which the store's
    # signature binds): what it PUTs now reaches only the upload key.
    evil = bytes(b ^ 0xFF for b in pack)
    assert request("PUT", doc["url"], body=evil, headers=doc["headers"]).status == 200
    assert s3.get_object(Bucket=one.bucket, Key=packs[1])["Body"].read() == pack
    # A hub with a cold cache downloads the stored pack: the verified objects, nothing else.
    b = HubClient(two.url, "faye", "s", tok)
    for client in (a, b):
        resp, objs = client.fetch([c1], [], "stream")
        assert resp.status == 200, resp.body
        assert set(objs) == h.reachable(c1)


def _presign_bound(client: HubClient, pack: bytes) -> dict:  # type: ignore[type-arg]
    sha = hashlib.sha256(pack).hexdigest()
    r = client.post_json("push/presign", {"size": len(pack), "objects": 1, "sha256": sha})
    assert r.status == 200, r.body
    doc = r.json()
    assert doc["headers"]["x-amz-checksum-sha256"] == base64.b64encode(bytes.fromhex(sha)).decode()
    assert f"/packs/pack-{sha}-" in doc["url"]  # straight to a pack key of its own
    return dict(doc)


def test_a_checksum_bound_upload_is_kept_as_the_pack(tmp_path, seaweedfs, postgres) -> None:  # type: ignore[no-untyped-def]
    """push/presign with the bundle's sha256: the store refuses any other body at that URL,
    before and after the commit, so the hub verifies the upload where it lies and keeps it
    as the pack: no copy, no uploads/ key, and the sweep leaves it alone."""
    from fixtures import start_hub

    env = {"MUSEHUB_SWEEP_INTERVAL_S": "1", "MUSEHUB_SWEEP_GRACE_S": "1"}
    hub = start_hub(tmp_path, storage="s3", s3=seaweedfs, database=postgres.new_database(), env=env)
    try:
        tok = hub.create_user("gil")
        hub.create_repo("gil", "s")
        a = HubClient(hub.url, "gil", "s", tok)
        h = History()
        c1 = h.commit({f"f{i}": os.urandom(300) for i in range(10)})
        pack = h.pack_of(h.reachable(c1))
        doc = _presign_bound(a, pack)
        evil = bytes(b ^ 0xFF for b in pack)
        assert request("PUT", doc["url"], body=evil, headers=doc["headers"]).status == 400
        assert request("PUT", doc["url"], body=pack, headers=doc["headers"]).status == 200
        r = a.post_json(
            "push/commit", {"upload_id": doc["upload_id"], "updates": [update(MAIN, None, c1)]}
        )
        assert r.status == 200, r.body
        keys = _keys(seaweedfs, hub.bucket)
        packs = sorted(k for k in keys if "/packs/" in k)
        assert [k.rsplit(".", 1)[1] for k in packs] == ["idx", "pack"], keys
        assert packs[1].split("/")[-1] == doc["url"].split("?")[0].split("/")[-1]
        assert not [k for k in keys if "/uploads/" in k], keys
        s3 = seaweedfs.client()
        # The URL is still valid, for these bytes only.
        assert request("PUT", doc["url"], body=evil, headers=doc["headers"]).status == 400
        assert s3.get_object(Bucket=hub.bucket, Key=packs[1])["Body"].read() == pack
        time.sleep(2.5)  # sweeps with a 1 s grace ran: the kept pack is no garbage
        assert sorted(k for k in _keys(seaweedfs, hub.bucket) if "/packs/" in k) == packs
        resp, objs = a.fetch([c1], [], "stream")
        assert resp.status == 200, resp.body
        assert set(objs) == h.reachable(c1)
        r = a.post_json("push/presign", {"size": 1, "objects": 1, "sha256": "zz"})
        assert (r.status, r.error) == (400, "bad_request")
    finally:
        hub.stop()
    assert not hub.unhandled_errors()


def test_a_bound_upload_whose_bytes_differ_is_refused(pair, seaweedfs) -> None:  # type: ignore[no-untyped-def]
    """The hub checks the digest itself as it reads: bytes of another digest at the key (as a
    store that did not check would leave) are refused before any ref moves, and deleted."""
    one, _ = pair
    tok = one.create_user("hal")
    one.create_repo("hal", "s")
    a = HubClient(one.url, "hal", "s", tok)
    h = History()
    c1 = h.commit({"a": os.urandom(500)})
    c2 = h.commit({"b": os.urandom(500)})
    doc = _presign_bound(a, h.pack_of(h.reachable(c1)))
    key = doc["url"].split("?")[0].split(f"/{one.bucket}/", 1)[1]
    other = h.pack_of(h.reachable(c2))  # a valid pack, of other objects
    seaweedfs.client().put_object(Bucket=one.bucket, Key=key, Body=other)
    r = a.post_json(
        "push/commit", {"upload_id": doc["upload_id"], "updates": [update(MAIN, None, c2)]}
    )
    assert (r.status, r.error) == (400, "bad_pack"), r.body
    assert "checksum" in r.json()["message"]
    assert a.refs().json()["refs"] == {}
    assert not [k for k in _keys(seaweedfs, one.bucket) if "/packs/" in k]


def _multiparts(seaweedfs, bucket: str) -> list[str]:  # type: ignore[no-untyped-def]
    ups = seaweedfs.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return [u["Key"] for u in ups]


def test_a_stream_push_is_stored_while_it_arrives(pair, seaweedfs) -> None:  # type: ignore[no-untyped-def]
    """A stream push of more than one part goes to storage as a multipart upload while it is
    decoded (protocol.streamstore): kept whole and byte for byte, served by a hub with a cold
    cache; a refused one leaves neither an object nor parts."""
    one, two = pair
    tok = one.create_user("ivy")
    one.create_repo("ivy", "s")
    a = HubClient(one.url, "ivy", "s", tok)
    h = History()
    c1 = h.commit({f"stem{i}.wav": os.urandom(1 << 20) for i in range(20)})  # ~20 MiB raw
    pack = h.pack_of(h.reachable(c1))
    assert len(pack) > 2 * (8 << 20)
    # refused after the whole body arrived (and its parts were sent): a stale update
    c0 = h.commit({"x": b"x"})
    r = a.push_stream([update(MAIN, c0, c1)], pack)
    assert (r.status, r.error) == (409, "stale_ref"), r.body
    assert not [k for k in _keys(seaweedfs, one.bucket) if "/packs/" in k]
    assert _multiparts(seaweedfs, one.bucket) == []
    # cut off after two parts' worth: the hub aborts what it sent
    body = push_body([update(MAIN, None, c1)], pack)
    conn = http.client.HTTPConnection("127.0.0.1", one.port, timeout=30)
    conn.putrequest("POST", "/ivy/s/push/stream")
    conn.putheader("Content-Type", "application/x-muse-push")
    conn.putheader("Authorization", f"Bearer {tok}")
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders()
    conn.send(body[: 18 << 20])
    conn.close()
    deadline = time.time() + 20
    while _multiparts(seaweedfs, one.bucket) and time.time() < deadline:
        time.sleep(0.2)
    assert _multiparts(seaweedfs, one.bucket) == []
    assert not [k for k in _keys(seaweedfs, one.bucket) if "/packs/" in k]
    r = a.push_stream([update(MAIN, None, c1)], pack)
    assert r.status == 200, r.body
    packs = sorted(k for k in _keys(seaweedfs, one.bucket) if "/packs/" in k)
    assert [k.rsplit(".", 1)[1] for k in packs] == ["idx", "pack"], packs
    # named before its checksum was known (a finished file's name starts with it)
    assert not packs[1].split("/")[-1].startswith(f"pack-{pack[-32:].hex()}"), packs
    assert seaweedfs.client().get_object(Bucket=one.bucket, Key=packs[1])["Body"].read() == pack
    assert _multiparts(seaweedfs, one.bucket) == []
    b = HubClient(two.url, "ivy", "s", tok)
    resp, objs = b.fetch([c1], [], "stream")
    assert resp.status == 200, resp.body
    assert set(objs) == h.reachable(c1)
    assert not one.unhandled_errors() and not two.unhandled_errors()


def test_the_sweep_aborts_the_parts_a_dead_push_left(tmp_path, seaweedfs, postgres) -> None:  # type: ignore[no-untyped-def]
    from fixtures import start_hub

    bucket = seaweedfs.new_bucket()
    s3 = seaweedfs.client()
    s3.create_bucket(Bucket=bucket)
    key = "repos/1/packs/pack-dead.pack"
    up = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=1, Body=os.urandom(1000))
    assert _multiparts(seaweedfs, bucket) == [key]
    env = {"MUSEHUB_SWEEP_INTERVAL_S": "1", "MUSEHUB_SWEEP_GRACE_S": "1"}
    time.sleep(1.1)
    hub = start_hub(
        tmp_path,
        storage="s3",
        s3=seaweedfs,
        bucket=bucket,
        database=postgres.new_database(),
        env=env,
    )
    try:
        deadline = time.time() + 20
        while _multiparts(seaweedfs, bucket) and time.time() < deadline:
            time.sleep(0.2)
        assert _multiparts(seaweedfs, bucket) == []
    finally:
        hub.stop()
