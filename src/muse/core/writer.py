"""HistoryWriter: build commits from {path: bytes} changes without a working tree.

The git fast-import of Muse: the benchmark builds its 5,000-commit, 25,000-file history with
it. Directories are kept in memory as name -> (mode, id) maps; a commit re-encodes only the
directories its changes touched (and their ancestors), so each commit costs what it changed.
Every new object is buffered and written as one pack by close() (loose objects when pack
support is not installed), then the branch refs move by compare-and-swap.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from muse.core.chunking import cut_bytes
from muse.core.objects import (
    BLOB,
    CHUNKED_MIN,
    CHUNKED_MODES,
    CHUNKS,
    COMMIT,
    EMPTY_TREE_ID,
    MODE_EXEC,
    MODE_FILE,
    MODE_LINK,
    MODE_TREE,
    TREE,
    Commit,
    ObjectFormatError,
    Signature,
    check_entry_name,
    decode_tree,
    encode_chunks,
    encode_tree,
    file_mode,
    header,
)
from muse.core.refnames import branch_ref
from muse.core.refs import ANY, _Any
from muse.core.repo import Repository

#: Modes a path can be given (a subdirectory is made by its files, not given).
FILE_ENTRY_MODES = frozenset({MODE_FILE, MODE_EXEC, MODE_LINK, *CHUNKED_MODES})


class Stored:
    """A change naming a blob already written (by :meth:`HistoryWriter.blob`): mode and id."""

    __slots__ = ("mode", "oid")

    def __init__(self, mode: int, oid: bytes) -> None:
        self.mode = mode
        self.oid = oid


Change = bytes | tuple[int, bytes] | Stored | None
"""bytes: a regular file; (mode, bytes) for MODE_EXEC / MODE_LINK; Stored(mode, blob id);
None: delete the path (a file or a whole directory)."""


class _Dir:
    __slots__ = ("entries", "subdirs", "oid")

    def __init__(self, entries: dict[str, tuple[int, bytes]], oid: bytes | None) -> None:
        self.entries = entries  # name -> (mode, id); subdirectories have MODE_TREE
        self.subdirs: dict[str, _Dir] = {}  # loaded/modified subdirectories
        self.oid = oid  # None when dirty


class HistoryWriter:
    """Write commits programmatically; call close() to store the objects and move the refs."""

    def __init__(self, repo: Repository, branch: str = "main") -> None:
        self.repo = repo
        self.objects: list[tuple[int, bytes]] = []
        self._seen: set[bytes] = set()
        self._tips: dict[str, bytes] = {}  # branch -> current tip (in this writer)
        self._start: dict[str, bytes | None] = {}  # branch -> value when first touched
        self._roots: dict[str, _Dir] = {}
        self.default_branch = branch
        self.closed = False
        self._trees: dict[bytes, bytes] = {}  # new trees by id: later commits may start there
        self._commit_trees: dict[bytes, bytes] = {}  # new commit -> its tree
        self._commits: dict[bytes, bytes] = {}  # new commit bodies (ancestry checks)
        self._chunked: set[bytes] = set()  # ids returned by blob() that are chunk lists

    # ---------------------------------------------------------------------------- objects
    def _add(self, kind: int, body: bytes) -> bytes:
        h = hashlib.sha256(header(kind, len(body)))
        h.update(body)
        oid = h.digest()
        if oid not in self._seen:
            self._seen.add(oid)
            self.objects.append((kind, body))
            if kind == TREE:
                self._trees[oid] = body
            elif kind == COMMIT:
                self._commits[oid] = body
        return oid

    def written(self, oid: bytes) -> tuple[int, bytes] | None:
        """A tree or commit written by this writer and not stored yet (None otherwise)."""
        body = self._trees.get(oid)
        if body is not None:
            return TREE, body
        body = self._commits.get(oid)
        return (COMMIT, body) if body is not None else None

    def blob(self, data: bytes) -> bytes:
        """Store file content: a blob, or from CHUNKED_MIN bytes on its chunks and their
        list (the id returned is then the list's; :meth:`commit` gives it a chunked mode)."""
        if len(data) < CHUNKED_MIN:
            return self._add(BLOB, bytes(data))
        ids: list[bytes] = []
        lengths: list[int] = []
        for oid, piece in cut_bytes(data):
            ids.append(oid)
            lengths.append(len(piece))
            if oid not in self._seen:
                self._seen.add(oid)
                self.objects.append((BLOB, bytes(piece)))
        oid = self._add(CHUNKS, encode_chunks(ids, lengths))
        self._chunked.add(oid)
        return oid

    def _file(self, mode: int, data: bytes) -> tuple[int, bytes]:
        """(mode, id) of file content under a plain mode (file, exec or link)."""
        if mode == MODE_LINK:
            return mode, self._add(BLOB, bytes(data))
        oid = self.blob(data)
        return self._mode_of(mode, oid), oid

    def _mode_of(self, mode: int, oid: bytes) -> int:
        """A plain file mode made chunked when ``oid`` is a chunk list from :meth:`blob`."""
        if oid in self._chunked and mode in (MODE_FILE, MODE_EXEC):
            return file_mode(mode == MODE_EXEC, CHUNKED_MIN)
        return mode

    def _load_dir(self, oid: bytes) -> _Dir:
        if oid == EMPTY_TREE_ID:
            return _Dir({}, oid)
        body = self._trees.get(oid)
        found = (TREE, body) if body is not None else self.repo.store.get(oid)
        if found is None or found[0] != TREE:
            raise ObjectFormatError(f"tree {oid.hex()} missing from the store")
        return _Dir({e.name: (e.mode, e.id) for e in decode_tree(found[1])}, oid)

    def _root(self, branch: str) -> _Dir:
        root = self._roots.get(branch)
        if root is None:
            tip = self._tip(branch)
            tree = self.repo.read_commit(tip).tree if tip is not None else EMPTY_TREE_ID
            root = self._roots[branch] = self._load_dir(tree)
        return root

    def _tip(self, branch: str) -> bytes | None:
        if branch in self._tips:
            return self._tips[branch]
        cur = self.repo.refs.read(branch_ref(branch))
        self._start.setdefault(branch, cur)
        if cur is not None:
            self._tips[branch] = cur
        return cur

    def start_from(self, branch: str, commit: bytes | None) -> None:
        """The branch's next commit starts from ``commit``'s tree (None: the empty tree),
        whatever the branch held before; pass its parents to :meth:`commit`."""
        tree = EMPTY_TREE_ID if commit is None else self.tree_of(commit)
        self._roots[branch] = self._load_dir(tree)
        if commit is None:
            self._tips.pop(branch, None)
        else:
            self._tips[branch] = commit

    def entry(self, branch: str, path: str) -> tuple[int, bytes] | None:
        """(mode, id) at ``path`` in the branch's current tree (a directory: MODE_TREE)."""
        d = self._root(branch)
        parts = path.split("/")
        for p in parts[:-1]:
            sub = d.subdirs.get(p)
            if sub is None:
                cur = d.entries.get(p)
                if cur is None or cur[0] != MODE_TREE:
                    return None
                sub = self._load_dir(cur[1])
            d = sub
        name = parts[-1]
        if name in d.subdirs:
            return MODE_TREE, self._encode(d.subdirs[name])
        return d.entries.get(name)

    def tree_of(self, commit: bytes) -> bytes:
        return self._commit_trees.get(commit) or self.repo.read_commit(commit).tree

    # ----------------------------------------------------------------------------- commit
    def commit(
        self,
        changes: Mapping[str, Change],
        message: str,
        author: Signature,
        committer: Signature | None = None,
        parents: list[bytes] | None = None,
        branch: str | None = None,
    ) -> bytes:
        """Apply changes to the branch's current tree and record a commit; returns its id.

        parents defaults to the branch's current tip (none for the first commit).
        """
        if self.closed:
            raise RuntimeError("HistoryWriter is closed")
        branch = branch or self.default_branch
        root = self._root(branch)
        for path, change in changes.items():
            self._apply(root, path, change)
        tree = self._encode(root)
        if parents is None:
            tip = self._tip(branch)
            parents = [] if tip is None else [tip]
        c = Commit(tree, tuple(parents), author, committer or author, message)
        oid = self._add(COMMIT, c.encode())
        self._commit_trees[oid] = tree
        self._tips[branch] = oid
        self._start.setdefault(branch, None)
        return oid

    def _apply(self, root: _Dir, path: str, change: Change) -> None:
        parts = path.split("/")
        for p in parts:
            check_entry_name(p)
            if p.lower() == ".muse":
                raise ObjectFormatError(f"path {path!r} may not contain .muse")
        d = root
        for p in parts[:-1]:
            d.oid = None
            sub = d.subdirs.get(p)
            if sub is None:
                cur = d.entries.get(p)
                if cur is None or change is None and cur[0] != MODE_TREE:
                    if change is None:
                        return  # deleting something that does not exist
                    sub = _Dir({}, None)
                elif cur[0] != MODE_TREE:
                    sub = _Dir({}, None)  # a file becomes a directory
                else:
                    sub = self._load_dir(cur[1])
                d.subdirs[p] = sub
                d.entries[p] = (MODE_TREE, b"")
            d = sub
        d.oid = None
        name = parts[-1]
        if change is None:
            d.entries.pop(name, None)
            d.subdirs.pop(name, None)
            return
        if isinstance(change, Stored):
            mode, oid = self._mode_of(change.mode, change.oid), change.oid
            if mode == MODE_TREE:  # a whole directory copied from elsewhere
                d.subdirs.pop(name, None)
                d.entries[name] = (MODE_TREE, oid)
                return
        elif isinstance(change, tuple):
            mode, oid = self._file(change[0], change[1])
        else:
            mode, oid = self._file(MODE_FILE, change)
        if mode not in FILE_ENTRY_MODES:
            raise ObjectFormatError(f"invalid mode {mode} for {path!r}")
        d.subdirs.pop(name, None)
        d.entries[name] = (mode, oid)

    def _encode(self, d: _Dir, root: bool = True) -> bytes:
        """The id of a directory, re-encoding only dirty subdirectories (empty ones vanish,
        and are not stored: an empty tree nothing names would be an unreachable object)."""
        if d.oid is not None:
            return d.oid
        for name, sub in list(d.subdirs.items()):
            if sub.oid is None:
                oid = self._encode(sub, root=False)
                if not sub.entries:
                    del d.subdirs[name]
                    d.entries.pop(name, None)
                    continue
                d.entries[name] = (MODE_TREE, oid)
        body = encode_tree([(n, m, oid) for n, (m, oid) in d.entries.items()], checked=True)
        if not root and not d.entries:
            return EMPTY_TREE_ID
        d.oid = self._add(TREE, body)
        return d.oid

    def tip(self, branch: str | None = None) -> bytes | None:
        return self._tip(branch or self.default_branch)

    # ------------------------------------------------------------------------------ close
    def close(self, update_refs: bool = True) -> dict[str, bytes]:
        """Store every new object (one pack) and move the refs; returns {branch: tip}."""
        if self.closed:
            return dict(self._tips)
        self.closed = True
        objs = [(k, b) for k, b in self.objects]
        self.objects = []
        if objs:
            self.repo.store.write_pack(objs)
        if update_refs:
            for br, tip in self._tips.items():
                old: bytes | None | _Any = self._start.get(br, ANY)
                if old != tip:
                    self.repo.refs.update(branch_ref(br), tip, old)
        return dict(self._tips)

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.close()
