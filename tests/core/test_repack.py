"""Automatic and explicit repacking (muse.core.repack): nothing lost, fewer files, smaller."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from muse.core import repack
from muse.core.fsck import fsck
from muse.core.objects import BLOB, Signature
from muse.core.repo import Repository
from muse.core.writer import HistoryWriter
from tests.fixtures.muse import MUSE, muse_env

SIG = Signature("A", "a@example.org", 1704067200, 0)


def _muse(repo: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MUSE, *args], cwd=repo, env=muse_env(home), capture_output=True, text=True, timeout=60
    )


def _loose_files(repo: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(repo / ".muse" / "objects"))


def test_commits_repack_on_their_own_past_gc_auto_and_lose_nothing(tmp_path):
    home, repo = tmp_path / "home", tmp_path / "r"
    repo.mkdir()
    assert _muse(repo, home, "init").returncode == 0
    assert _muse(repo, home, "config", "gc.auto", "20").returncode == 0
    seen = []
    for i in range(12):
        (repo / f"f{i}.txt").write_text(f"line {i}\n" * 50)
        cp = _muse(repo, home, "commit", "-m", f"c{i}")
        assert cp.returncode == 0, cp.stderr
        seen.append(cp.stderr)
    assert any("Auto packing the repository" in e for e in seen)
    assert _loose_files(repo) < 20  # packed at least once
    r = Repository.find(str(repo))
    rep = fsck(r)
    assert rep.ok, rep.problems
    assert rep.reachable == rep.objects  # every commit, tree and blob still there
    cp = _muse(repo, home, "log", "--oneline")
    assert cp.returncode == 0 and len(cp.stdout.splitlines()) == 12


def test_gc_auto_zero_turns_it_off(tmp_path):
    home, repo = tmp_path / "home", tmp_path / "r"
    repo.mkdir()
    _muse(repo, home, "init")
    _muse(repo, home, "config", "gc.auto", "0")
    _muse(repo, home, "config", "gc.autoPackLimit", "0")
    for i in range(5):
        (repo / f"f{i}.txt").write_text(f"{i}\n")
        assert _muse(repo, home, "commit", "-m", f"c{i}").returncode == 0
    assert not os.path.exists(repo / ".muse" / "packs") or not os.listdir(repo / ".muse" / "packs")
    assert repack.needed(Repository.find(str(repo))) is False


def test_repack_merges_small_packs_keeps_big_ones_and_every_object(tmp_path, monkeypatch):
    r = Repository.init(str(tmp_path / "r"))
    for k in range(5):  # five packs, as five fetches would leave
        with HistoryWriter(r, branch="main") as w:
            w.commit({f"d{k}/f{i}.txt": b"%d %d\n" % (k, i) for i in range(150)}, f"c{k}", SIG)
    big = r.store.write_pack([(BLOB, os.urandom(300_000))])
    ids = list(r.store.iter_ids())
    monkeypatch.setattr(repack, "BIG_PACK", 200_000)
    for i in range(30):
        r.store.put(BLOB, b"loose %d\n" % i)
    before = sorted(n for n in os.listdir(r.store.packs_dir) if n.endswith(".pack"))
    assert len(before) == 6
    res = repack.repack(r)
    assert (res.packs, res.loose) == (5, 30)
    after = sorted(n for n in os.listdir(r.store.packs_dir) if n.endswith(".pack"))
    assert len(after) == 2 and os.path.basename(big.path) in after
    assert _loose_files(Path(r.root)) == 0
    again = Repository.find(r.root)
    for oid in ids:
        assert again.store.get(oid) is not None
    assert fsck(again).ok
    assert repack.repack(again).pack is None  # nothing left to do: no new pack


def test_needed_counts_packs_against_gc_autopacklimit(tmp_path):
    r = Repository.init(str(tmp_path / "r"))
    r.config.setdefault("gc", {})["autoPackLimit"] = 3
    r.save_config()
    for k in range(4):
        r.store.write_pack([(BLOB, b"pack %d\n" % k)])
    assert repack.needed(Repository.find(r.root))
    res = repack.auto(Repository.find(r.root))
    assert res is not None and res.packs == 4
    assert not repack.needed(Repository.find(r.root))


def test_a_running_repack_is_not_waited_for(tmp_path):
    r = Repository.init(str(tmp_path / "r"))
    r.store.put(BLOB, b"x")
    lock = Path(r.muse_dir) / "gc.lock"
    lock.write_text("")
    r.config.setdefault("gc", {})["auto"] = 1
    r.save_config()
    r.store.put(BLOB, b"y")
    assert repack.auto(Repository.find(r.root)) is None  # held: skipped, not an error
    assert _loose_files(Path(r.root)) == 2
