"""Many pushers racing on one branch, on SQLite and on PostgreSQL: no update is ever lost.

Each pusher loops: read the branch, commit on top of it, push with that id as the expected old
value; a 409 means someone else won the race, so it reads again and retries. At the end every
commit the hub accepted must be in the branch's history, and the history must be one chain.
"""

from __future__ import annotations

import threading

import pytest
from proto_util import History, HubClient, update

from muse.core import objects as O

MAIN = "refs/heads/main"
PUSHERS = 8
PUSHES_EACH = 4


def race(client: HubClient, others: tuple[HubClient, ...] = ()) -> tuple[list[bytes], int]:
    """Pusher n talks to ``(client, *others)[n % k]``: several hubs, one repository."""
    clients = (client, *others)
    h = History()
    lock = threading.Lock()
    root = h.commit({"README": b"start"})
    r = client.push_stream([update(MAIN, None, root)], h.pack_of(h.reachable(root)))
    assert r.status == 200, r.body
    accepted: list[bytes] = [root]
    rejected = 0
    errors: list[str] = []
    start = threading.Barrier(PUSHERS)

    def pusher(n: int) -> None:
        nonlocal rejected
        mine = clients[n % len(clients)]
        start.wait()
        done = 0
        attempts = 0
        while done < PUSHES_EACH and attempts < 200:
            attempts += 1
            refs = mine.refs()
            tip = bytes.fromhex(refs.json()["refs"][MAIN])
            with lock:
                cid = h.commit({f"p{n}-{done}": f"{n}/{done}/{attempts}".encode()}, tip)
                tree, _ = O.commit_refs(h.objects[cid][1])
                blob = O.object_id(O.BLOB, f"{n}/{done}/{attempts}".encode())
                pack = h.pack_of({cid, tree, blob})
            r = mine.push_stream([update(MAIN, tip, cid)], pack)
            if r.status == 200:
                with lock:
                    accepted.append(cid)
                done += 1
            elif r.status == 409 and r.error == "stale_ref":
                with lock:
                    rejected += 1
            else:
                errors.append(f"{r.status} {r.body[:200]!r}")
                return

    threads = [threading.Thread(target=pusher, args=(n,)) for n in range(PUSHERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(accepted) == 1 + PUSHERS * PUSHES_EACH

    # The final history is one chain holding every accepted commit.
    tip = bytes.fromhex(client.refs().json()["refs"][MAIN])
    r, objs = client.fetch([tip], [], "stream")
    assert r.status == 200
    chain = []
    cur: bytes | None = tip
    while cur is not None:
        chain.append(cur)
        _, parents = O.commit_refs(objs[cur][1])
        cur = parents[0] if parents else None
    assert set(chain) == set(accepted)
    assert len(chain) == len(accepted)
    return accepted, rejected


def test_concurrent_pushers_sqlite(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two worker processes (uvicorn --workers 2) on one SQLite file and one pack cache."""
    from fixtures import start_hub

    hub = start_hub(tmp_path, workers=2)
    try:
        tok = hub.create_user("racer")
        hub.create_repo("racer", "race")
        _, rejected = race(HubClient(hub.url, "racer", "race", tok))
        assert rejected > 0  # the race really happened
    finally:
        hub.stop()


def test_concurrent_pushers_postgres(tmp_path, postgres) -> None:  # type: ignore[no-untyped-def]
    from fixtures import start_hub

    hub = start_hub(tmp_path, database=postgres.new_database())
    try:
        tok = hub.create_user("racer")
        hub.create_repo("racer", "race")
        _, rejected = race(HubClient(hub.url, "racer", "race", tok))
        assert rejected > 0
    finally:
        hub.stop()


@pytest.mark.parametrize("path", ["stream", "presign"])
def test_racing_identical_pushes(tmp_path, path: str) -> None:  # type: ignore[no-untyped-def]
    """The same push sent many times at once (a client retrying): every one succeeds."""
    from fixtures import start_hub

    hub = start_hub(tmp_path)
    try:
        tok = hub.create_user("twin")
        hub.create_repo("twin", "t")
        client = HubClient(hub.url, "twin", "t", tok)
        h = History()
        c1 = h.commit({"a": b"1", "b/c": b"2"})
        pack = h.pack_of(h.reachable(c1))
        push = client.push_stream if path == "stream" else client.push_presign
        results: list[int] = []

        def go() -> None:
            results.append(push([update(MAIN, None, c1)], pack).status)

        threads = [threading.Thread(target=go) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(s == 200 for s in results), results
        assert client.refs().json()["refs"] == {MAIN: c1.hex()}
        r, objs = client.fetch([c1], [], "presign")
        assert set(objs) == h.reachable(c1)
    finally:
        hub.stop()


def test_concurrent_pushers_on_three_hubs(tmp_path, postgres, seaweedfs) -> None:  # type: ignore[no-untyped-def]
    """Scale-out: three hub processes on one PostgreSQL database and one SeaweedFS bucket,
    pushers spread over them, racing on one branch: no lost update, no 500, one chain."""
    from fixtures import start_hub

    first = start_hub(tmp_path, storage="s3", s3=seaweedfs, database=postgres.new_database())
    hubs = [first]
    try:
        hubs += [start_hub(tmp_path, share=first) for _ in range(2)]
        tok = first.create_user("racer")
        first.create_repo("racer", "race")
        clients = [HubClient(h.url, "racer", "race", tok) for h in hubs]
        _, rejected = race(clients[0], tuple(clients[1:]))
        assert rejected > 0
    finally:
        for h in reversed(hubs):
            h.stop()
