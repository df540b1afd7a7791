"""core/pack/write: a pack at rest whose ids are re-hashed elsewhere (verify_ids, in another
process on the hub) is accepted only when both passes passed, and hashed in the caller's own
pass when the helper fails."""

from __future__ import annotations

import os
import random
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from muse.core import objects as O
from muse.core.pack.codec import PackError, PackWriter
from muse.core.pack.write import receive_pack_file, verify_ids


def _pack(path: Path, lie: bool) -> str:
    """Blobs of 64 KiB (raw blocks) and a small text one; with ``lie`` one blob is written
    under an id it does not hash to, with a valid trailer, so only re-hashing finds it."""
    rng = random.Random(11)
    with open(path, "wb") as f:
        w = PackWriter(f)
        for i in range(20):
            body = rng.randbytes(64 << 10)
            w.add(O.BLOB, body, bytes(32 - 1) + b"\1" if lie and i == 7 else None)
        w.add(O.BLOB, b"text\n" * 100)
        w.finish()
    return str(path)


def _elsewhere(ex: ThreadPoolExecutor):  # type: ignore[no-untyped-def]
    return lambda link: ex.submit(verify_ids, link, None)


def test_verify_ids_finds_the_object_that_does_not_hash(tmp_path: Path) -> None:
    assert verify_ids(_pack(tmp_path / "good.pack", lie=False)) is None
    problem = verify_ids(_pack(tmp_path / "bad.pack", lie=True))
    assert problem is not None and "does not hash to its id" in problem
    assert "cannot read" in (verify_ids(str(tmp_path / "none.pack")) or "")


@pytest.mark.parametrize("how", ["inline", "elsewhere", "helper dies", "not now"])
def test_a_lying_pack_is_refused_however_its_ids_are_hashed(tmp_path: Path, how: str) -> None:
    good = _pack(tmp_path / "good.pack", lie=False)
    bad = _pack(tmp_path / "bad.pack", lie=True)
    dest = tmp_path / "dest"
    dest.mkdir()
    with ThreadPoolExecutor(1) as ex:
        if how == "inline":
            hash_ids = None
        elif how == "elsewhere":
            hash_ids = _elsewhere(ex)
        elif how == "not now":
            hash_ids = lambda _link: None  # noqa: E731
        else:

            def hash_ids(_link: str) -> Future[str | None]:
                died: Future[str | None] = Future()
                died.set_exception(RuntimeError("helper killed"))
                return died

        with pytest.raises(PackError, match="does not hash"):
            receive_pack_file(bad, str(dest), hash_ids=hash_ids)
        assert [n for n in os.listdir(dest) if not n.startswith("pack-")] == []  # no leftover
        pf = receive_pack_file(good, str(dest), hash_ids=hash_ids)
    assert pf is not None and pf.count == 21
    name = os.path.basename(pf.path)[: -len(".pack")]
    assert sorted(os.listdir(dest)) == [name + ".idx", name + ".pack"]
