"""verify.closure_pack: a pack is sent as it is only when it is exactly the history."""

from __future__ import annotations

from pathlib import Path

from wire_helpers import MemStore

from muse.core import objects as O
from muse.core.pack.file import PackFile
from muse.core.pack.write import write_pack_file
from muse.wire.negotiate import objects_to_send
from muse.wire.verify import closure_pack


def _history(n: int = 12) -> tuple[MemStore, list[bytes]]:
    s = MemStore()
    files: dict[str, bytes] = {}
    commits: list[bytes] = []
    for k in range(n):
        files[f"d{k % 3}/sub{k % 2}/f{k}"] = b"%d" % k
        files[f"top{k % 2}"] = b"t%d" % k
        commits.append(s.commit(dict(files), commits[-1:], 100 + k))
    return s, commits


def _pack(tmp_path: Path, name: str, objects: list[tuple[int, bytes]]) -> PackFile:
    d = tmp_path / name
    d.mkdir()
    return write_pack_file(str(d), objects)


def test_exact_history_is_a_closure(tmp_path: Path) -> None:
    s, commits = _history()
    pf = _pack(tmp_path, "all", list(s.objects.values()))
    assert closure_pack(pf, [commits[-1]])
    # ... and agrees with the walk.
    sent = {oid for _, oid in objects_to_send(s, [commits[-1]], [])}
    assert sent == set(pf.ids())


def test_more_or_less_than_the_history_is_not(tmp_path: Path) -> None:
    s, commits = _history()
    tip = commits[-1]
    everything = list(s.objects.values())
    # An older want: the newer commits, trees and blobs are not reachable from it.
    pf = _pack(tmp_path, "all", everything)
    assert not closure_pack(pf, [commits[-2]])
    # An unreachable extra object of any kind.
    extra_blob = (O.BLOB, b"secret")
    assert not closure_pack(_pack(tmp_path, "xb", [*everything, extra_blob]), [tip])
    extra_tree = (O.TREE, O.encode_tree([("x", O.MODE_FILE, O.object_id(O.BLOB, b"0"))]))
    assert not closure_pack(_pack(tmp_path, "xt", [*everything, extra_tree]), [tip])
    # A missing object of any kind.
    for i, (oid, (kind, _)) in enumerate(s.objects.items()):
        if oid == tip:
            continue
        rest = [v for k, v in s.objects.items() if k != oid]
        assert not closure_pack(_pack(tmp_path, f"m{i}", rest), [tip]), O.KIND_NAMES[kind]
    # Two tips, only one wanted: the other branch's objects must not be sent.
    s.commit({"other": b"branch"}, [commits[3]], 999)
    pf2 = _pack(tmp_path, "two", list(s.objects.values()))
    assert not closure_pack(pf2, [tip])
    assert not closure_pack(pf2, [])
