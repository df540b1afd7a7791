"""muse log: commit history, filtered and drawn as git's log does.

Revisions select as in git (``B``, ``A..B``, ``^A B``, ``A...B``); ``-- PATH`` keeps the
commits that changed a path, following the parent a merge took the path from (git's default
history simplification); ``--author``, ``--since``/``--until`` filter; ``--graph`` draws the
merges; ``--format`` prints placeholders; ``-p``/``--stat`` add each commit's changes;
``--json`` gives the list to scripts. Commits are read as they are printed, so ``-n 1`` of a
long history reads one commit (and its parents, to order them).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from muse.errors import NotFound, UsageError

if TYPE_CHECKING:
    from muse.core.objects import Commit
    from muse.core.repo import Repository


def add_arguments(p: argparse.ArgumentParser) -> None:
    from muse.cli.cmd_diff import add_format_arguments

    p.add_argument("revisions", nargs="*", help="B, A..B, ^A, A...B (default HEAD); -- PATH")
    p.add_argument("--oneline", action="store_true", help="one line per commit")
    p.add_argument("-n", "--max-count", type=int, default=None, metavar="N")
    p.add_argument("--graph", action="store_true", help="draw the history's branches")
    p.add_argument("--author", metavar="PATTERN", help="commits whose author matches (regex)")
    p.add_argument("--since", "--after", metavar="DATE", help="commits after DATE")
    p.add_argument("--until", "--before", metavar="DATE", help="commits before DATE")
    p.add_argument("--format", metavar="FORMAT", help="placeholders: %%H %%h %%s %%an ...")
    p.add_argument("--pretty", metavar="FORMAT", help="oneline, medium, format:X, tformat:X")
    p.add_argument("--first-parent", action="store_true", help="follow first parents only")
    p.add_argument("--json", action="store_true", help="a JSON list of commits")
    add_format_arguments(p)


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import open_repo
    from muse.cli.cmd_diff import split_args, takeback_rename_value

    repo = open_repo()
    revs, paths = split_args(repo, takeback_rename_value(args, args.revisions))
    tips, hidden = _selection(repo, revs)
    fmt, sep = _format(args)
    author = _regex(args.author) if args.author else None
    since = parse_date(args.since) if args.since else None
    until = parse_date(args.until) if args.until else None
    if args.max_count is not None and args.max_count < 0:
        raise UsageError("-n: a count of commits, 0 or more")
    show_patch = args.patch or args.stat or args.numstat or args.name_only or args.name_status

    def chosen() -> Iterator[tuple[bytes, Commit]]:
        n = 0
        for oid, c in _walk(repo, tips, hidden, paths, args.first_parent or bool(paths)):
            if args.max_count is not None and n >= args.max_count:
                return
            if author and not author.search(f"{c.author.name} <{c.author.email}>"):
                continue
            if since is not None and c.committer.time < since:
                continue
            if until is not None and c.committer.time > until:
                continue
            n += 1
            yield oid, c

    if args.json:
        import json

        sys.stdout.write(json.dumps([_as_json(oid, c) for oid, c in chosen()], indent=1) + "\n")
        return 0
    commits = chosen()
    if args.graph:
        commits = iter(_topo(list(commits)))
    graph = _Graph() if args.graph else None
    out = sys.stdout
    patched = False
    for i, (oid, c) in enumerate(commits):
        block = _render(oid, c, fmt)
        if i and fmt is None and not patched:
            out.write((graph.prefix() if graph is not None else "") + "\n")
        elif i and sep == "":
            out.write("\n")
        if graph is not None:
            block = graph.draw(oid, list(c.parents), block)
        out.write("\n".join(block) + sep)
        patched = show_patch and (len(c.parents) <= 1 or args.first_parent)
        if patched:
            if fmt is None:
                out.write("\n")
            out.flush()
            _changes(repo, c, args, paths)
    return 0


def _selection(repo: Repository, revs: list[str]) -> tuple[list[bytes], list[bytes]]:
    """(tips to walk, tips whose history is hidden) from B, ^A, A..B and A...B."""
    from muse.cli._util import resolve
    from muse.core.graph import merge_base

    tips: list[bytes] = []
    hidden: list[bytes] = []
    for rev in revs:
        if "..." in rev:
            a, b = (x or "HEAD" for x in rev.split("...", 1))
            oa, ob = resolve(repo, a), resolve(repo, b)
            tips += [oa, ob]
            base = merge_base(repo.store, oa, ob)
            if base is not None:
                hidden.append(base)
        elif ".." in rev:
            a, b = (x or "HEAD" for x in rev.split("..", 1))
            hidden.append(resolve(repo, a))
            tips.append(resolve(repo, b))
        elif rev.startswith("^"):
            hidden.append(resolve(repo, rev[1:]))
        else:
            tips.append(resolve(repo, rev))
    if not tips and not revs:
        head = repo.head_commit()
        if head is None:
            branch = repo.current_branch() or "HEAD"
            raise NotFound(f"your current branch '{branch}' has no commits yet")
        tips = [head]
    return tips, hidden


def _entry_at(repo: Repository, tree: bytes | None, path: str) -> tuple[int, bytes] | None:
    from muse.core.objects import MODE_TREE
    from muse.core.treediff import tree_reader

    get = tree_reader(repo.store)
    parts = [p for p in path.strip("/").split("/") if p not in ("", ".")]
    if not parts:
        return (MODE_TREE, tree) if tree is not None else None
    entry: tuple[int, bytes] | None = None
    for i, name in enumerate(parts):
        if tree is None:
            return None
        entry = get(tree).get(name)
        if entry is None:
            return None
        tree = entry[1] if entry[0] == MODE_TREE else None
        if tree is None and i < len(parts) - 1:
            return None
    return entry


def _walk(
    repo: Repository, tips: list[bytes], hidden: list[bytes], paths: list[str], first: bool
) -> Iterator[tuple[bytes, Commit]]:
    """Commits newest first, without hidden history, simplified to those touching paths."""
    import heapq

    from muse.core.graph import ancestors

    excluded: set[bytes] = set()
    for h in hidden:
        excluded |= ancestors(repo.store, h) | {h}
    seen: set[bytes] = set()
    heap: list[tuple[int, int, bytes, Commit]] = []
    n = 0

    def push(oid: bytes) -> None:
        nonlocal n
        if oid in seen or oid in excluded:
            return
        seen.add(oid)
        c = repo.read_commit(oid)
        heapq.heappush(heap, (-c.committer.time, n, oid, c))
        n += 1

    for t in tips:
        push(t)
    while heap:
        _, _, oid, c = heapq.heappop(heap)
        parents = c.parents[:1] if first and not paths else c.parents
        if not paths:
            yield oid, c
            for p in parents:
                push(p)
            continue
        mine = [_entry_at(repo, c.tree, p) for p in paths]
        same = [
            p
            for p in c.parents
            if [_entry_at(repo, repo.read_commit(p).tree, q) for q in paths] == mine
        ]
        if same:  # TREESAME to a parent: the path came from there; follow only it
            push(same[0])
            continue
        if c.parents or any(e is not None for e in mine):
            yield oid, c
        for p in c.parents:
            push(p)


def _topo(commits: list[tuple[bytes, Commit]]) -> list[tuple[bytes, Commit]]:
    """Children before parents (git's --topo-order, which --graph implies), newest first."""
    by_id = {oid: c for oid, c in commits}
    children: dict[bytes, int] = {oid: 0 for oid in by_id}
    for _, c in commits:
        for p in c.parents:
            if p in children:
                children[p] += 1
    order: list[tuple[bytes, Commit]] = []
    ready = [oid for oid, _ in commits if children[oid] == 0]
    index = {oid: i for i, (oid, _) in enumerate(commits)}
    while ready:
        ready.sort(key=lambda o: index[o])
        oid = ready.pop(0)
        order.append((oid, by_id[oid]))
        for p in by_id[oid].parents:
            if p in children:
                children[p] -= 1
                if children[p] == 0:
                    ready.insert(0, p)  # depth first along the parent, as git draws
    return order


class _Graph:
    """git's ASCII graph: one column per line of descent, ``*`` for the commit."""

    def __init__(self) -> None:
        self.cols: list[bytes] = []

    def prefix(self) -> str:
        return " ".join("|" for _ in self.cols)

    def draw(self, oid: bytes, parents: list[bytes], block: list[str]) -> list[str]:
        """The block's lines behind the graph: the commit's row, then the lines of descent
        as its parents leave them (a merge opens columns, a shared parent closes one)."""
        if oid not in self.cols:
            self.cols.append(oid)
        c = self.cols.index(oid)
        old, new = list(self.cols), list(self.cols)
        extra = [p for p in parents[1:] if p not in new]
        removed = None
        if not parents:
            new.pop(c)
            removed = c if c < len(new) else None
        elif parents[0] in new and new.index(parents[0]) != c:
            j = new.index(parents[0])
            removed = max(c, j)
            new[c] = parents[0]
            new.pop(removed)
        else:
            new[c] = parents[0]
        for k, p in enumerate(extra):
            new.insert(c + 1 + k, p)
        self.cols = new
        width = 2 * max(len(old), len(new), 1)
        row = " ".join("*" if i == c else "|" for i in range(len(old)))
        lines = [f"{row.ljust(width - 1)} {block[0]}"]
        shape = None
        if extra:
            parts = ["|"] * c + ["|" + "\\" * len(extra)] + ["\\"] * (len(old) - c - 1)
            shape = " ".join(parts)
        elif removed is not None:
            chars = [" "] * (2 * len(old))
            for i in range(len(old)):
                if i < removed:
                    chars[2 * i] = "|"
                else:
                    chars[2 * i - 1] = "/"
            shape = "".join(chars).rstrip()
        rest = block[1:]
        if shape is not None:
            head = rest.pop(0) if rest else ""
            lines.append(
                f"{shape.ljust(width)}{head}".rstrip() if not head else shape.ljust(width) + head
            )
        pre = self.prefix().ljust(width)
        lines += [(pre + line) if line else pre.rstrip() for line in rest]
        return lines


def _format(args: argparse.Namespace) -> tuple[str | None, str]:
    """(format: None for git's medium, "oneline", or a placeholder string; terminator)."""
    pretty = args.pretty
    if args.format is not None:
        pretty = "tformat:" + args.format
    if args.oneline:
        pretty = "oneline"
    if pretty is None or pretty == "medium":
        return None, "\n"
    if pretty == "oneline":
        return "oneline", "\n"
    if pretty.startswith("tformat:"):
        return pretty[8:], "\n"
    if pretty.startswith("format:"):
        return pretty[7:], ""
    if "%" in pretty:
        return pretty, "\n"
    raise UsageError(f"invalid --pretty format: {pretty!r} (oneline, medium, format:, tformat:)")


def _render(oid: bytes, c: Commit, fmt: str | None) -> list[str]:
    from muse.cli._util import format_date, short

    if fmt == "oneline":
        return [f"{short(oid)} {_subject(c.message)}"]
    if fmt is not None:
        return expand(fmt, oid, c).split("\n")
    out = [f"commit {oid.hex()}"]
    if len(c.parents) > 1:
        out.append("Merge: " + " ".join(short(p) for p in c.parents))
    out.append(f"Author: {c.author.name} <{c.author.email}>")
    out.append(f"Date:   {format_date(c.author.time, c.author.tz_minutes)}")
    out.append("")
    out += [f"    {line}" if line else "" for line in c.message.rstrip("\n").split("\n")]
    return out


def _subject(message: str) -> str:
    return " ".join(message.strip("\n").split("\n\n", 1)[0].split("\n"))


def _body(message: str) -> str:
    parts = message.strip("\n").split("\n\n", 1)
    return parts[1].strip("\n") + "\n" if len(parts) > 1 else ""


_PLACEHOLDER = re.compile(r"%(H|h|T|t|P|p|s|b|B|an|ae|ad|ar|at|aI|cn|ce|cd|cr|ct|cI|n|%)")


def expand(fmt: str, oid: bytes, c: Commit) -> str:
    """git's ``--format`` placeholders for one commit (unknown ones are printed as given)."""
    from muse.cli._util import format_date, short

    def date(sig: Any, kind: str) -> str:
        if kind == "d":
            return format_date(sig.time, sig.tz_minutes)
        if kind == "r":
            return relative_date(sig.time, int(time.time()))
        if kind == "t":
            return str(sig.time)
        t = time.gmtime(sig.time + sig.tz_minutes * 60)
        off = abs(sig.tz_minutes)
        sign = "+" if sig.tz_minutes >= 0 else "-"
        return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f"{sign}{off // 60:02d}:{off % 60:02d}"

    def one(m: re.Match[str]) -> str:
        k = m.group(1)
        values = {
            "H": lambda: oid.hex(),
            "h": lambda: short(oid),
            "T": lambda: c.tree.hex(),
            "t": lambda: short(c.tree),
            "P": lambda: " ".join(p.hex() for p in c.parents),
            "p": lambda: " ".join(short(p) for p in c.parents),
            "s": lambda: _subject(c.message),
            "b": lambda: _body(c.message),
            "B": lambda: c.message,
            "n": lambda: "\n",
            "%": lambda: "%",
        }
        if k in values:
            return values[k]()
        sig = c.author if k[0] == "a" else c.committer
        if k[1] == "n":
            return str(sig.name)
        if k[1] == "e":
            return str(sig.email)
        return date(sig, k[1])

    return _PLACEHOLDER.sub(one, fmt)


def relative_date(when: int, now: int) -> str:
    """git's "3 days ago" wording (show_date_relative)."""
    diff = now - when
    if diff < 0:
        return "in the future"
    if diff < 90:
        return _ago(diff, "second")
    diff = (diff + 30) // 60
    if diff < 90:
        return _ago(diff, "minute")
    diff = (diff + 30) // 60
    if diff < 36:
        return _ago(diff, "hour")
    diff = (diff + 12) // 24
    if diff < 14:
        return _ago(diff, "day")
    if diff < 70:
        return _ago((diff + 3) // 7, "week")
    if diff < 365:
        return _ago((diff + 15) // 30, "month")
    years = diff // 365
    return _ago(years, "year")


def _ago(n: int, unit: str) -> str:
    return f"{n} {unit}{'' if n == 1 else 's'} ago"


_UNITS = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "week": 7 * 86400,
    "month": 30 * 86400,
    "year": 365 * 86400,
}


def parse_date(text: str, now: int | None = None) -> int:
    """A moment from an ISO date ("2024-01-31", "2024-01-31 12:00", with T and zone), a
    relative one ("2 weeks ago", "yesterday", "now") or "@SECONDS"."""
    import datetime as dt

    now = int(time.time()) if now is None else now
    t = text.strip().lower()
    if t.startswith("@") and t[1:].isdigit():
        return int(t[1:])
    if t == "now":
        return now
    if t == "yesterday":
        return now - 86400
    m = re.fullmatch(r"(\d+)[ .]*(second|minute|hour|day|week|month|year)s?([ .]*ago)?", t)
    if m:
        return now - int(m.group(1)) * _UNITS[m.group(2)]
    try:
        d = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"not a date: {text!r} (use 2024-01-31, '2024-01-31 12:00' or '2 weeks ago')"
        ) from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.UTC)
    return int(d.timestamp())


def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise UsageError(f"--author: not a regular expression: {pattern!r} ({e})") from None


def _as_json(oid: bytes, c: Commit) -> dict[str, Any]:
    def sig(s: Any) -> dict[str, Any]:
        return {"name": s.name, "email": s.email, "time": s.time, "tz_minutes": s.tz_minutes}

    return {
        "id": oid.hex(),
        "tree": c.tree.hex(),
        "parents": [p.hex() for p in c.parents],
        "author": sig(c.author),
        "committer": sig(c.committer),
        "subject": _subject(c.message),
        "message": c.message,
    }


def _changes(repo: Repository, c: Commit, args: argparse.Namespace, paths: list[str]) -> None:
    """A commit's changes against its first parent, in the form args ask for."""
    from muse.cli.cmd_diff import write_diff
    from muse.core.objects import EMPTY_TREE_ID

    base = repo.read_commit(c.parents[0]).tree if c.parents else EMPTY_TREE_ID
    write_diff(sys.stdout.buffer, repo, base, c.tree, args, paths=paths)
