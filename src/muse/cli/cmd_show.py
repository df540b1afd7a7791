"""muse show: a commit with its patch, a file at a revision (``REV:PATH``), or any object.

A commit prints as git shows it (header, message, the patch against its parent), with the
tree and parent ids and the changed paths listed before the patch. A merge prints the
``Merge:`` header and no patch by default (git prints a combined diff there); ``-m`` or
``--first-parent`` prints the patch against the first parent.
"""

from __future__ import annotations

import argparse
import sys

from muse.errors import NotFound


def add_arguments(p: argparse.ArgumentParser) -> None:
    from muse.cli.cmd_diff import add_format_arguments

    p.add_argument("object", nargs="?", default="HEAD", help="revision, REV:PATH or object id")
    add_format_arguments(p)
    p.add_argument("-s", "--no-patch", action="store_true", help="the header only")
    p.add_argument(
        "-m", "--first-parent", action="store_true", help="a merge: patch against parent 1"
    )


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import format_date, open_repo, resolve
    from muse.cli.cmd_diff import takeback_rename_value
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
    args.object = takeback_rename_value(args, [args.object])[0]  # show -M REV
    if ":" in args.object:
        oid = _at_path(repo, args.object)
    else:
        oid = resolve(repo, args.object, kind=None)
    found = repo.store.get(oid)
    if found is None:
        raise NotFound(f"object {oid.hex()} is missing")
    kind, body = found
    out = sys.stdout
    oid, kind, body = _tag_headers(repo, oid, kind, body, out)
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
        if len(c.parents) > 1:
            out.write("Merge: " + " ".join(p.hex()[:12] for p in c.parents) + "\n")
        out.write(f"Author: {c.author.name} <{c.author.email}>\n")
        out.write(f"Date:   {format_date(c.author.time, c.author.tz_minutes)}\n\n")
        for line in c.message.rstrip("\n").split("\n"):
            out.write(f"    {line}\n" if line else "\n")
        base = repo.read_commit(c.parents[0]).tree if c.parents else EMPTY_TREE_ID
        if len(c.parents) > 1 and not args.first_parent:
            return 0
        changes = list(diff_trees(tree_reader(repo.store), base, c.tree))
        if changes:
            out.write("\n")
        for path, old, new in changes:
            out.write(f"{status_letter(old, new)}\t{path}\n")
        if changes and not args.no_patch:
            from muse.cli.cmd_diff import write_diff

            if not (args.stat or args.numstat or args.name_only or args.name_status):
                args.patch = True
            out.write("\n")
            out.flush()
            write_diff(sys.stdout.buffer, repo, base, c.tree, args)
        return 0
    for e in decode_tree(body):
        out.write(f"{MODE_NAMES[e.mode]:<5} {e.id.hex()}\t{e.name}\n")
    return 0


def _tag_headers(repo, oid: bytes, kind: int, body: bytes, out) -> tuple[bytes, int, bytes]:  # type: ignore[no-untyped-def]
    """Print each annotated tag on the way (as git show does), then the object it names."""
    from muse.cli._util import format_date
    from muse.core.objects import TAG, decode_tag

    while kind == TAG:
        t = decode_tag(body)
        out.write(f"tag {t.name}\n")
        out.write(f"Tagger: {t.tagger.name} <{t.tagger.email}>\n")
        out.write(f"Date:   {format_date(t.tagger.time, t.tagger.tz_minutes)}\n\n")
        out.write(t.message if t.message.endswith("\n") or not t.message else t.message + "\n")
        out.write("\n")
        oid = t.target
        found = repo.store.get(oid)
        if found is None:
            raise NotFound(f"object {oid.hex()} is missing")
        kind, body = found
    return oid, kind, body


def _at_path(repo, spec: str) -> bytes:  # type: ignore[no-untyped-def]
    """The object at PATH in REV's tree (``HEAD:dir/file``, ``:file`` for HEAD), as git's
    ``show REV:PATH``."""
    from muse.cli._util import resolve
    from muse.cli.cmd_log import _entry_at

    rev, path = spec.split(":", 1)
    tree = repo.read_commit(resolve(repo, rev or "HEAD")).tree
    entry = _entry_at(repo, tree, path)
    if entry is None:
        raise NotFound(f"path '{path}' does not exist in '{rev or 'HEAD'}'")
    return entry[1]
