"""muse fast-import: read a ``git fast-export`` stream (a git history) into this repository."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from muse.core.repo import Repository


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", nargs="?", default="-", help="the stream (default: standard input, '-')")
    p.add_argument("--force", action="store_true", help="replace refs that would lose commits")
    p.add_argument("-q", "--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import open_repo
    from muse.core.fastimport import fast_import

    repo = open_repo()
    if args.file == "-":
        stats = fast_import(repo, sys.stdin.buffer, force=args.force)
    else:
        with open(args.file, "rb") as f:
            stats = fast_import(repo, f, force=args.force)
    _prove_for_push(repo, stats.refs)
    if not args.quiet:
        sys.stdout.write(
            f"imported {stats.commits} commits, {stats.blobs} blobs, {len(stats.refs)} refs\n"
        )
        if stats.skipped_submodules:
            sys.stdout.write(f"warning: {stats.skipped_submodules} submodule entries skipped\n")
        if stats.tags_lightened:
            sys.stdout.write(
                f"note: {stats.tags_lightened} tags imported as lightweight tags "
                "(their messages are not kept)\n"
            )
        branch = repo.current_branch()
        if branch is not None and f"refs/heads/{branch}" in stats.refs:
            sys.stdout.write(f"run 'muse checkout --force {branch}' to fill the working tree\n")
    return 0


def _prove_for_push(repo: Repository, refs: dict[str, bytes]) -> None:
    """Prove, once, that the imported pack is exactly the history of the imported branches,
    and record it beside the pack (muse.client.closure): the first push of those branches to
    an empty hub then sends the pack as it is without proving it (about 0.25 s for
    pallets/flask, paid here instead, where the import takes seconds). Only for an import
    into an empty repository, whose pack is then the only one: added to an existing history,
    the pack cannot be a whole history and proving it would be time lost."""
    from muse.client.closure import closure_pack_path
    from muse.core.refnames import HEADS

    tips = sorted({oid for ref, oid in refs.items() if ref.startswith(HEADS)})
    packs = repo.store.packs
    if tips and packs is not None and len(packs.packs) == 1:
        closure_pack_path(repo, tips)
