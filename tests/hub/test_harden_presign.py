"""Local presigned PUT URLs bind their size and are good for one upload (issue 11).

Against a real hub (SQLite + local storage, the backend that serves its own presigned URLs):
a body larger or smaller than the presigned size is refused with its code and stores nothing,
whether it declares a Content-Length or streams chunked; a changed or missing ``n`` breaks the
signature; an upload that landed (or is in progress) makes the URL unusable, across hub
processes sharing the data directory; a failed upload gives the URL back.
"""

from __future__ import annotations

import http.client
import itertools
import os
import re
import socket
import time
import urllib.parse
from pathlib import Path
from typing import Any

from fixtures import Hub
from proto_util import History, HubClient, Resp, request, update

MAIN = "refs/heads/main"
_ids = itertools.count()


def presign(hub: Hub, size: int) -> tuple[HubClient, dict[str, Any]]:
    """A new user and repository, and a presigned upload of ``size`` bytes into it."""
    user = f"u{next(_ids)}"
    token = hub.create_user(user)
    hub.create_repo(user, "r")
    client = HubClient(hub.url, user, "r", token)
    r = client.post_json("push/presign", {"size": size, "objects": 1})
    assert r.status == 200, r.body
    return client, r.json()


def put_chunked(url: str, body: bytes) -> Resp:
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.putrequest("PUT", f"{u.path}?{u.query}")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for i in range(0, len(body), 65536):
            piece = body[i : i + 65536]
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.send(b"0\r\n\r\n")
        r = conn.getresponse()
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


def uploads(hub: Hub) -> list[Path]:
    return list((hub.data_dir / "objects" / "repos").glob("*/uploads/*"))


def test_the_presigned_size_is_bound(hub: Hub) -> None:
    _, ticket = presign(hub, 10)
    url = ticket["url"]
    assert "&n=10&" in url
    mib = os.urandom(1 << 20)
    for r in (request("PUT", url, mib), put_chunked(url, mib)):
        assert (r.status, r.error) == (413, "payload_too_large"), r.body
    for r in (request("PUT", url, b"12345"), put_chunked(url, b"12345")):
        assert (r.status, r.error) == (400, "size_mismatch"), r.body
    assert uploads(hub) == []
    assert os.listdir(hub.data_dir / "objects" / ".tmp") == []
    # n is signed: neither a larger nor no size passes with the same signature
    for forged in (url.replace("&n=10&", "&n=1048576&"), url.replace("&n=10&", "&")):
        r = request("PUT", forged, mib)
        assert (r.status, r.error) == (403, "bad_signature"), r.body
    # the refusals gave the URL back: the right size is accepted, once
    assert request("PUT", url, b"0123456789").status == 200
    (stored,) = uploads(hub)
    assert stored.read_bytes() == b"0123456789"
    r = request("PUT", url, b"9876543210")
    assert (r.status, r.error) == (403, "url_used"), r.body
    assert stored.read_bytes() == b"0123456789"


def test_a_committed_upload_url_cannot_be_used_again(hub: Hub) -> None:
    h = History()
    tip = h.commit({"a": b"one", "b": os.urandom(500)})
    pack = h.pack_of(h.reachable(tip))
    client, ticket = presign(hub, len(pack))
    assert request("PUT", ticket["url"], pack).status == 200
    r = client.post_json(
        "push/commit", {"upload_id": ticket["upload_id"], "updates": [update(MAIN, None, tip)]}
    )
    assert r.status == 200, r.body
    assert uploads(hub) == []  # the upload was consumed
    r = request("PUT", ticket["url"], pack)
    assert (r.status, r.error) == (403, "url_used"), r.body
    assert uploads(hub) == []  # and nothing was written back under its key
    assert client.refs().json()["refs"] == {MAIN: tip.hex()}


def test_an_upload_in_progress_holds_the_url(hub: Hub) -> None:
    _, ticket = presign(hub, 1000)
    u = urllib.parse.urlsplit(ticket["url"])
    claims = hub.data_dir / "objects" / ".claims"
    sock = socket.create_connection((u.hostname, u.port), timeout=30)
    try:
        head = f"PUT {u.path}?{u.query} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
        sock.sendall(head.encode() + b"x" * 400)
        deadline = time.monotonic() + 30
        while not (claims.is_dir() and os.listdir(claims)):  # the first PUT took the URL
            assert time.monotonic() < deadline, "the first PUT never claimed its URL"
            time.sleep(0.02)
        r = request("PUT", ticket["url"], b"y" * 1000)
        assert (r.status, r.error) == (403, "url_used"), r.body
        sock.sendall(b"x" * 600)
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        assert resp.status == 200
    finally:
        sock.close()
    (stored,) = uploads(hub)
    assert stored.read_bytes() == b"x" * 1000


def test_one_use_across_hub_processes(tmp_path: Path, start_hub: Any) -> None:
    one = start_hub(tmp_path)
    two = start_hub(tmp_path, share=one)
    _, ticket = presign(one, 4)
    via_two = ticket["url"].replace(one.url, two.url)
    assert request("PUT", via_two, b"abcd").status == 200
    r = request("PUT", ticket["url"], b"abcd")
    assert (r.status, r.error) == (403, "url_used"), r.body


def test_expired_claims_are_removed(hub: Hub) -> None:
    """Claims do not pile up: one whose URL expired goes at the next claim (a minute apart
    at most per process; the hub here has just started, so the first claim sweeps)."""
    claims = hub.data_dir / "objects" / ".claims"
    claims.mkdir(mode=0o700, exist_ok=True)
    old = claims / f"{int(time.time()) - 10}-{'0' * 64}"
    old.touch()
    _, ticket = presign(hub, 1)
    assert request("PUT", ticket["url"], b"z").status == 200
    assert not old.exists()
    assert len(os.listdir(claims)) == 1
    assert re.fullmatch(r"\d+-[0-9a-f]{64}", os.listdir(claims)[0])


def test_s3_presigned_put_binds_the_size_too(s3_hub: Hub) -> None:
    """S3's URLs sign Content-Length: the store itself refuses another size."""
    h = History()
    tip = h.commit({"a": os.urandom(300)})
    pack = h.pack_of(h.reachable(tip))
    client, ticket = presign(s3_hub, len(pack))
    for body in (pack + os.urandom(1 << 20), pack[:-1]):
        assert request("PUT", ticket["url"], body, ticket["headers"]).status == 403
    assert request("PUT", ticket["url"], pack, ticket["headers"]).status == 200
    r = client.post_json(
        "push/commit", {"upload_id": ticket["upload_id"], "updates": [update(MAIN, None, tip)]}
    )
    assert r.status == 200, r.body
