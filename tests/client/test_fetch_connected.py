"""client/fetch: what a received pack's trees and commits reference is collected while it is
decoded, and a pack that leaves a reference unsatisfied is refused before any ref moves."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from muse.client import fetch
from muse.client.progress import Progress
from muse.core.objects import (
    BLOB,
    COMMIT,
    MODE_FILE,
    TREE,
    Commit,
    Signature,
    encode_tree,
    object_id,
)
from muse.core.pack.codec import write_pack
from muse.core.repo import Repository
from muse.errors import MuseError

SIG = Signature("A", "a@example.org", 1704067200, 0)


class Body(io.BytesIO):
    """A response body as fetch reads one."""

    def header(self, name: str) -> str | None:
        return None

    @property
    def bytes_read(self) -> int:
        return self.tell()


def _history(drop_blob: bool) -> tuple[bytes, bytes]:
    """A pack of one commit, its tree and the tree's blob (left out if drop_blob)."""
    blob = b"la la\n"
    tree = encode_tree([("verse.txt", MODE_FILE, object_id(BLOB, blob))])
    commit = Commit(object_id(TREE, tree), (), SIG, SIG, "first").encode()
    objects = [(COMMIT, commit), (TREE, tree)] + ([] if drop_blob else [(BLOB, blob)])
    out = io.BytesIO()
    write_pack(out, objects)
    return out.getvalue(), object_id(COMMIT, commit)


@pytest.mark.parametrize("drop_blob", [False, True])
def test_references_are_collected_while_receiving(tmp_path: Path, drop_blob: bool) -> None:
    repo = Repository.init(str(tmp_path / "r"), initial_branch="main")
    data, tip = _history(drop_blob)
    got = fetch.Transfer()
    pf = fetch._receive(repo, Body(data), fetch.pack_limits(repo), Progress(quiet=True), got)  # type: ignore[arg-type]
    assert got.packs == [pf] and pf.path in got.references
    if drop_blob:
        with pytest.raises(MuseError, match="incomplete history"):
            fetch.check_connected(repo, got, [tip])
    else:
        fetch.check_connected(repo, got, [tip])
