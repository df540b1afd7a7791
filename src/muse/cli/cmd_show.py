"""muse show: a commit (header and changed paths) or any object by id."""

from __future__ import annotations

import argparse
import sys

from muse.errors import NotFound


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("object", nargs="?", default="HEAD", help="revision or object id (HEAD)")


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import format_date, open_repo, resolve
    from muse.core.objects import (
        BLOB,
        CHUNKS,
        COMMIT,
        EMPTY_TREE_ID,
        MODE_NAMES,
        decode_commit,
        decode_tree,
    )
    from muse.core.treediff import diff_trees, tree_reader
    from muse.core.worktree import status_letter

    repo = open_repo()
    oid = resolve(repo, args.object, kind=None)
    found = repo.store.get(oid)
    if found is None:
        raise NotFound(f"object {oid.hex()} is missing")
    kind, body = found
    out = sys.stdout
    if kind == BLOB:
        out.flush()
        sys.stdout.buffer.write(body)
        return 0
    if kind == CHUNKS:  # a large file: its content, chunk by chunk
        from muse.core.chunking import restore

        out.flush()
        sys.stdout.buffer.flush()
        restore(sys.stdout.fileno(), body, repo.store.get)
        return 0
    if kind == COMMIT:
        c = decode_commit(body)
        out.write(f"commit {oid.hex()}\n")
        out.write(f"tree {c.tree.hex()}\n")
        for p in c.parents:
            out.write(f"parent {p.hex()}\n")
        out.write(f"Author: {c.author.name} <{c.author.email}>\n")
        out.write(f"Date:   {format_date(c.author.time, c.author.tz_minutes)}\n\n")
        for line in c.message.rstrip("\n").split("\n"):
            out.write(f"    {line}\n" if line else "\n")
        base = repo.read_commit(c.parents[0]).tree if c.parents else EMPTY_TREE_ID
        changes = list(diff_trees(tree_reader(repo.store), base, c.tree))
        if changes:
            out.write("\n")
        for path, old, new in changes:
            out.write(f"{status_letter(old, new)}\t{path}\n")
        return 0
    for e in decode_tree(body):
        out.write(f"{MODE_NAMES[e.mode]:<5} {e.id.hex()}\t{e.name}\n")
    return 0
