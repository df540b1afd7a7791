"""muse status: what differs between the working tree and HEAD."""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-s", "--short", action="store_true", help="one line per path")


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import open_repo, short
    from muse.core.journal import finish_clone_hint, interrupted_checkout, unfinished_clone
    from muse.core.worktree import status, status_letter

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
    out = []
    if args.short:
        out = [f"{status_letter(o, n)} {p}" for p, o, n in st.changes]
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
            out.append("Changes (commit with 'muse commit -m <message>'):")
            for p, o, n in st.changes:
                out.append(f"  {names[status_letter(o, n)] + ':':<12}{p}")
        else:
            out.append("nothing to commit, working tree clean")
        for s in st.skipped:
            out.append(f"warning: skipped (name cannot be stored): {s}")
    if out:
        sys.stdout.write("\n".join(out) + "\n")
    return 0
