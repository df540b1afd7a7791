"""muse branch: list, create or delete branches."""

from __future__ import annotations

import argparse
import sys

from muse.errors import MuseError, NotFound


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="branch to create")
    p.add_argument("start", nargs="?", help="where the new branch starts (default HEAD)")
    p.add_argument("-d", "--delete", metavar="BRANCH", help="delete a branch merged into HEAD")
    p.add_argument("-D", dest="force_delete", metavar="BRANCH", help="delete a branch anyway")
    p.add_argument("-v", "--verbose", action="store_true", help="show each branch's tip")


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import open_repo, resolve, short
    from muse.core.graph import is_ancestor
    from muse.core.refnames import HEADS, RefNameError, branch_ref
    from muse.core.refs import RefConflict

    repo = open_repo()
    current = repo.current_branch()
    try:
        target = args.delete or args.force_delete
        if target:
            ref = branch_ref(target)
            tip = repo.refs.read(ref)
            if tip is None:
                raise NotFound(f"branch '{target}' not found")
            if target == current:
                raise MuseError(f"cannot delete the branch '{target}' you are on")
            if args.delete:
                head = repo.head_commit()
                if head is None or not is_ancestor(repo.store, tip, head):
                    raise MuseError(
                        f"branch '{target}' is not merged into HEAD (use -D to delete it anyway)"
                    )
            repo.refs.update(ref, None, tip)
            print(f"Deleted branch {target} (was {short(tip)}).")
            return 0
        if args.name:
            ref = branch_ref(args.name)
            start = resolve(repo, args.start) if args.start else repo.head_commit()
            if start is None:
                raise NotFound("cannot create a branch: HEAD has no commits yet")
            if repo.refs.read(ref) is not None:
                raise MuseError(f"a branch named '{args.name}' already exists")
            repo.refs.update(ref, start, None)
            return 0
    except (RefNameError, RefConflict) as e:
        raise MuseError(str(e)) from None
    out = []
    for ref, oid in repo.refs.list(HEADS).items():
        name = ref[len(HEADS) :]
        mark = "*" if name == current else " "
        out.append(f"{mark} {name}" + (f" {short(oid)}" if args.verbose else ""))
    if current is None and repo.head_commit() is not None:
        out.insert(0, f"* (HEAD detached at {short(repo.head_commit() or b'')})")
    if out:
        sys.stdout.write("\n".join(out) + "\n")
    return 0
