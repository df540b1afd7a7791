"""A repository: a working tree with a ``.muse/`` directory holding objects, refs and config.

Layout of ``.muse/`` (docs/format.md): ``HEAD``, ``config`` (TOML), ``objects/`` (loose),
``packs/`` (packs + indexes), ``refs/heads|tags|remotes/...``, ``index`` (the stat cache).
"""

from __future__ import annotations

import os
from typing import Any

from muse.core import config as _config
from muse.core.objects import COMMIT, TAG, Commit, Signature, decode_commit, tag_refs
from muse.core.refnames import HEADS, TAGS, branch_ref, check_branch_name
from muse.core.refs import RefStore
from muse.core.store import ObjectStore
from muse.errors import MuseError, NotFound

MUSE_DIR = ".muse"


class RepoExists(MuseError):
    """muse init where a repository already is."""


class NotARepository(NotFound):
    """The directory is not inside a muse repository."""


class UnknownRevision(NotFound):
    """A revision (branch, tag, id prefix, HEAD~n) that names no commit."""


class Repository:
    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.muse_dir = os.path.join(self.root, MUSE_DIR)
        if not os.path.isfile(os.path.join(self.muse_dir, "HEAD")):
            raise NotARepository(f"not a muse repository: {self.root}")
        self.store = ObjectStore(
            os.path.join(self.muse_dir, "objects"), os.path.join(self.muse_dir, "packs")
        )
        self.refs = RefStore(self.muse_dir, self._reflog_identity)
        self._config: dict[str, Any] | None = None

    # ------------------------------------------------------------------------ create/find
    @classmethod
    def init(cls, path: str, initial_branch: str = "main") -> Repository:
        """Create an empty repository in path (created if missing)."""
        check_branch_name(initial_branch)
        root = os.path.abspath(path)
        muse = os.path.join(root, MUSE_DIR)
        if os.path.exists(os.path.join(muse, "HEAD")):
            raise RepoExists(f"a muse repository already exists in {root}")
        for sub in ("objects", "packs", "refs/heads", "refs/tags"):
            os.makedirs(os.path.join(muse, sub), exist_ok=True)
        with open(os.path.join(muse, "config"), "w", encoding="utf-8") as f:
            f.write(_config.dumps({"core": {"format": 1}}))
        with open(os.path.join(muse, "HEAD"), "w", encoding="utf-8") as f:
            f.write(f"ref: {HEADS}{initial_branch}\n")
        return cls(root)

    @classmethod
    def find(cls, start_dir: str | None = None) -> Repository:
        """The repository containing start_dir (default: the current directory)."""
        d = os.path.abspath(start_dir or os.getcwd())
        while True:
            if os.path.isfile(os.path.join(d, MUSE_DIR, "HEAD")):
                return cls(d)
            parent = os.path.dirname(d)
            if parent == d:
                raise NotARepository(
                    f"not a muse repository (or any parent up to /): {start_dir or os.getcwd()}"
                )
            d = parent

    # ---------------------------------------------------------------------------- config
    @property
    def config_path(self) -> str:
        return os.path.join(self.muse_dir, "config")

    @property
    def config(self) -> dict[str, Any]:
        """The repository's own config (``.muse/config``); mutate, then save_config()."""
        if self._config is None:
            self._config = _config.load(self.config_path)
        return self._config

    def save_config(self) -> None:
        _config.save(self.config_path, self.config)

    def effective_config(self) -> dict[str, Any]:
        """Global config overlaid with the repository's (repository wins)."""
        merged: dict[str, Any] = {}
        _merge(merged, _config.load(_config.global_config_path()))
        _merge(merged, self.config)
        return merged

    def signature(self, role: str = "AUTHOR") -> Signature:
        return _config.signature(self.effective_config(), role)

    def _reflog_identity(self) -> tuple[str, str, int, int]:
        """Who and when for a reflog entry: the committer, as git writes it."""
        try:
            s = self.signature("COMMITTER")
        except _config.ConfigError:  # a bad identity must not stop a checkout or fetch
            import time

            name, email = _config._os_user()
            return name, email, int(time.time()), _config._local_tz_minutes()
        return s.name, s.email, s.time, s.tz_minutes

    # ------------------------------------------------------------------------- objects
    def read_commit(self, oid: bytes) -> Commit:
        found = self.store.get(oid)
        if found is None:
            raise UnknownRevision(f"object {oid.hex()} is missing")
        if found[0] != COMMIT:
            raise UnknownRevision(f"{oid.hex()[:12]} is not a commit")
        return decode_commit(found[1])

    def head_commit(self) -> bytes | None:
        return self.refs.head()[1]

    def head_tree(self) -> bytes | None:
        c = self.head_commit()
        return None if c is None else self.read_commit(c).tree

    def current_branch(self) -> str | None:
        """Short name of the branch HEAD is attached to (None when detached)."""
        ref = self.refs.head()[0]
        return ref[len(HEADS) :] if ref and ref.startswith(HEADS) else None

    # ------------------------------------------------------------------------- rev-parse
    def resolve(self, rev: str, kind: int | None = COMMIT) -> bytes:
        """An id from HEAD, a branch/tag/remote name, a full ref, or a hex id (prefix >= 4).

        Suffixes ``~N`` and ``^`` walk first parents. kind=None accepts any object kind (an
        annotated tag is then the tag itself); any other kind peels tags to what they name.
        """
        base, steps = _split_suffix(rev)
        oid = self._resolve_base(base, kind if not steps else COMMIT)
        if (kind is not None or steps) and base not in ("HEAD", "@"):  # HEAD names a commit
            oid = self.peel(oid)
        for _ in range(steps):
            parents = self.read_commit(oid).parents
            if not parents:
                raise UnknownRevision(f"{rev}: history is not that long")
            oid = parents[0]
        return oid

    def _resolve_base(self, name: str, kind: int | None) -> bytes:
        if not name:
            raise UnknownRevision("empty revision")
        if name.endswith("}") and "@{" in name:
            return self._resolve_reflog(name)
        if name == "ORIG_HEAD":  # where a reset, merge or revert found HEAD
            return self._orig_head()
        if name in ("HEAD", "@"):
            oid = self.head_commit()
            if oid is None:
                raise UnknownRevision("HEAD has no commits yet")
            return oid
        candidates = [name] if name.startswith("refs/") else []
        candidates += [HEADS + name, TAGS + name, "refs/remotes/" + name]
        for ref in candidates:
            try:
                oid = self.refs.read(ref)
            except ValueError:
                continue
            if oid is not None:
                return oid
        low = name.lower()
        if 4 <= len(low) <= 64 and all(c in "0123456789abcdef" for c in low):
            if len(low) == 64:
                oid = bytes.fromhex(low)
                if self.store.has(oid):
                    return oid
                raise UnknownRevision(f"object {low} not found")
            matches = self.store.resolve_prefix(low)
            if kind is not None and len(matches) > 1:
                typed = [m for m in matches if (self.store.get(m) or (0,))[0] == kind]
                matches = typed or matches
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise UnknownRevision(f"ambiguous id prefix {name!r} ({len(matches)} objects)")
        raise UnknownRevision(f"unknown revision {name!r} (not a branch, tag or object id)")

    def _resolve_reflog(self, name: str) -> bytes:
        """``REF@{N}``: where REF pointed N updates ago (its reflog, muse.core.reflog)."""
        from muse.core import reflog

        ref_name, _, n = name[:-1].rpartition("@{")
        if not n.isdigit():
            raise UnknownRevision(f"{name!r}: only REF@{{N}} with a number is supported")
        ref = self.log_ref(ref_name)
        oid = reflog.nth(self.muse_dir, ref, int(n))
        if oid is None:
            count = len(reflog.read(self.muse_dir, ref))
            raise UnknownRevision(f"{name!r}: the reflog of {ref} has only {count} entries")
        return oid

    def _orig_head(self) -> bytes:
        try:
            with open(os.path.join(self.muse_dir, "ORIG_HEAD"), encoding="ascii") as f:
                oid = bytes.fromhex(f.read().strip())
        except (FileNotFoundError, ValueError, UnicodeDecodeError):
            oid = b""
        if len(oid) != 32:
            raise UnknownRevision("ORIG_HEAD is not set (no reset, merge or revert yet)")
        return oid

    def log_ref(self, name: str) -> str:
        """The ref whose reflog ``name`` means: HEAD, a branch, ``stash``, a remote's branch,
        or a full ref name; '' (``@{N}``) is the current branch (HEAD when detached)."""
        from muse.core import reflog

        if name in ("HEAD", "@"):
            return "HEAD"
        if not name:
            return self.refs.head()[0] or "HEAD"
        for ref in ([name] if name.startswith("refs/") else []) + [
            "refs/" + name,
            HEADS + name,
            "refs/remotes/" + name,
        ]:
            try:
                if self.refs.read(ref) is not None or os.path.isfile(
                    reflog.log_path(self.muse_dir, ref)
                ):
                    return ref
            except ValueError:
                continue
        raise UnknownRevision(f"unknown ref {name!r} (no branch or reflog by that name)")

    def peel(self, oid: bytes) -> bytes:
        """What an annotated tag (or a chain of them) names; any other id unchanged."""
        for _ in range(64):
            found = self.store.get(oid)
            if found is None or found[0] != TAG:
                return oid
            oid = tag_refs(found[1])[0]
        raise UnknownRevision(f"{oid.hex()[:12]}: a chain of more than 64 tags")

    def branch_exists(self, name: str) -> bool:
        return self.refs.read(branch_ref(name)) is not None


def _split_suffix(rev: str) -> tuple[str, int]:
    steps = 0
    while True:
        if rev.endswith("^"):
            rev, steps = rev[:-1], steps + 1
            continue
        i = rev.rfind("~")
        if i > 0 and (rev[i + 1 :].isdigit() or rev[i + 1 :] == ""):
            n = rev[i + 1 :]
            rev, steps = rev[:i], steps + (int(n) if n else 1)
            continue
        return rev, steps


def _merge(dst: dict[str, Any], src: dict[str, Any]) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        elif isinstance(v, dict):
            dst[k] = {}
            _merge(dst[k], v)
        else:
            dst[k] = v
