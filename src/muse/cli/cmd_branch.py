"""muse branch: list, create, rename or delete branches, and set their upstreams (as git)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from muse.errors import MuseError, NotFound, UsageError

if TYPE_CHECKING:
    from muse.core.repo import Repository


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="branch to create (with -m: the old name)")
    p.add_argument("start", nargs="?", help="where the new branch starts (with -m: the new name)")
    p.add_argument("-d", "--delete", metavar="BRANCH", help="delete a branch merged into HEAD")
    p.add_argument("-D", dest="force_delete", metavar="BRANCH", help="delete a branch anyway")
    p.add_argument("-m", "--move", action="store_true", help="rename a branch (OLD NEW, or NEW)")
    p.add_argument("-M", dest="force_move", action="store_true", help="rename, even over one")
    p.add_argument("-r", "--remotes", action="store_true", help="list remote-tracking branches")
    p.add_argument("-a", "--all", action="store_true", help="list local and remote-tracking")
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="show each tip and subject (twice: the upstream too)",
    )
    p.add_argument(
        "-u",
        "--set-upstream-to",
        dest="upstream",
        metavar="UPSTREAM",
        help="make UPSTREAM (such as origin/main) the branch's upstream",
    )
    p.add_argument("--unset-upstream", action="store_true", help="forget the branch's upstream")
    p.add_argument("--show-current", action="store_true", help="print the current branch")
    p.add_argument("--json", action="store_true", help="the listing as one JSON object")


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import open_repo
    from muse.core.refnames import RefNameError
    from muse.core.refs import RefConflict

    repo = open_repo()
    try:
        if args.delete or args.force_delete:
            return _delete(repo, args.delete or args.force_delete, force=not args.delete)
        if args.move or args.force_move:
            return _rename(repo, args.name, args.start, force=args.force_move)
        if args.upstream is not None:
            return _set_upstream(repo, args.upstream, args.name)
        if args.unset_upstream:
            return _unset_upstream(repo, args.name)
        if args.show_current:
            branch = repo.current_branch()
            if branch:
                print(branch)
            return 0
        if args.name:
            return _create(repo, args.name, args.start)
    except (RefNameError, RefConflict) as e:
        raise MuseError(str(e)) from None
    return _list(repo, args)


def _delete(repo: Repository, target: str, force: bool) -> int:
    from muse.cli._util import short
    from muse.client.remotes import unset_upstream
    from muse.core.graph import is_ancestor
    from muse.core.refnames import branch_ref

    ref = branch_ref(target)
    tip = repo.refs.read(ref)
    if tip is None:
        raise NotFound(f"branch '{target}' not found")
    if target == repo.current_branch():
        raise MuseError(f"cannot delete the branch '{target}' you are on")
    if not force:
        head = repo.head_commit()
        if head is None or not is_ancestor(repo.store, tip, head):
            raise MuseError(
                f"branch '{target}' is not merged into HEAD (use -D to delete it anyway)"
            )
    repo.refs.update(ref, None, tip)
    unset_upstream(repo, target)
    print(f"Deleted branch {target} (was {short(tip)}).")
    return 0


def _create(repo: Repository, name: str, start_arg: str | None) -> int:
    from muse.cli._util import resolve
    from muse.core.refnames import branch_ref

    ref = branch_ref(name)
    start = resolve(repo, start_arg) if start_arg else repo.head_commit()
    if start is None:
        raise NotFound("cannot create a branch: HEAD has no commits yet")
    if repo.refs.read(ref) is not None:
        raise MuseError(f"a branch named '{name}' already exists")
    repo.refs.update(ref, start, None)
    track_start(repo, name, start_arg)
    return 0


def track_start(repo: Repository, branch: str, start_arg: str | None, quiet: bool = False) -> None:
    """A branch started from a remote-tracking branch tracks it (git's autoSetupMerge)."""
    from muse.client.remotes import set_upstream, split_tracking

    where = split_tracking(repo, start_arg) if start_arg else None
    if where is None:
        return
    set_upstream(repo, branch, *where)
    if not quiet:
        print(f"branch '{branch}' set up to track '{where[0]}/{where[1]}'.")


def _rename(repo: Repository, first: str | None, second: str | None, force: bool) -> int:
    from muse.client.remotes import move_branch_config
    from muse.core.refnames import branch_ref

    current = repo.current_branch()
    if first is None:
        raise UsageError("branch name required: muse branch -m [OLD] NEW")
    old, new = (first, second) if second is not None else (current, first)
    if old is None:
        raise MuseError("HEAD is detached: name the branch to rename (muse branch -m OLD NEW)")
    old_ref, new_ref = branch_ref(old), branch_ref(new)
    tip = repo.refs.read(old_ref)
    if tip is None and old != current:
        raise NotFound(f"branch '{old}' not found")
    if old == new:
        return 0
    existing = repo.refs.read(new_ref)
    if existing is not None and not force:
        raise MuseError(f"a branch named '{new}' already exists (use -M to overwrite it)")
    if new == current:
        raise MuseError(f"cannot overwrite the branch '{new}' you are on")
    if tip is not None:
        repo.refs.update(new_ref, tip, existing)
    if old == current:
        repo.refs.set_head(new_ref)
    if tip is not None:
        repo.refs.update(old_ref, None, tip)
    move_branch_config(repo, old, new)
    return 0


def _set_upstream(repo: Repository, up: str, branch_arg: str | None) -> int:
    from muse.client.remotes import set_upstream, split_tracking
    from muse.core.refnames import branch_ref

    branch = branch_arg or repo.current_branch()
    if branch is None:
        raise MuseError("HEAD is detached: name the branch (muse branch -u UPSTREAM BRANCH)")
    if repo.refs.read(branch_ref(branch)) is None and branch != repo.current_branch():
        raise NotFound(f"branch '{branch}' not found")
    where = split_tracking(repo, up)
    if where is None:
        raise NotFound(
            f"the requested upstream branch '{up}' does not exist "
            "(a remote-tracking branch such as origin/main: 'muse fetch' first, "
            "or 'muse push -u' to create it)"
        )
    set_upstream(repo, branch, *where)
    print(f"branch '{branch}' set up to track '{where[0]}/{where[1]}'.")
    return 0


def _unset_upstream(repo: Repository, branch_arg: str | None) -> int:
    from muse.client.remotes import unset_upstream

    branch = branch_arg or repo.current_branch()
    if branch is None:
        raise MuseError("HEAD is detached: name the branch (muse branch --unset-upstream BRANCH)")
    if not unset_upstream(repo, branch):
        raise NotFound(f"branch '{branch}' has no upstream information")
    return 0


# ------------------------------------------------------------------------------ listing
def tracking_state(repo: Repository, branch: str, tip: bytes) -> dict[str, Any] | None:
    """The upstream of a branch and how far apart they are (None: no upstream)."""
    from muse.client.remotes import upstream_ref
    from muse.core.graph import MissingCommit, ahead_behind

    up = upstream_ref(repo, branch)
    if up is None:
        return None
    name, ref = up
    up_tip = repo.refs.read(ref)
    state: dict[str, Any] = {"upstream": name, "gone": up_tip is None, "ahead": None}
    state["behind"] = None
    if up_tip is not None:
        try:
            state["ahead"], state["behind"] = ahead_behind(repo.store, tip, up_tip)
        except MissingCommit:
            pass
    return state


def _tracking_text(state: dict[str, Any] | None, verbose: int) -> str:
    """git's ``[origin/main: ahead 2, behind 1]`` (-vv) or ``[ahead 2, behind 1]`` (-v)."""
    if state is None:
        return ""
    parts = []
    if state["gone"]:
        parts.append("gone")
    elif state["ahead"] is not None:
        if state["ahead"]:
            parts.append(f"ahead {state['ahead']}")
        if state["behind"]:
            parts.append(f"behind {state['behind']}")
    if verbose >= 2:
        inner = state["upstream"] + (": " + ", ".join(parts) if parts else "")
        return f"[{inner}] "
    return f"[{', '.join(parts)}] " if parts else ""


def _subject(repo: Repository, oid: bytes) -> str:
    try:
        return repo.read_commit(oid).message.split("\n", 1)[0]
    except Exception:  # noqa: BLE001 - a listing still shows a branch whose tip is missing
        return "(missing commit)"


def _list(repo: Repository, args: argparse.Namespace) -> int:
    from muse.cli._util import short
    from muse.core.refnames import HEADS, REMOTES

    current = repo.current_branch()
    head = repo.head_commit()
    local = not args.remotes or args.all
    remote = args.remotes or args.all
    branches: list[dict[str, Any]] = []
    if local:
        for ref, oid in repo.refs.list(HEADS).items():
            name = ref[len(HEADS) :]
            entry: dict[str, Any] = {"name": name, "commit": oid.hex(), "current": name == current}
            if args.verbose or args.json:
                entry["subject"] = _subject(repo, oid)
                entry["tracking"] = tracking_state(repo, name, oid)
            branches.append(entry)
    remotes: list[dict[str, Any]] = []
    if remote:
        for ref, oid in repo.refs.list(REMOTES).items():
            entry = {"name": ref[len(REMOTES) :], "commit": oid.hex()}
            if args.verbose or args.json:
                entry["subject"] = _subject(repo, oid)
            remotes.append(entry)
    detached = head if current is None and head is not None else None
    if args.json:
        import json

        out: dict[str, Any] = {"current": current, "detached": detached and detached.hex()}
        out["branches"] = [_json_entry(b) for b in branches] if local else []
        if remote:
            out["remotes"] = remotes
        sys.stdout.write(json.dumps(out) + "\n")
        return 0
    rows: list[tuple[str, str, bytes, str]] = []  # (mark, shown name, tip, tracking text)
    if detached is not None and local:
        rows.append(("*", f"(HEAD detached at {short(detached)})", detached, ""))
    for b in branches:
        text = _tracking_text(b.get("tracking"), args.verbose)
        rows.append(("*" if b["current"] else " ", b["name"], bytes.fromhex(b["commit"]), text))
    for r in remotes:
        shown = ("remotes/" if args.all else "") + r["name"]
        rows.append((" ", shown, bytes.fromhex(r["commit"]), ""))
    width = max((len(r[1]) for r in rows), default=0)
    lines = []
    for mark, name, tip, text in rows:
        if args.verbose:
            lines.append(f"{mark} {name.ljust(width)} {short(tip)} {text}{_subject(repo, tip)}")
        else:
            lines.append(f"{mark} {name}")
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _json_entry(b: dict[str, Any]) -> dict[str, Any]:
    t = b.pop("tracking", None) or {}
    b["upstream"] = t.get("upstream")
    b["ahead"] = t.get("ahead")
    b["behind"] = t.get("behind")
    b["gone"] = bool(t.get("gone"))
    return b
