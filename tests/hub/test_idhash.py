"""A pushed pack's ids re-hashed by a helper process (musehub.protocol.idhash), against a real
`musehub serve`: a pack with an object under a false id is refused whichever way it is hashed,
a good one lands, and the helper is a process of the hub's own."""

from __future__ import annotations

import io
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest
from proto_util import HubClient, update

from muse.core import objects as O
from muse.core.objects import Commit, Signature
from muse.core.pack.codec import PackWriter
from musehub.protocol.idhash import MIN_BYTES, IdHasher

MAIN = "refs/heads/main"
SIG = Signature("T", "t@example.org", 1704067200, 0)


def _push_pack(lie: bool, seed: int) -> tuple[bytes, bytes]:
    """(pack, commit id): a commit of 24 files of 64 KiB (over MIN_BYTES); with ``lie`` one
    of them is sent under an id its body does not hash to (the tree names that id)."""
    rng = random.Random(seed)
    bodies = [rng.randbytes(64 << 10) for _ in range(24)]
    ids = [O.object_id(O.BLOB, b) for b in bodies]
    if lie:
        ids[5] = bytes(reversed(ids[5]))
    tree = O.encode_tree([O.TreeEntry(f"f{i:02d}", O.MODE_FILE, oid) for i, oid in enumerate(ids)])
    commit = Commit(O.object_id(O.TREE, tree), (), SIG, SIG, "c").encode()
    buf = io.BytesIO()
    w = PackWriter(buf)
    w.add(O.COMMIT, commit)
    w.add(O.TREE, tree)
    for body, oid in zip(bodies, ids, strict=True):
        w.add(O.BLOB, body, oid)
    w.finish()
    return buf.getvalue(), O.object_id(O.COMMIT, commit)


def _descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every process below ``pid``."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            kids.setdefault(int(stat.rpartition(")")[2].split()[1]), []).append(int(entry))
    out: list[tuple[int, str]] = []
    todo = [pid]
    while todo:
        for child in kids.get(todo.pop(), []):
            todo.append(child)
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            out.append((child, cmdline.replace(b"\0", b" ").decode()))
    return out


@pytest.mark.parametrize("helpers", ["1", "0"])
def test_a_false_id_is_refused_and_a_good_pack_lands(
    tmp_path: Path, start_hub: Any, helpers: str
) -> None:
    hub = start_hub(tmp_path, env={"MUSEHUB_HASH_PROCESSES": helpers})
    token = hub.create_user("alice")
    hub.create_repo("alice", "song")
    client = HubClient(hub.url, "alice", "song", token)
    pack, tip = _push_pack(lie=True, seed=1)
    assert len(pack) >= MIN_BYTES
    r = client.push_presign([update(MAIN, None, tip)], pack)
    assert r.status == 400 and r.error == "bad_pack", r.body
    assert b"does not hash to its id" in r.body
    assert client.refs().json()["refs"] == {}
    pack, tip = _push_pack(lie=False, seed=2)
    r = client.push_presign([update(MAIN, None, tip)], pack)
    assert r.status == 200, r.body
    assert client.refs().json()["refs"] == {MAIN: tip.hex()}
    helpers_seen = [pid for pid, c in _descendants(hub.proc.pid) if "protocol.idhash" in c]
    assert len(helpers_seen) == int(helpers)  # one, kept for the next push
    hub.stop()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in helpers_seen) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in helpers_seen)  # nothing outlives the hub


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_small_packs_and_busy_helpers_hash_in_the_request(tmp_path: Path) -> None:
    small = tmp_path / "small.pack"
    small.write_bytes(b"x" * 100)
    big = tmp_path / "big.pack"
    big.write_bytes(b"x" * MIN_BYTES)
    assert IdHasher(0).submit(str(big), None) is None
    h = IdHasher(1)
    try:
        assert h.submit(str(small), None) is None
        first = h.submit(str(big), None)
        assert first is not None
        assert h.submit(str(big), None) is None  # one helper, busy: the caller hashes
        verdict = first.result()
        assert verdict is not None and "pack" in verdict  # not a pack: its verdict says why
        again = h.submit(str(big), None)  # the same helper, free again
        assert again is not None
        again.cancel()  # not wanted: the helper is killed, a new one comes next time
        third = h.submit(str(big), None)
        assert third is not None and third.result() == verdict
    finally:
        h.close()
