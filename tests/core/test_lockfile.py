"""muse.core.lockfile and the files written through it: refs, HEAD, the index, config,
credentials, merge state and loose objects."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import threading

import pytest

from muse.core import config as cfg
from muse.core import index as index_mod
from muse.core import lockfile
from muse.core.index import LEGACY_MAGIC, MAGIC, Index, IndexLocked, load_index
from muse.core.lockfile import LockFile, LockHeld, write_atomic
from muse.core.objects import BLOB, object_id
from muse.core.refs import RefConflict, RefLocked
from muse.core.repo import Repository
from muse.errors import Rejected

A = object_id(BLOB, b"a")
B = object_id(BLOB, b"b")


@pytest.fixture
def repo(tmp_path):
    return Repository.init(str(tmp_path / "r"))


@pytest.fixture
def fsyncs(monkeypatch):
    """Every os.fsync call, as the st_mode of what was synced (file or directory)."""
    calls: list[int] = []
    real = os.fsync

    def record(fd: int) -> None:
        calls.append(os.fstat(fd).st_mode)
        real(fd)

    monkeypatch.setattr(os, "fsync", record)
    return calls


def _files(calls: list[int]) -> int:
    return sum(1 for m in calls if stat.S_ISREG(m))


def _dirs(calls: list[int]) -> int:
    return sum(1 for m in calls if stat.S_ISDIR(m))


def _read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


# ------------------------------------------------------------------------- the helper
def test_write_atomic_replaces_and_leaves_no_lock(tmp_path):
    p = str(tmp_path / "f")
    write_atomic(p, b"one")
    write_atomic(p, b"two")
    assert _read(p) == b"two"
    assert os.listdir(tmp_path) == ["f"]


def test_concurrent_writers_one_wins_the_others_get_lock_held(tmp_path):
    p = str(tmp_path / "f")
    write_atomic(p, b"old")
    n = 8
    start = threading.Barrier(n)
    others_done = threading.Event()
    lock = threading.Lock()
    won: list[int] = []
    lost: list[BaseException] = []

    def writer(i: int) -> None:
        start.wait()
        try:
            with LockFile(p) as f:
                won.append(i)
                f.write(b"writer %d" % i)
                assert others_done.wait(10)  # hold the lock until every other writer tried
        except LockHeld as e:
            with lock:
                lost.append(e)
                if len(lost) == n - 1:
                    others_done.set()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(lost) == n - 1
    assert _read(p) == b"writer %d" % won[0]
    assert not os.path.exists(p + ".lock")
    e = lost[0]
    assert isinstance(e, Rejected) and e.lock_path == p + ".lock"
    assert "locked" in str(e) and f"remove {p}.lock" in e.describe()


def test_a_lock_held_by_another_process(tmp_path, repo):
    """A second process holding a ref's lock: the update fails with RefConflict (RefLocked)."""
    ref_path = os.path.join(repo.muse_dir, "refs", "heads", "main")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from muse.core.lockfile import LockFile\n"
            "with LockFile(sys.argv[1]) as f:\n"
            "    f.write(sys.argv[2].encode()); print('held', flush=True); sys.stdin.read()\n",
            ref_path,
            B.hex() + "\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        with pytest.raises(RefConflict, match="locked") as info:
            repo.refs.update("refs/heads/main", A, None)
        assert isinstance(info.value, RefLocked) and isinstance(info.value, LockHeld)
        assert ref_path + ".lock" in info.value.describe()
    finally:
        holder.communicate(b"")
    assert holder.returncode == 0
    assert repo.refs.read("refs/heads/main") == B  # the other process committed
    repo.refs.update("refs/heads/main", A, B)  # and the lock is free again
    assert repo.refs.read("refs/heads/main") == A


def test_abort_leaves_target_untouched_and_no_lock(tmp_path):
    p = str(tmp_path / "f")
    write_atomic(p, b"old")
    with pytest.raises(KeyError):
        with LockFile(p) as f:
            f.write(b"new, half")
            raise KeyError("stop")
    assert _read(p) == b"old"
    assert os.listdir(tmp_path) == ["f"]
    f = LockFile(p).acquire()
    f.write(b"new")
    f.abort()
    f.abort()  # twice is harmless
    assert _read(p) == b"old" and os.listdir(tmp_path) == ["f"]


def test_crash_mid_write_keeps_old_content(tmp_path, monkeypatch):
    p = str(tmp_path / "f")
    write_atomic(p, b"old content")
    real_write = os.write
    calls = []

    def failing_write(fd, data):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_write(fd, bytes(data)[:3])  # short writes: write_all loops

    monkeypatch.setattr(os, "write", failing_write)
    with pytest.raises(OSError, match="No space"):
        write_atomic(p, b"new content")
    monkeypatch.undo()
    assert _read(p) == b"old content"
    assert os.listdir(tmp_path) == ["f"]


def test_killed_writer_leaves_its_lock_which_is_not_stolen(tmp_path):
    p = str(tmp_path / "f")
    write_atomic(p, b"old")
    code = (
        "import os, sys; from muse.core.lockfile import LockFile\n"
        "f = LockFile(sys.argv[1]).acquire(); f.write(b'half'); os._exit(9)\n"
    )
    assert subprocess.run([sys.executable, "-c", code, p]).returncode == 9
    assert _read(p) == b"old"
    assert _read(p + ".lock") == b"half"
    with pytest.raises(LockHeld) as info:
        write_atomic(p, b"new", what="the file")
    assert str(info.value) == f"the file is locked by another process ({p}.lock exists)"
    assert f"if none is running, remove {p}.lock" in info.value.describe()
    os.unlink(p + ".lock")  # what the message says to do
    write_atomic(p, b"new")
    assert _read(p) == b"new"


def test_fsync_only_for_durable_writes(tmp_path, fsyncs):
    p = str(tmp_path / "f")
    write_atomic(p, b"x")
    assert fsyncs == []
    write_atomic(p, b"y", durable=True)
    assert (_files(fsyncs), _dirs(fsyncs)) == (1, 1)
    fsyncs.clear()
    with LockFile(p, durable=True) as f:
        f.commit_delete()
    assert not os.path.exists(p) and (_files(fsyncs), _dirs(fsyncs)) == (0, 1)


def test_failed_fsync_aborts(tmp_path, monkeypatch):
    p = str(tmp_path / "f")
    write_atomic(p, b"old")

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError, match="Input/output"):
        write_atomic(p, b"new", durable=True)
    assert _read(p) == b"old" and os.listdir(tmp_path) == ["f"]


def test_unlocked_writes_use_unique_temporary_names(tmp_path):
    p = str(tmp_path / "obj")
    open(str(tmp_path / f".tmp-{os.getpid()}-x"), "w").close()  # not in the way
    a = LockFile(p, lock=False, mode=0o444).acquire()
    b = LockFile(p, lock=False, mode=0o444).acquire()
    assert a.lock_path != b.lock_path
    assert os.path.basename(a.lock_path).startswith(lockfile.TMP_PREFIX)
    a.write(b"same")
    b.write(b"same")
    a.commit()
    b.commit()  # the second writer of a content-addressed file just replaces it
    assert _read(p) == b"same"
    assert stat.S_IMODE(os.stat(p).st_mode) & 0o222 == 0
    assert sorted(os.listdir(tmp_path)) == [f".tmp-{os.getpid()}-x", "obj"]


# ---------------------------------------------------------------------- the callers
def test_refs_and_head_are_durable(repo, fsyncs):
    repo.refs.update("refs/heads/main", A, None)
    assert (_files(fsyncs), _dirs(fsyncs)) == (1, 1)
    fsyncs.clear()
    repo.refs.set_head_detached(A)
    assert (_files(fsyncs), _dirs(fsyncs)) == (1, 1)
    fsyncs.clear()
    repo.refs.update("refs/heads/main", None, A)  # a delete syncs the directory
    assert (_files(fsyncs), _dirs(fsyncs)) == (0, 1)


def test_loose_objects_are_atomic_and_packs_durable(repo, fsyncs):
    """git's core.fsync default: packs (and their index and directory) are synced before any
    ref can name them; loose objects are not."""
    oid = repo.store.put(BLOB, b"loose")
    assert fsyncs == []
    assert repo.store.get(oid) == (BLOB, b"loose")
    d = os.path.dirname(repo.store.loose_path(oid))
    assert os.listdir(d) == [oid.hex()[2:]]
    pf = repo.store.write_pack([(BLOB, b"packed %d" % i) for i in range(3)])
    assert (_files(fsyncs), _dirs(fsyncs)) == (2, 1)  # the pack, its index; packs/
    assert os.path.exists(pf.path) and os.path.exists(pf.idx_path)


def test_index_config_and_merge_state_are_atomic_not_durable(repo, fsyncs):
    idx = load_index(repo.muse_dir)
    idx.base = A
    idx.save()
    repo.config.setdefault("user", {})["name"] = "Ada"
    repo.save_config()
    from muse.core.merge import MERGE_MSG, _write_state

    _write_state(repo, MERGE_MSG, "msg\n")
    assert fsyncs == []
    assert not any(n.endswith((".lock", ".tmp")) or ".tmp-" in n for n in os.listdir(repo.muse_dir))
    assert cfg.load(repo.config_path)["user"]["name"] == "Ada"


def test_detached_head_compare_and_swap(repo):
    repo.refs.set_head_detached(A)
    with pytest.raises(RefConflict):
        repo.refs.update_head(B, B)
    repo.refs.update_head(B, A)
    assert repo.refs.head() == (None, B)
    open(os.path.join(repo.muse_dir, "HEAD.lock"), "w").close()
    with pytest.raises(RefLocked, match="HEAD is locked"):
        repo.refs.update_head(A, B)
    assert repo.refs.head() == (None, B)


def test_config_and_credentials_refuse_while_locked(repo, tmp_path, monkeypatch):
    open(repo.config_path + ".lock", "w").close()
    repo.config["x"] = {"y": 1}
    with pytest.raises(LockHeld, match="config"):
        repo.save_config()
    assert "x" not in cfg.load(repo.config_path)

    from muse.client import credentials

    monkeypatch.setenv("MUSE_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.delenv("MUSE_TOKEN", raising=False)
    old_umask = os.umask(0)  # 0600 even when the umask would allow more
    try:
        credentials.store("http://hub.example:8765/a/b", "tok")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.stat(credentials.path()).st_mode) == 0o600
    assert credentials.token_for("http://hub.example:8765") == "tok"
    open(credentials.path() + ".lock", "w").close()
    with pytest.raises(LockHeld, match="credentials"):
        credentials.remove("http://hub.example:8765")
    assert credentials.token_for("http://hub.example:8765") == "tok"


# ---------------------------------------------------------------------------- index
def _index_with_entry(repo) -> Index:
    idx = load_index(repo.muse_dir)
    st = os.stat(repo.config_path)
    idx.entries["a.txt"] = index_mod.make_entry(A, 1 | index_mod.STORED, st)
    idx.base = B
    idx.save()
    return idx


def test_index_refuses_to_be_written_while_locked(repo):
    _index_with_entry(repo)
    path = os.path.join(repo.muse_dir, "index")
    before = _read(path)
    open(path + ".lock", "w").close()
    idx = load_index(repo.muse_dir)
    idx.base = A
    with pytest.raises(IndexLocked, match="index is locked") as info:
        idx.save()
    assert isinstance(info.value, LockHeld) and isinstance(info.value, OSError)
    assert _read(path) == before
    from muse.core.worktree import status

    status(repo)  # status only refreshes the cache: it skips the write, as git status does
    assert _read(path) == before
    os.unlink(path + ".lock")


def test_index_lock_held_from_load_to_save(repo):
    _index_with_entry(repo)
    with load_index(repo.muse_dir, lock=True) as held:
        other = load_index(repo.muse_dir)
        with pytest.raises(IndexLocked):
            other.save()
        with pytest.raises(IndexLocked):
            load_index(repo.muse_dir, lock=True)
        held.base = A
        held.save()
        assert not os.path.exists(held.path + ".lock")
    assert load_index(repo.muse_dir).base == A
    with load_index(repo.muse_dir, lock=True):
        pass  # no save: leaving the block releases the lock
    assert not os.path.exists(held.path + ".lock")
    load_index(repo.muse_dir).save()


def test_index_has_its_own_magic_and_reads_the_legacy_one(repo):
    assert MAGIC == b"MUSEWTI1" and LEGACY_MAGIC == b"MUSEIDX1"
    from muse.core.pack import index as pack_index

    assert MAGIC != pack_index.MAGIC  # a magic names one format
    _index_with_entry(repo)
    path = os.path.join(repo.muse_dir, "index")
    data = _read(path)
    assert data[:8] == MAGIC
    old = LEGACY_MAGIC + data[8:-32]
    old += hashlib.sha256(old).digest()
    with open(path, "wb") as f:
        f.write(old)
    idx = load_index(repo.muse_dir)
    assert idx.exists and not idx.dirty
    assert idx.base == B and idx.entries["a.txt"][0] == A
    idx.save()  # rewritten with the new magic
    assert _read(path)[:8] == MAGIC
    bad = b"MUSEXXX1" + data[8:-32]
    with open(path, "wb") as f:
        f.write(bad + hashlib.sha256(bad).digest())
    idx = load_index(repo.muse_dir)
    assert not idx.exists and idx.dirty and idx.base is None
