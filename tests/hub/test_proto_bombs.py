"""Hostile packs pushed to a real hub: zstd bombs and duplicate records cost it nothing.

Each pack here is a few KB on the wire that would make a naive receiver decompress GiBs or
index millions of records (issue 11, "Decompression"). The hub must refuse it with a 4xx
code, store nothing, and its worker's peak memory must not grow by more than a block.
"""

from __future__ import annotations

import hashlib
import itertools

import pytest
from benchlib.proc import peak_rss
from proto_util import History, HubClient, update

from muse.core import objects as O
from muse.core.pack import codec as P

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
    slug = f"bomb{next(_slugs)}"
    hub.create_repo("alice", slug)
    return HubClient(hub.url, "alice", slug, hub.alice)


def _pack(blocks: list[bytes], count: int) -> bytes:
    body = P.HEADER + b"".join(blocks) + bytes([0]) + count.to_bytes(8, "big")
    return body + hashlib.sha256(body).digest()


def _zstd(records: bytes, count: int, ulen: int | None = None) -> bytes:
    frame = P._compressor(1).compress(records)
    return P.BLOCK_HEADER.pack(P.CODEC_ZSTD, count, ulen or len(records), len(frame)) + frame


def _record(body: bytes) -> bytes:
    return P.RECORD_HEADER.pack(O.BLOB, O.object_id(O.BLOB, body), len(body)) + body


def _giant_block(size: int) -> bytes:
    """One zstd block holding one blob of ``size`` zero bytes, compressed as a stream."""
    h = hashlib.sha256(b"blob %d\0" % size)
    zeros = b"\x00" * (1 << 20)
    for _ in range(size >> 20):
        h.update(zeros)
    ulen = P.RECORD_HEADER_LEN + size
    cobj = P._compressor(1).compressobj(size=ulen)
    parts = [cobj.compress(P.RECORD_HEADER.pack(O.BLOB, h.digest(), size))]
    parts += [cobj.compress(zeros) for _ in range(size >> 20)]
    frame = b"".join([*parts, cobj.flush()])
    return P.BLOCK_HEADER.pack(P.CODEC_ZSTD, 1, ulen, len(frame)) + frame


def _bomb_packs() -> dict[str, tuple[bytes, int]]:
    """name -> (pack, the HTTP status family expected)."""
    giant = _giant_block(1 << 30)  # one real zstd frame of a 1 GiB blob of zeros (~32 KB)
    many = []
    for i in range(40):  # 40 x 16 MiB of zeros in ~20 KB
        body = i.to_bytes(4, "big") + b"\x00" * (P.MAX_ZSTD_BLOCK - 4 - P.RECORD_HEADER_LEN)
        many.append(_zstd(_record(body), 1))
    dup = _record(b"x")
    n = 400_000
    return {
        "one block of 1 GiB": (_pack([giant], 1), 400),
        "40 blocks of 16 MiB of zeros": (_pack(many, 40), 413),
        "400,000 copies of one record": (_pack([_zstd(dup * n, n)], n), 400),
    }


def test_hostile_packs_are_refused_cheaply(hub, repo: HubClient) -> None:  # type: ignore[no-untyped-def]
    h = History()
    c1 = h.commit({"a.txt": b"hello\n"})
    packs = _bomb_packs()
    before = peak_rss(hub.proc.pid)
    for name, (pack, status) in packs.items():
        assert len(pack) < 64 << 10, name
        r = repo.push_stream([update(MAIN, None, c1)], pack)
        assert r.status == status, (name, r.status, r.body)
        assert r.error in ("bad_pack", "payload_too_large"), (name, r.body)
    grown = peak_rss(hub.proc.pid) - before
    # One decoded block (16 MiB) and its bookkeeping, not the GiBs the packs describe.
    assert grown < 96 << 20, f"hub peak RSS grew by {grown >> 20} MiB"
    assert repo.refs().json()["refs"] == {}
    # And the repository still takes a good push.
    r = repo.push_stream([update(MAIN, None, c1)], h.pack_of(h.reachable(c1)))
    assert r.status == 200, r.body
