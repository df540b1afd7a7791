"""muse commit: snapshot the whole working tree (there is no staging area)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from muse.errors import MuseError, Rejected, UsageError

if TYPE_CHECKING:
    from muse.core.index import Index
    from muse.core.objects import Commit, Signature
    from muse.core.repo import Repository


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--message", action="append", help="commit message (repeatable)")
    p.add_argument("-F", "--file", help="read the message from a file ('-': stdin)")
    p.add_argument("--allow-empty", action="store_true", help="commit even if nothing changed")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument(
        "--amend",
        action="store_true",
        help="replace the last commit (same parents; its message unless -m or -F)",
    )
    p.add_argument(
        "--no-edit", action="store_true", help="with --amend: keep the message (the default)"
    )
    p.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="commit only these files' or directories' changes (the rest stay uncommitted)",
    )


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import open_repo
    from muse.core import config as _config

    prepared = None
    if args.message is None and args.file is None and not args.amend:
        prepared = _prepared_message()  # concluding a merge or revert, as git's MERGE_MSG
        if prepared is None:
            raise UsageError("a message is required: muse commit -m <message>")
    if args.file is not None:
        if args.file == "-":
            message = sys.stdin.read()
        else:
            with open(args.file, encoding="utf-8") as f:
                message = f.read()
    elif args.message is not None:
        message = "\n\n".join(args.message)
    else:
        message = prepared or ""  # --amend without -m/-F: the amended commit's (_commit)
    if message and not message.endswith("\n"):
        message += "\n"
    repo = open_repo()
    from muse.core.journal import interrupted_checkout

    if interrupted_checkout(repo.muse_dir) is not None:
        raise MuseError(
            "a checkout was interrupted and the working tree is half written: run the same "
            "command again (muse checkout, pull or clone) to finish it before committing"
        )
    try:
        author = repo.signature("AUTHOR")
        committer = repo.signature("COMMITTER")
    except _config.ConfigError as e:
        raise MuseError(str(e)) from None
    if not args.quiet and _config.identity_guessed(repo.effective_config()):
        sys.stderr.write(_GUESSED.format(who=f"{author.name} <{author.email}>"))
    from muse.core.index import load_index

    with load_index(repo.muse_dir, lock=True) as idx:  # as git: index.lock for the whole commit
        return _commit(repo, idx, args, author, committer, message)


def _commit(
    repo: Repository,
    idx: Index,
    args: argparse.Namespace,
    author: Signature,
    committer: Signature,
    message: str,
) -> int:
    from muse.cli._util import short
    from muse.client.progress import Progress
    from muse.core.objects import COMMIT, Commit
    from muse.core.refs import RefConflict
    from muse.core.worktree import snapshot

    head = repo.head_commit()
    from muse.core.merge import clear_state, commit_parents, merge_head

    merging = merge_head(repo) is not None  # concluding a merge: MERGE_HEAD is a parent
    amend = _amended(repo, head, merging) if getattr(args, "amend", False) else None
    _refuse_unresolved(repo)
    if args.paths and merging:
        raise MuseError("cannot do a partial commit during a merge: commit the whole tree")
    specs = _pathspecs(repo, args.paths)
    result, idx = snapshot(repo, idx, Progress(quiet=bool(getattr(args, "quiet", False))))
    tree = result.tree
    if specs:
        tree = _limited_tree(repo, head, result.tree, specs)
    parents: tuple[bytes, ...] = ()
    if amend is not None:  # git keeps the author and the parents, and allows no change
        parents, author, message = amend.parents, amend.author, message or amend.message
    elif head is not None:
        parents = commit_parents(repo, head)
        if not merging and repo.read_commit(head).tree == tree and not args.allow_empty:
            if idx.dirty:
                idx.save()
            sys.stdout.write("nothing to commit, working tree clean\n")
            return 1
    commit = Commit(tree, parents, author, committer, message)
    oid = repo.store.put(COMMIT, commit.encode())
    try:
        repo.refs.update_head(oid, head, log=_reflog_message(message, parents, amend))
    except RefConflict as e:
        raise Rejected(f"HEAD moved while committing: {e}") from None
    if merging:
        clear_state(repo)
    else:  # a revert whose conflicts were resolved ends with this commit
        _end_revert(repo)
    idx.base = tree  # what checkout compares against: the rest stays a local change
    idx.save()
    if not args.quiet:
        where = repo.current_branch() or "detached HEAD"
        root = "" if parents else " (root-commit)"
        first = message.split("\n", 1)[0]
        sys.stdout.write(f"[{where}{root} {short(oid)}] {first}\n")
        for s in result.skipped:
            sys.stdout.write(f"warning: skipped (name cannot be stored): {s}\n")
    return 0


_GUESSED = """\
warning: your name and email address were guessed from your user name and host name:
    {who}
  Set them once (muse commit then stops warning):
    muse config --global user.name "Your Name"
    muse config --global user.email you@example.com
"""


def _pathspecs(repo: Repository, paths: list[str]) -> list[str]:
    """PATH... relative to the current directory -> paths from the top ('' for all)."""
    import os

    out = []
    for p in paths:
        rel = os.path.relpath(os.path.abspath(p), repo.root)
        if rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel):
            raise UsageError(f"{p}: outside the repository at {repo.root}")
        rel = "" if rel == os.curdir else rel.replace(os.sep, "/")
        if rel.split("/")[0] == ".muse":
            raise UsageError(f"{p}: .muse is the repository itself, not a tracked path")
        out.append(rel)
    return out


def _covered(path: str, specs: list[str]) -> bool:
    return any(not s or path == s or path.startswith(s + "/") for s in specs)


def _limited_tree(
    repo: Repository, head: bytes | None, work_tree: bytes, specs: list[str]
) -> bytes:
    """HEAD's tree with only the changes under ``specs`` taken from the working tree, as
    ``git commit PATH...`` does; a PATH that names nothing in either is refused (as git)."""
    from muse.core.merge import apply_changes
    from muse.core.objects import EMPTY_TREE_ID
    from muse.core.treediff import diff_trees, tree_reader, walk_tree

    get = tree_reader(repo.store)
    head_tree = repo.read_commit(head).tree if head is not None else EMPTY_TREE_ID
    picked = {
        path: new
        for path, old, new in diff_trees(get, head_tree, work_tree)
        if _covered(path, specs)
    }
    unmatched = [s for s in specs if s and not any(_covered(p, [s]) for p in picked)]
    if unmatched:  # unchanged files still match: look for them in HEAD's tree
        known = {p for p, _, _ in walk_tree(get, head_tree)}
        for s in unmatched:
            if not any(_covered(p, [s]) for p in known):
                raise UsageError(f"pathspec '{s}' did not match any file known to muse")
    if not picked:
        return head_tree
    return apply_changes(repo, head_tree, picked)


def _refuse_unresolved(repo: Repository) -> None:
    """A merge or revert with conflicts is committed only once each is resolved (git's
    "Committing is not possible because you have unmerged files")."""
    from muse.core.merge import conflicted_paths

    left = conflicted_paths(repo)
    if left:
        shown = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
        raise MuseError(
            f"committing is not possible: unresolved conflicts in {shown} "
            "(fix them, then 'muse resolve PATH'; or 'muse merge --abort')"
        )


def _amended(repo: Repository, head: bytes | None, merging: bool) -> Commit:
    """The commit --amend replaces; refused as git refuses it (nothing yet, or mid-merge)."""
    if head is None:
        raise MuseError("you have nothing to amend: the branch has no commits yet")
    if merging:
        raise MuseError(
            "you are in the middle of a merge: cannot amend (finish it with 'muse commit' "
            "or give it up with 'muse merge --abort')"
        )
    return repo.read_commit(head)


def _reflog_message(message: str, parents: tuple[bytes, ...], amend: Commit | None) -> str:
    """git's reflog words: ``commit:``, ``commit (initial):``, ``(merge)``, ``(amend)``."""
    kind = "commit (amend)" if amend is not None else "commit"
    if amend is None and not parents:
        kind = "commit (initial)"
    elif amend is None and len(parents) > 1:
        kind = "commit (merge)"
    return f"{kind}: {message.split(chr(10), 1)[0]}"


def _end_revert(repo: Repository) -> None:
    import os

    if os.path.exists(os.path.join(repo.muse_dir, "REVERT_HEAD")):
        from muse.cli.cmd_reset import clear_undo_state

        clear_undo_state(repo)


def _prepared_message() -> str | None:
    """``.muse/MERGE_MSG`` of a merge or revert in progress, without its Conflicts list."""
    import os

    from muse.core.repo import NotARepository, Repository

    try:
        repo = Repository.find()
    except NotARepository:
        return None
    states = ("MERGE_HEAD", "REVERT_HEAD")
    if not any(os.path.exists(os.path.join(repo.muse_dir, n)) for n in states):
        return None
    try:
        with open(os.path.join(repo.muse_dir, "MERGE_MSG"), encoding="utf-8") as f:
            text = f.read()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    msg = text.split("\nConflicts:\n", 1)[0].strip()
    return msg + "\n" if msg else None
