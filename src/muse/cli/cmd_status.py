"""muse status: what differs between the working tree and HEAD, where the branch stands
against its upstream, and whether a merge is waiting (git's long, short and porcelain forms).

Muse has no staging area: the next commit is the whole working tree, so every change is
shown as git shows a staged one (``M `` in the short forms), conflicts as ``UU``.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from muse.core.repo import Repository

KINDS = {"A": "new file", "M": "modified", "D": "deleted", "T": "typechange"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-s", "--short", action="store_true", help="one line per path (git's XY)")
    p.add_argument(
        "--porcelain",
        nargs="?",
        const="v1",
        choices=["v1"],
        help="the short form for scripts (stable, no colour, paths from the top)",
    )
    p.add_argument("-b", "--branch", action="store_true", help="short forms: a ## branch line")
    p.add_argument("-z", action="store_true", help="short forms: NUL-terminated, unquoted")
    p.add_argument("--json", action="store_true", help="one JSON object")


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
    state = _state(repo, st)
    if args.json:
        import json

        sys.stdout.write(json.dumps(state) + "\n")
        return 0
    if args.short or args.porcelain or args.z:
        end = "\0" if args.z else "\n"
        lines = [_branch_line(state)] if args.branch else []
        for c in state["changes"]:
            path = c["path"] if args.z else quote_path(c["path"], quote_space=True)
            if "from" in c:  # git: "R  old -> new"; with -z "R  new\0old"
                old = c["from"] if args.z else quote_path(c["from"], quote_space=True)
                path = f"{path}\0{old}" if args.z else f"{old} -> {path}"
            lines.append(f"{c['status']} {path}")
        sys.stdout.write("".join(line + end for line in lines))
        return 0
    sys.stdout.write("".join(line + "\n" for line in _long(state, st.head is None)))
    for s in st.skipped:
        sys.stdout.write(f"warning: skipped (name cannot be stored): {s}\n")
    return 0


def _state(repo: Repository, st: Any) -> dict[str, Any]:
    """Everything status reports, as the --json object (the other forms are drawn from it)."""
    from muse.cli.cmd_branch import tracking_state
    from muse.core.merge import conflicted_paths, merge_head
    from muse.core.worktree import status_letter

    branch = repo.current_branch()
    tracking = tracking_state(repo, branch, st.head) if branch and st.head else None
    merging = merge_head(repo)
    conflicts = sorted(conflicted_paths(repo)) if merging is not None else []
    unmerged = set(conflicts)
    changes: list[dict[str, Any]] = []
    from muse.cli.cmd_diff import worktree_renames

    rest, renames = worktree_renames(repo, [c for c in st.changes if c[0] not in unmerged])
    for path, old, new in rest:
        letter = status_letter(old, new)
        changes.append({"path": path, "kind": KINDS[letter], "status": letter + " "})
    for old_path, path, _ in renames:
        changes.append({"path": path, "from": old_path, "kind": "renamed", "status": "R "})
    for path in conflicts:
        changes.append({"path": path, "kind": _conflict_kind(repo, merging, path)})
        changes[-1]["status"] = "UU"
    changes.sort(key=lambda c: c["path"])
    return {
        "branch": branch,
        "head": st.head.hex() if st.head else None,
        "upstream": tracking and tracking["upstream"],
        "ahead": tracking and tracking["ahead"],
        "behind": tracking and tracking["behind"],
        "upstream_gone": bool(tracking and tracking["gone"]),
        "merging": merging is not None,
        "merge_head": merging.hex() if merging else None,
        "conflicts": conflicts,
        "changes": changes,
        "clean": not changes,
    }


def _conflict_kind(repo: Repository, theirs: bytes | None, path: str) -> str:
    """git's label for an unmerged path: which sides still have it."""
    ours_tree = repo.head_tree()
    theirs_tree = repo.read_commit(theirs).tree if theirs else None
    in_ours = _has(repo, ours_tree, path)
    in_theirs = _has(repo, theirs_tree, path)
    if in_ours and in_theirs:
        return "both modified"
    return "deleted by them" if in_ours else "deleted by us"


def _has(repo: Repository, tree: bytes | None, path: str) -> bool:
    from muse.core.objects import MODE_TREE
    from muse.core.treediff import tree_reader

    get = tree_reader(repo.store)
    *dirs, name = path.split("/")
    try:
        for d in dirs:
            entry = get(tree).get(d)
            if entry is None or entry[0] != MODE_TREE:
                return False
            tree = entry[1]
        return name in get(tree)
    except Exception:  # noqa: BLE001 - a missing tree: the side does not have the path
        return False


def _counted(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _tracking_lines(state: dict[str, Any]) -> list[str]:
    """git's "Your branch is ahead of 'origin/main' by 2 commits." and its siblings."""
    up = state["upstream"]
    if up is None:
        return []
    ahead, behind = state["ahead"], state["behind"]
    if state["upstream_gone"]:
        return [
            f"Your branch is based on '{up}', but the upstream is gone.",
            '  (use "muse branch --unset-upstream" to fixup)',
        ]
    if ahead is None:
        return [f"Your branch tracks '{up}' (its history is incomplete here)."]
    if ahead and behind:
        return [
            f"Your branch and '{up}' have diverged,",
            f"and have {ahead} and {behind} different commits each, respectively.",
            '  (use "muse pull" to merge the remote branch into yours)',
        ]
    if ahead:
        return [
            f"Your branch is ahead of '{up}' by {_counted(ahead, 'commit')}.",
            '  (use "muse push" to publish your local commits)',
        ]
    if behind:
        return [
            f"Your branch is behind '{up}' by {_counted(behind, 'commit')}, "
            "and can be fast-forwarded.",
            '  (use "muse pull" to update your local branch)',
        ]
    return [f"Your branch is up to date with '{up}'."]


def _long(state: dict[str, Any], unborn: bool) -> list[str]:
    out = []
    if state["branch"] is not None:
        out.append(f"On branch {state['branch']}")
    elif state["head"] is not None:
        out.append(f"HEAD detached at {state['head'][:12]}")
    out += _tracking_lines(state)
    if unborn:
        out += ["", "No commits yet"]
    if state["merging"]:
        if state["conflicts"]:
            out += [
                "",
                "You have unmerged paths.",
                '  (fix conflicts and run "muse commit")',
                '  (use "muse merge --abort" to abort the merge)',
            ]
        else:
            out += [
                "",
                "All conflicts fixed but you are still merging.",
                '  (use "muse commit" to conclude merge)',
            ]
    changes = [c for c in state["changes"] if c["status"] != "UU"]
    unmerged = [c for c in state["changes"] if c["status"] == "UU"]
    if unmerged:
        out += ["", "Unmerged paths:", '  (use "muse resolve <file>..." to mark resolution)']
        out += [f"  {c['kind'] + ':':<17}{quote_path(c['path'])}" for c in unmerged]
    if changes:
        out += ["", "Changes (commit with 'muse commit -m <message>'):"]
        out += [f"  {c['kind'] + ':':<12}{_shown(c)}" for c in changes]
    if not state["changes"]:
        out += ["", "nothing to commit, working tree clean"]
    return out


def _shown(c: dict[str, Any]) -> str:
    """A change's path in the long form; a rename as ``old -> new``."""
    if "from" in c:
        return f"{quote_path(c['from'])} -> {quote_path(c['path'])}"
    return quote_path(c["path"])


def _branch_line(state: dict[str, Any]) -> str:
    """The ``## main...origin/main [ahead 2, behind 1]`` line of ``status -sb``."""
    if state["branch"] is None:
        return "## HEAD (no branch)"
    if state["head"] is None:
        return f"## No commits yet on {state['branch']}"
    line = f"## {state['branch']}"
    if state["upstream"] is None:
        return line
    line += f"...{state['upstream']}"
    if state["upstream_gone"]:
        return line + " [gone]"
    parts = []
    if state["ahead"]:
        parts.append(f"ahead {state['ahead']}")
    if state["behind"]:
        parts.append(f"behind {state['behind']}")
    return line + (f" [{', '.join(parts)}]" if parts else "")


_ESCAPES = {7: "a", 8: "b", 9: "t", 10: "n", 11: "v", 12: "f", 13: "r", 34: '"', 92: "\\"}


def quote_path(path: str, quote_space: bool = False) -> str:
    """A path as git prints it (core.quotePath on): in double quotes with C escapes and
    octal bytes when it holds a quote, a backslash, a control or non-ASCII character (or,
    in the short forms, a space)."""
    raw = path.encode("utf-8", "surrogateescape")
    if not any(b < 0x20 or b >= 0x7F or b in (34, 92) or (quote_space and b == 32) for b in raw):
        return path
    out = ['"']
    for b in raw:
        if b in _ESCAPES:
            out.append("\\" + _ESCAPES[b])
        elif b < 0x20 or b >= 0x7F:
            out.append(f"\\{b:03o}")
        else:
            out.append(chr(b))
    out.append('"')
    return "".join(out)
