"""Helpers shared by the core tests (uniquely named: tests/core is on sys.path)."""

from __future__ import annotations

import os

from muse.core.objects import COMMIT, Commit, Signature
from muse.core.repo import Repository
from muse.core.worktree import snapshot

SIG = Signature("T", "t@example.org", 1704067200, 0)


def write(root, rel, data=b"x", mode=None):
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
    if mode is not None:
        os.chmod(p, mode)


def commit_all(repo: Repository, msg: str = "m") -> bytes:
    res, idx = snapshot(repo)
    head = repo.head_commit()
    c = Commit(res.tree, (head,) if head else (), SIG, SIG, msg)
    oid = repo.store.put(COMMIT, c.encode())
    repo.refs.update_head(oid, head)
    idx.base = res.tree
    idx.save()
    return oid
