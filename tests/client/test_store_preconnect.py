"""The object store's connection is opened while the hub prepares a presigned transfer.

A hub whose presigned URLs point at object storage names that origin on its refs answer
(``Muse-Store-Origin``, docs/wire.md); the client opens the store's connection on a thread
while its next request to the hub is in flight, so a presigned push, clone or fetch does not
wait for the store's TCP and TLS handshakes after the hub answered. Checked against a real
hub on PostgreSQL + SeaweedFS, and against a hub on local storage (which names no store: its
presigned URLs are its own), and on the transport alone against a real HTTP server.
"""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fixtures import Hub, QuietHandler

from muse.client.transport import Transport, WireError, origin_of
from muse.wire.messages import STORE_ORIGIN_HEADER

from .conftest import Muse, tree_of, write_files


def _refs_headers(hub: Hub, token: str, owner: str, slug: str) -> dict[str, str]:
    req = urllib.request.Request(f"{hub.url}/{owner}/{slug}/refs")
    req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=30) as r:
        return {k.lower(): v for k, v in r.headers.items()}


def _seed(muse: Muse, root: Path) -> None:
    muse.run("init", str(root))
    write_files(root, {f"stems/s{i}.txt": f"take {i}\n" * (50 + i) for i in range(12)})
    muse.run("commit", "-m", "first", cwd=root)


def _verbs(hub: Hub, muse: Muse, tmp_path: Path, owner: str, token: str) -> list[dict[str, Any]]:
    """push, clone and fetch on the presign path; their --json summaries."""
    muse.login(hub.url, token)
    src = tmp_path / "src"
    _seed(muse, src)
    url = hub.repo_url(owner, "song")
    muse.run("remote", "add", "origin", url, cwd=src)
    outs = [muse.json("push", "--path", "presign", "-u", "origin", "main", cwd=src)]
    dst = tmp_path / "dst"
    outs.append(muse.json("clone", "--path", "presign", url, str(dst)))
    assert tree_of(dst) == tree_of(src)
    write_files(src, {"notes.txt": "louder\n"})
    muse.run("commit", "-m", "second", cwd=src)
    muse.run("push", "--path", "presign", cwd=src)
    outs.append(muse.json("fetch", "--path", "presign", cwd=dst))
    assert outs[-1]["objects"] > 0
    muse.run("merge", "origin/main", cwd=dst)
    assert tree_of(dst) == tree_of(src)
    return outs


def test_a_hub_on_object_storage_names_it_and_presigned_verbs_open_it_early(
    s3_hub: Hub, seaweedfs: Any, muse: Muse, tmp_path: Path
) -> None:
    token = s3_hub.create_user("alice")
    s3_hub.create_repo("alice", "song")
    headers = _refs_headers(s3_hub, token, "alice", "song")
    assert headers.get(STORE_ORIGIN_HEADER.lower()) == origin_of(seaweedfs.endpoint)
    for out in _verbs(s3_hub, muse, tmp_path, "alice", token):
        assert out["path"] == "presign"
        # the hub's connection and the store's, each opened once for the whole verb
        assert out["connections"] == 2, out
        # plain http: one TCP round trip per connection at most; the store's may have
        # overlapped the request to the hub entirely
        assert out["requests"] + 1 <= out["round_trips"] <= out["requests"] + 2, out
    # Both pushes sent their bundle's sha256: bound to it, each upload became a pack where it
    # was PUT (no uploads/ key left behind, no copy: docs/wire.md push/presign).
    listed = seaweedfs.client().list_objects_v2(Bucket=s3_hub.bucket).get("Contents", [])
    keys = [o["Key"] for o in listed]
    assert not [k for k in keys if "/uploads/" in k], keys
    assert len([k for k in keys if k.endswith(".pack") and "/packs/pack-" in k]) == 2, keys


def test_a_hub_that_serves_its_own_presigned_urls_names_no_store(
    hub: Hub, muse: Muse, tmp_path: Path
) -> None:
    token = hub.create_user("bob")
    hub.create_repo("bob", "song")
    assert STORE_ORIGIN_HEADER.lower() not in _refs_headers(hub, token, "bob", "song")
    for out in _verbs(hub, muse, tmp_path, "bob", token):
        assert out["connections"] == 1, out  # presigned URLs on the hub's own connection


# ------------------------------------------------------------------ the transport alone


class _Handler(QuietHandler):
    peers: list[Any] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        type(self).peers.append(self.client_address)
        data = json.dumps({"ok": True}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    _Handler.peers = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_preconnected_connection_carries_the_requests(server: str) -> None:
    t = Transport(retries=0)
    t.preconnect(server + "/anything")
    t.preconnect(server + "/again")  # already opening: nothing more
    ((thread, _),) = t._opening.values()
    thread.join(30)  # its handshake is over before the first request
    for path in ("/a", "/b"):
        r = t.request("GET", server + path, auth=False, presigned=True)
        assert r.json() == {"ok": True}
    assert len(set(_Handler.peers)) == 1 and len(_Handler.peers) == 2
    assert t.connections == 1
    assert t.round_trips == 2  # the handshake was not waited for: one per request
    t.close()


def test_a_preconnect_that_fails_leaves_the_error_to_the_request() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/bundle"
    t = Transport(retries=0)
    t.preconnect(url)
    with pytest.raises(WireError) as e:
        t.request("GET", url, auth=False, presigned=True)
    assert e.value.code == "network" and "connection refused" in str(e.value), e.value
    assert t.connections == 0
    t.preconnect("ftp://example.invalid/x")  # not http(s): ignored
    assert not t._opening
    t.close()


def test_a_preconnect_still_connecting_does_not_hold_the_verb_at_its_end() -> None:
    """A store that drops the handshake (here: a listener whose accept queue is full, so
    the kernel drops further SYNs) must not keep the command from ending."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(0)
        port = srv.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5):  # fills the queue
            t = Transport(retries=0, timeout=5)
            t.preconnect(f"http://127.0.0.1:{port}/bundle")
            ((thread, _),) = t._opening.values()
            t.close()  # returns without waiting for the connect
            assert thread.is_alive() and not t._opening and not t._conns
            thread.join(30)  # its connect timed out; it left nothing open
