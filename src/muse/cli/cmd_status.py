"""muse status: what differs between the working tree and HEAD."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from muse.core.repo import Repository
    from muse.core.treediff import Change


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-s", "--short", action="store_true", help="one line per path")


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import open_repo, short
    from muse.core.journal import finish_clone_hint, interrupted_checkout, unfinished_clone
    from muse.core.worktree import status

    repo = open_repo()
    stopped = interrupted_checkout(repo.muse_dir)
    cloning = unfinished_clone(repo.muse_dir)
    if cloning is not None:
        sys.stderr.write(
            f"warning: this clone of {cloning} did not finish: what is here is incomplete: "
            f"{finish_clone_hint(cloning, repo.root)}\n"
        )
    elif stopped is not None:
        sys.stderr.write(
            f"warning: a checkout of {short(stopped[1])} was interrupted; the working tree is "
            "half written: run the same command again (muse checkout, pull or clone)\n"
        )
    st = status(repo)
    rows = _rows(repo, st.changes)
    out = []
    if args.short:
        out = [f"{letter} {shown}" for _, letter, shown in rows]
    else:
        branch = repo.current_branch()
        if branch is not None:
            out.append(f"On branch {branch}")
        elif st.head is not None:
            out.append(f"HEAD detached at {short(st.head)}")
        if st.head is None:
            out.append("No commits yet")
        if st.changes:
            names = {"A": "new file", "M": "modified", "D": "deleted", "T": "typechange"}
            names["R"] = "renamed"
            out.append("Changes (commit with 'muse commit -m <message>'):")
            for _, letter, shown in rows:
                out.append(f"  {names[letter] + ':':<12}{shown}")
        else:
            out.append("nothing to commit, working tree clean")
        for s in st.skipped:
            out.append(f"warning: skipped (name cannot be stored): {s}")
    if out:
        sys.stdout.write("\n".join(out) + "\n")
    return 0


def _rows(repo: Repository, changes: list[Change]) -> list[tuple[str, str, str]]:
    """(path, letter, what to print) by path, a rename as ``R`` and ``old -> new``."""
    from muse.cli.cmd_diff import worktree_renames
    from muse.core.worktree import status_letter

    rest, renames = worktree_renames(repo, changes)
    rows = [(p, status_letter(o, n), p) for p, o, n in rest]
    rows += [(new, "R", f"{old} -> {new}") for old, new, _ in renames]
    return sorted(rows)
