"""The closure record (docs/format.md 2.1.1): a pack proven to be exactly the history of some
commits says so beside it, so a first push sends it as it is without proving it again.

Written only after a proof, trusted by the push, checked by ``muse fsck``, removed with its
pack by a repack, never written for an import added to an existing history.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures import Hub

from muse.client import closure as client_closure
from muse.core.pack import closure
from muse.core.repo import Repository
from muse.wire import verify

from .conftest import Muse, tree_of


def _stream(commits: int, start: int = 0, base: str | None = None) -> str:
    """A fast-export stream of ``commits`` commits on main, each adding one file; the first
    one's parent is ``base`` (a commit-ish the importing repository knows) when given."""
    out = []
    prev = base
    for k in range(start, start + commits):
        body, msg = f"take {k}\n" * (k + 1), f"take {k}\n"
        out += [f"blob\nmark :{2 * k + 1}\ndata {len(body)}\n{body}"]
        out += [
            "commit refs/heads/main",
            f"mark :{2 * k + 2}",
            f"author Ada <ada@example.org> {1_700_000_000 + k} +0000",
            f"committer Ada <ada@example.org> {1_700_000_000 + k} +0000",
            f"data {len(msg)}\n{msg}",
        ]
        if prev is not None:
            out.append(f"from {prev}")
        out.append(f"M 100644 :{2 * k + 1} stems/s{k}.txt\n")
        prev = f":{2 * k + 2}"
    return "\n".join(out) + "\n"


def _imported(muse: Muse, tmp_path: Path, commits: int = 6) -> tuple[Path, Repository]:
    src = tmp_path / "src"
    muse.run("init", str(src))
    stream = tmp_path / "history.fe"
    stream.write_text(_stream(commits))
    muse.run("fast-import", str(stream), cwd=src)
    muse.run("checkout", "--force", "main", cwd=src)
    return src, Repository(str(src))


def _only_pack(repo: Repository) -> str:
    packs = repo.store.packs
    assert packs is not None and len(packs.packs) == 1
    return str(packs.packs[0].path)


def test_an_import_records_its_pack_and_the_first_push_sends_it(
    hub: Hub, muse: Muse, tmp_path: Path
) -> None:
    src, repo = _imported(muse, tmp_path)
    tip = repo.refs.read("refs/heads/main")
    assert tip is not None
    pack = _only_pack(repo)
    text = Path(closure.record_path(pack)).read_text()
    assert text == f"muse closure 1\n{tip.hex()}\n"
    assert "ok" in muse.run("fsck", cwd=src).stdout.lower()

    token = hub.create_user("alice")
    hub.create_repo("alice", "song")
    muse.login(hub.url, token)
    url = hub.repo_url("alice", "song")
    muse.run("remote", "add", "origin", url, cwd=src)
    out = muse.json("push", "-u", "origin", "main", cwd=src)
    assert out["objects"] == 24  # 6 commits, 12 trees (root, stems), 6 blobs: the pack
    dst = tmp_path / "dst"
    muse.run("clone", url, str(dst))
    assert tree_of(dst) == tree_of(src)
    muse.run("fsck", cwd=dst)


def test_the_push_trusts_a_record_and_proves_what_is_not_recorded(
    muse: Muse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _src, repo = _imported(muse, tmp_path)
    tip = repo.refs.read("refs/heads/main")
    assert tip is not None
    pack = _only_pack(repo)

    def no_proof(*_a: object) -> bool:
        raise AssertionError("proved although recorded")

    monkeypatch.setattr(verify, "closure_pack", no_proof)
    found = client_closure.closure_pack_path(repo, [tip])
    assert found is not None and found[0] == pack and len(found[1]) == 24
    monkeypatch.undo()

    # Without the record the proof runs, and succeeds, and is recorded again.
    Path(closure.record_path(pack)).unlink()
    calls: list[int] = []
    real = verify.closure_pack

    def counted(pf: object, wants: list[bytes]) -> bool:
        calls.append(1)
        return real(pf, wants)  # type: ignore[arg-type]

    monkeypatch.setattr(verify, "closure_pack", counted)
    assert client_closure.closure_pack_path(repo, [tip]) is not None
    assert client_closure.closure_pack_path(repo, [tip]) is not None
    assert calls == [1] and closure.recorded(pack, [tip])


def test_a_failed_proof_records_nothing_and_a_foreign_record_says_nothing(
    muse: Muse, tmp_path: Path
) -> None:
    _src, repo = _imported(muse, tmp_path)
    tip = repo.refs.read("refs/heads/main")
    assert tip is not None
    pack = _only_pack(repo)
    parent = repo.read_commit(tip).parents[0]
    # The pack holds more than the parent's history: no proof, no record.
    assert client_closure.closure_pack_path(repo, [parent]) is None
    assert not closure.recorded(pack, [parent])
    assert closure.sets(pack) == [[tip]]
    # Records not in the format (or too large) are not read.
    rec = Path(closure.record_path(pack))
    for junk in (b"", b"muse closure 2\n" + tip.hex().encode() + b"\n", b"\xff" * 64):
        rec.chmod(0o644)
        rec.write_bytes(junk)
        assert not closure.recorded(pack, [tip])
        assert closure.sets(pack) == []
    rec.write_bytes(closure.MAGIC + (tip.hex().encode() + b"\n") * (closure.MAX_BYTES // 60))
    assert not closure.recorded(pack, [tip])


def test_fsck_finds_a_false_record(muse: Muse, tmp_path: Path) -> None:
    src, repo = _imported(muse, tmp_path)
    tip = repo.refs.read("refs/heads/main")
    assert tip is not None
    pack = _only_pack(repo)
    parent = repo.read_commit(tip).parents[0]
    closure.remember(pack, [parent])  # false: the pack holds the tip's commit and tree too
    cp = muse.run("fsck", cwd=src, check=False)
    assert cp.returncode != 0
    assert closure.record_path(pack) in cp.stdout + cp.stderr
    assert parent.hex()[:12] in cp.stdout + cp.stderr
    assert "Traceback" not in cp.stderr


def test_a_repack_removes_the_record_with_its_pack(muse: Muse, tmp_path: Path) -> None:
    src, repo = _imported(muse, tmp_path)
    pack = _only_pack(repo)
    (src / "new.txt").write_text("more\n")
    muse.run("commit", "-m", "more", cwd=src)
    muse.run("gc", cwd=src)
    repo = Repository(str(src))
    assert _only_pack(repo) != pack
    assert not Path(pack).exists() and not Path(closure.record_path(pack)).exists()
    assert not list((src / ".muse" / "packs").glob("*.closure"))
    muse.run("fsck", cwd=src)


def test_an_import_onto_a_history_records_nothing(muse: Muse, tmp_path: Path) -> None:
    src, repo = _imported(muse, tmp_path, commits=3)
    first = _only_pack(repo)
    stream = tmp_path / "more.fe"
    stream.write_text(_stream(2, start=3, base="refs/heads/main"))
    muse.run("fast-import", str(stream), cwd=src)
    packs = Repository(str(src)).store.packs
    assert packs is not None and len(packs.packs) == 2
    assert [p.name for p in (src / ".muse" / "packs").glob("*.closure")] == [
        Path(closure.record_path(first)).name
    ]
