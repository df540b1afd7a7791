"""muse stash: put working-tree changes aside and bring them back (muse.core.stash).

``push`` (the default) keeps the changes to files HEAD has (``-u``: new files too) as a
commit under ``refs/stash`` and puts those files back as HEAD has them; ``apply``/``pop``
merge a stash into the working tree three-way (muse.cli.cmd_revert.apply_delta), and a
conflict keeps the stash (pop drops it only when it applied cleanly), as git does.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from muse.errors import Conflict, NotFound, UsageError

if TYPE_CHECKING:
    from muse.core.repo import Repository

ACTIONS = ("push", "save", "list", "show", "pop", "apply", "drop", "clear")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "words", nargs="*", metavar="ACTION [STASH]", help=" | ".join(ACTIONS) + "; N or stash@{N}"
    )
    p.add_argument("-m", "--message", help="push: a message instead of 'WIP on ...'")
    p.add_argument("-u", "--include-untracked", action="store_true", help="push: new files too")
    p.add_argument("-p", "--patch", action="store_true", help="show: the diff itself")
    p.add_argument("--name-status", action="store_true", help="show: status letters and paths")
    p.add_argument("-q", "--quiet", action="store_true")
    # options may come after the action's words, as in git: "stash show -p 1"
    p.parse_args = p.parse_intermixed_args  # type: ignore[method-assign]


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import open_repo

    words = list(args.words)
    if len(words) > 2:
        raise UsageError("muse stash ACTION [STASH]: too many arguments")
    args.action = words[0] if words else "push"
    args.stash = words[1] if len(words) > 1 else None
    if args.action not in ACTIONS:
        raise UsageError(f"unknown stash action {args.action!r} (one of {', '.join(ACTIONS)})")
    repo = open_repo()
    if args.action in ("push", "save"):
        if args.stash is not None:  # git stash save MESSAGE
            if args.action == "push":
                raise UsageError("muse stash push takes no stash (a message is -m MSG)")
            args.message = args.stash
        return _push(repo, args)
    if args.action == "list":
        return _list(repo)
    if args.action == "clear":
        from muse.core import stash

        stash.clear(repo)
        return 0
    n = _number(args.stash)
    if args.action == "show":
        return _show(repo, n, args)
    if args.action == "drop":
        return _drop(repo, n, args.quiet)
    return _apply(repo, n, pop=args.action == "pop", quiet=args.quiet)


def _number(text: str | None) -> int:
    if text is None:
        return 0
    t = text
    if t.startswith("stash@{") and t.endswith("}"):
        t = t[7:-1]
    if not t.isdigit():
        raise UsageError(f"{text!r} is not a stash: use N or stash@{{N}}")
    return int(t)


def _get(repo: Repository, n: int) -> bytes:
    from muse.core import stash

    try:
        return stash.get(repo, n)
    except stash.NoStash as e:
        raise NotFound(str(e)) from None


def _push(repo: Repository, args: argparse.Namespace) -> int:
    from muse.core import stash

    oid = stash.save(repo, args.message, args.include_untracked)
    if not args.quiet:
        if oid is None:
            sys.stdout.write("No local changes to save\n")
        else:
            text = stash.stack(repo)[0].message
            sys.stdout.write(f"Saved working directory state {text}\n")
    return 0


def _list(repo: Repository) -> int:
    from muse.core import stash

    out = [f"stash@{{{i}}}: {e.message}\n" for i, e in enumerate(stash.stack(repo))]
    sys.stdout.write("".join(out))
    return 0


def _show(repo: Repository, n: int, args: argparse.Namespace) -> int:
    """As ``git stash show``: a --stat of the stash against the commit it was made on; -p,
    --name-status as ``muse diff`` prints them (muse.cli.cmd_diff)."""
    from muse.cli.cmd_diff import add_format_arguments, write_diff
    from muse.core import stash

    oid = _get(repo, n)
    fmt = argparse.ArgumentParser(add_help=False)
    add_format_arguments(fmt)
    flags = ["--name-status"] if args.name_status else [] if args.patch else ["--stat"]
    sys.stdout.flush()
    write_diff(
        sys.stdout.buffer,
        repo,
        stash.base_tree(repo, oid),
        repo.read_commit(oid).tree,
        fmt.parse_args(flags),
    )
    return 0


def _drop(repo: Repository, n: int, quiet: bool) -> int:
    from muse.core import stash

    _get(repo, n)
    oid = stash.drop(repo, n)
    if not quiet:
        sys.stdout.write(f"Dropped stash@{{{n}}} ({oid.hex()[:12]})\n")
    return 0


def _apply(repo: Repository, n: int, pop: bool, quiet: bool) -> int:
    from muse.cli.cmd_revert import apply_delta
    from muse.core import stash
    from muse.core.index import load_index
    from muse.core.objects import EMPTY_TREE_ID

    oid = _get(repo, n)
    _, conflicts = apply_delta(
        repo, stash.base_tree(repo, oid), repo.read_commit(oid).tree, f"stash@{{{n}}}"
    )
    with load_index(repo.muse_dir, lock=True) as idx:  # what came back is uncommitted work
        idx.base = repo.head_tree() or EMPTY_TREE_ID
        idx.save()
    if conflicts:
        shown = ", ".join(conflicts[:5]) + (" ..." if len(conflicts) > 5 else "")
        raise Conflict(f"conflict in {shown}: the stash is kept (fix the files, then drop it)")
    if pop:
        stash.drop(repo, n)
        if not quiet:
            sys.stdout.write(f"Dropped stash@{{{n}}} ({oid.hex()[:12]})\n")
    return 0
