"""muse diff: changes between the working tree and a commit, or between two commits.

The output is git's: ``diff --git`` patches with the hunks of :mod:`muse.core.textdiff`,
renames paired by :mod:`muse.core.renames`, ``--stat``, ``--numstat``, ``--name-status``,
``--name-only``; ``--exit-code``/``--quiet`` answer 1 when anything differs. The patch writer
here is also what ``muse show`` and ``muse log -p`` print.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from muse.core.repo import Repository
    from muse.core.treediff import Change

Entry = tuple[int, bytes]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("args", nargs="*", metavar="REV|PATH", help="[A [B] | A..B | A...B] [--] PATH")
    add_format_arguments(p)
    p.add_argument("--exit-code", action="store_true", help="exit 1 when there are changes")
    p.add_argument("--quiet", action="store_true", help="print nothing; implies --exit-code")


def add_format_arguments(p: argparse.ArgumentParser) -> None:
    """The options diff, show and log share."""
    p.add_argument("-p", "--patch", action="store_true", help="the patch (diff's default)")
    p.add_argument("--stat", action="store_true", help="a histogram of changed lines")
    p.add_argument("--numstat", action="store_true", help="added and removed lines, per path")
    p.add_argument("--name-only", action="store_true", help="only the changed paths")
    p.add_argument("--name-status", action="store_true", help="status letter and path")
    p.add_argument("-U", "--unified", type=int, default=3, metavar="N", help="lines of context")
    p.add_argument(
        "-M",
        "--find-renames",
        nargs="?",
        const="50",
        default="50",
        metavar="N",
        help="pair renames at N%% similarity (default 50)",
    )
    p.add_argument("--no-renames", action="store_true", help="show renames as delete + add")


def takeback_rename_value(args: argparse.Namespace, positionals: list[str]) -> list[str]:
    """``-M`` takes its percentage attached (``-M40``), as in git: a separate word that
    argparse gave it (``diff -M HEAD~1``) goes back to the positionals."""
    value = str(args.find_renames)
    if value.rstrip("%").isdigit():
        return positionals
    args.find_renames = "50"
    return [value, *positionals]


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import open_repo

    repo = open_repo()
    args.args = takeback_rename_value(args, args.args)
    revs, paths = split_args(repo, args.args)
    old, new, extra, worktree = _sides(repo, revs)
    changed = write_diff(
        sys.stdout.buffer, repo, old, new, args, paths=paths, extra=extra, worktree=worktree
    )
    return 1 if changed and (args.exit_code or args.quiet) else 0


def split_args(repo: Repository, items: list[str]) -> tuple[list[str], list[str]]:
    """Revisions, then paths: at ``--`` when given, else git's rule (what resolves is a rev)."""
    from muse.core.repo import UnknownRevision
    from muse.errors import NotFound

    argv = sys.argv[1:]
    if "--" in argv:
        after = argv[argv.index("--") + 1 :]
        n = len(items) - len(after)
        return items[:n], items[n:]
    revs: list[str] = []
    for i, item in enumerate(items):
        try:
            for part in [x for x in item.replace("...", "..").split("..") if x] or [item]:
                repo.resolve(part.removeprefix("^"))
        except (UnknownRevision, ValueError):
            rest = items[i:]
            for path in rest:
                if not os.path.lexists(os.path.join(repo.root, path)):
                    raise NotFound(
                        f"ambiguous argument {path!r}: unknown revision or path not in the "
                        "working tree (use '--' to separate paths from revisions)"
                    ) from None
            return revs, rest
        revs.append(item)
    return revs, []


def _sides(
    repo: Repository, revs: list[str]
) -> tuple[bytes | None, bytes | None, dict[bytes, bytes] | None, bool]:
    """(old tree, new tree, tree bodies not in the store, whether new is the working tree)."""
    from muse.cli._util import resolve
    from muse.core.graph import merge_base
    from muse.core.objects import EMPTY_TREE_ID
    from muse.core.worktree import scan
    from muse.errors import NotFound, UsageError

    def tree(rev: str) -> bytes:
        return repo.read_commit(resolve(repo, rev)).tree

    if len(revs) > 2:
        raise UsageError("diff takes at most two revisions")
    if len(revs) == 1 and ".." in revs[0]:
        sym = "..." in revs[0]
        a, b = revs[0].split("..." if sym else "..", 1)
        a, b = a or "HEAD", b or "HEAD"
        if sym:
            base = merge_base(repo.store, resolve(repo, a), resolve(repo, b))
            if base is None:
                raise NotFound(f"{a} and {b} have no common ancestor")
            return repo.read_commit(base).tree, tree(b), None, False
        return tree(a), tree(b), None, False
    if len(revs) == 2:
        return tree(revs[0]), tree(revs[1]), None, False
    if revs:
        old = tree(revs[0])
    else:
        old = repo.head_tree() or EMPTY_TREE_ID
    result, _ = scan(repo)
    return old, result.tree, result.trees, True


_GIT_MODE = {1: "100644", 2: "100755", 3: "120000", 5: "100644", 6: "100755"}
_ZERO = "0" * 12


class _Reader:
    """File contents and sizes from the store, or from the working tree for the new side."""

    def __init__(self, repo: Repository, worktree: bool) -> None:
        self.repo, self.worktree = repo, worktree

    def _on_disk(self, new: bool) -> bool:
        return new and self.worktree

    def read(self, path: str, entry: Entry, new: bool) -> bytes:
        from muse.core.objects import BLOB, MODE_LINK

        if self._on_disk(new):
            full = os.path.join(self.repo.root, path)
            if entry[0] == MODE_LINK:
                return os.fsencode(os.readlink(full))
            with open(full, "rb") as f:
                return f.read()
        return self.repo.store.get_kind(entry[1], BLOB)

    def size(self, path: str, entry: Entry, new: bool) -> int:
        """A chunked file's size without reading its content."""
        from muse.core.objects import CHUNKS, decode_chunks

        if self._on_disk(new):
            return os.lstat(os.path.join(self.repo.root, path)).st_size
        return decode_chunks(self.repo.store.get_kind(entry[1], CHUNKS))[0]


class _FilePair:
    """One entry of the diff: old and new path and entry, with its contents on demand."""

    def __init__(
        self,
        reader: _Reader,
        old_path: str,
        new_path: str,
        old: Entry | None,
        new: Entry | None,
        score: int | None = None,
    ) -> None:
        self.reader, self.old_path, self.new_path = reader, old_path, new_path
        self.old, self.new, self.score = old, new, score

    def _content(self, entry: Entry | None, path: str, new: bool) -> bytes | None:
        """The content, or None for a chunked file (compared by id, never read)."""
        from muse.core.objects import CHUNKED_MODES

        if entry is None:
            return b""
        if entry[0] in CHUNKED_MODES:
            return None
        return self.reader.read(path, entry, new)

    def contents(self) -> tuple[bytes | None, bytes | None]:
        return (
            self._content(self.old, self.old_path, False),
            self._content(self.new, self.new_path, True),
        )

    def sizes(self, a: bytes | None, b: bytes | None) -> tuple[int, int]:
        def one(data: bytes | None, entry: Entry | None, path: str, new: bool) -> int:
            if entry is None:
                return 0
            return len(data) if data is not None else self.reader.size(path, entry, new)

        return one(a, self.old, self.old_path, False), one(b, self.new, self.new_path, True)

    @property
    def letter(self) -> str:
        from muse.core.objects import MODE_LINK

        if self.score is not None:
            return f"R{self.score:03d}"
        if self.old is None:
            return "A"
        if self.new is None:
            return "D"
        if (self.old[0] == MODE_LINK) != (self.new[0] == MODE_LINK):
            return "T"
        return "M"


def _pairs(
    repo: Repository,
    old: bytes | None,
    new: bytes | None,
    args: argparse.Namespace,
    paths: list[str],
    extra: dict[bytes, bytes] | None,
    worktree: bool,
) -> list[_FilePair]:
    from muse.core.renames import Rename, detect_renames
    from muse.core.treediff import diff_trees, tree_reader

    changes: list[Change] = list(diff_trees(tree_reader(repo.store, extra), old, new))
    if paths:
        tops = [p.rstrip("/") for p in paths]
        changes = [
            c
            for c in changes
            if any(t in ("", ".") or c[0] == t or c[0].startswith(t + "/") for t in tops)
        ]
    reader = _Reader(repo, worktree)
    renames: list[Rename] = []
    if not args.no_renames:
        try:
            threshold = int(str(args.find_renames).rstrip("%"))
        except ValueError:
            from muse.errors import UsageError

            raise UsageError(f"-M: not a percentage: {args.find_renames!r}") from None
        changes, renames = detect_renames(changes, reader.read, threshold)
    out: list[tuple[str, _FilePair]] = []
    for path, a, b in changes:
        out.append((path, _FilePair(reader, path, path, a, b)))
    for op, np_, a, b, score in renames:
        out.append((np_, _FilePair(reader, op, np_, a, b, score)))
    out.sort(key=lambda x: x[0])
    return [p for _, p in out]


_ESCAPES = {7: "a", 8: "b", 9: "t", 10: "n", 11: "v", 12: "f", 13: "r", 34: '"', 92: "\\"}


def quote(path: str) -> str:
    """A path as git prints it (core.quotePath on): in double quotes with C escapes and
    octal bytes when it holds a quote, a backslash, a control or a non-ASCII character."""
    raw = path.encode("utf-8", "surrogateescape")
    if not any(b < 0x20 or b >= 0x7F or b in (34, 92) for b in raw):
        return path
    out = []
    for b in raw:
        if b in _ESCAPES:
            out.append("\\" + _ESCAPES[b])
        elif b < 0x20 or b >= 0x7F:
            out.append(f"\\{b:03o}")
        else:
            out.append(chr(b))
    return '"' + "".join(out) + '"'


def write_diff(
    out: BinaryIO,
    repo: Repository,
    old: bytes | None,
    new: bytes | None,
    args: argparse.Namespace,
    paths: list[str] | None = None,
    extra: dict[bytes, bytes] | None = None,
    worktree: bool = False,
) -> bool:
    """Print the difference of two trees in the form args ask for; True when any differs."""
    pairs = _pairs(repo, old, new, args, paths or [], extra, worktree)
    if getattr(args, "quiet", False):
        return bool(pairs)
    if args.name_only:
        out.write("".join(quote(p.new_path) + "\n" for p in pairs).encode())
    elif args.name_status:
        for p in pairs:
            names = [p.old_path, p.new_path] if p.score is not None else [p.new_path]
            names = [quote(n) for n in names]
            out.write("\t".join([p.letter, *names]).encode("utf-8", "surrogateescape") + b"\n")
    elif args.numstat or args.stat:
        _write_stat(out, pairs, numstat=args.numstat)
    else:
        for p in pairs:
            write_patch(out, p, args.unified)
    out.flush()
    return bool(pairs)


def _counts(p: _FilePair) -> tuple[int, int, tuple[int, int] | None]:
    """(added, removed, sizes when binary)."""
    from muse.core.textdiff import count_changes, is_binary

    a, b = p.contents()
    if a is None or b is None or is_binary(a) or is_binary(b):
        return 0, 0, p.sizes(a, b)
    added, removed = count_changes(a, b)
    return added, removed, None


def _stat_name(p: _FilePair) -> str:
    if p.score is not None:
        return f"{quote(p.old_path)} => {quote(p.new_path)}"
    return quote(p.new_path)


def _write_stat(out: BinaryIO, pairs: list[_FilePair], numstat: bool) -> None:
    rows = [(p, *_counts(p)) for p in pairs]
    if numstat:
        for p, added, removed, sizes in rows:
            nums = "-\t-" if sizes else f"{added}\t{removed}"
            out.write(f"{nums}\t{_stat_name(p)}\n".encode("utf-8", "surrogateescape"))
        return
    if not rows:
        return
    name_w, num_w, graph_w = _stat_widths(rows)
    max_change = max((a + r for _, a, r, s in rows if s is None), default=0)
    ins = dels = 0
    for p, added, removed, sizes in rows:
        name = _stat_name(p)
        if len(name) > name_w:  # git cuts a long name from the left, at a "/" if it can
            tail = name[len(name) - name_w + 3 :]
            slash = tail.find("/")
            name = "..." + (tail[slash:] if slash >= 0 else tail)
        name = name.ljust(name_w)
        if sizes:
            line = f" {name} | {'Bin':>{num_w}} {sizes[0]} -> {sizes[1]} bytes"
        else:
            ins, dels = ins + added, dels + removed
            total = added + removed
            if graph_w <= max_change:  # git's scaling: the total, then the smaller side
                both = _scale(total, graph_w, max_change)
                if both < 2 and added and removed:
                    both = 2
                if added < removed:
                    plus = _scale(added, graph_w, max_change)
                    minus = both - plus
                else:
                    minus = _scale(removed, graph_w, max_change)
                    plus = both - minus
            else:
                plus, minus = added, removed
            graph = "+" * plus + "-" * minus
            line = f" {name} | {total:>{num_w}}" + (f" {graph}" if graph else "")
        out.write(line.encode("utf-8", "surrogateescape") + b"\n")
    n = len(rows)
    summary = f" {n} file{'s' if n != 1 else ''} changed"
    if ins or not dels:
        summary += f", {ins} insertion{'s' if ins != 1 else ''}(+)"
    if dels or not ins:
        summary += f", {dels} deletion{'s' if dels != 1 else ''}(-)"
    out.write(summary.encode() + b"\n")


def _stat_widths(
    rows: list[tuple[_FilePair, int, int, tuple[int, int] | None]],
) -> tuple[int, int, int]:
    """(name, number, graph) column widths for 80 columns, as git's show_stats sizes them."""
    width = 80
    max_change = max((a + r for _, a, r, s in rows if s is None), default=0)
    bins = [len(f"Bin {s[0]} -> {s[1]} bytes") for *_, s in rows if s]
    num_w = max(len(str(max_change)), 3 if bins else 0)
    bin_w = max(bins, default=0)
    graph_w = max_change if max_change + 4 > bin_w else bin_w - 4
    name_w = max(len(_stat_name(p)) for p, *_ in rows)
    if name_w + num_w + 6 + graph_w > width:
        if graph_w > width * 3 // 8 - num_w - 6:
            graph_w = max(width * 3 // 8 - num_w - 6, 6)
        if name_w > width - num_w - 6 - graph_w:
            name_w = width - num_w - 6 - graph_w
        else:
            graph_w = width - num_w - 6 - name_w
    return name_w, num_w, graph_w


def _scale(n: int, width: int, max_change: int) -> int:
    # git's scale_linear
    return 0 if not n else 1 + (n * (width - 1) // max_change)


def write_patch(out: BinaryIO, p: _FilePair, context: int = 3) -> None:
    """One file's ``diff --git`` block, as git prints it."""
    from muse.core.objects import MODE_LINK
    from muse.core.textdiff import format_hunks, is_binary, unified_hunks

    if p.old is not None and p.new is not None and p.score is None:
        if (p.old[0] == MODE_LINK) != (p.new[0] == MODE_LINK):  # git: a deletion, then an add
            write_patch(out, _FilePair(p.reader, p.old_path, p.old_path, p.old, None), context)
            write_patch(out, _FilePair(p.reader, p.new_path, p.new_path, None, p.new), context)
            return
    a_name, b_name = quote("a/" + p.old_path), quote("b/" + p.new_path)
    head = [f"diff --git {a_name} {b_name}"]
    if p.old is None and p.new is not None:
        head.append(f"new file mode {_GIT_MODE[p.new[0]]}")
    elif p.new is None and p.old is not None:
        head.append(f"deleted file mode {_GIT_MODE[p.old[0]]}")
    else:
        assert p.old is not None and p.new is not None
        if _GIT_MODE[p.old[0]] != _GIT_MODE[p.new[0]]:
            head += [f"old mode {_GIT_MODE[p.old[0]]}", f"new mode {_GIT_MODE[p.new[0]]}"]
        if p.score is not None:
            head += [
                f"similarity index {p.score}%",
                f"rename from {quote(p.old_path)}",
                f"rename to {quote(p.new_path)}",
            ]
    same = p.old is not None and p.new is not None and p.old[1] == p.new[1]
    if not same:
        ids = [e[1].hex()[:12] if e else _ZERO for e in (p.old, p.new)]
        mode = ""
        if p.old is not None and p.new is not None and _GIT_MODE[p.old[0]] == _GIT_MODE[p.new[0]]:
            mode = " " + _GIT_MODE[p.new[0]]
        elif p.old is None or p.new is None:
            mode = ""
        head.append(f"index {ids[0]}..{ids[1]}{mode}")
    out.write("".join(line + "\n" for line in head).encode("utf-8", "surrogateescape"))
    if same:
        return
    a, b = p.contents()
    src = "/dev/null" if p.old is None else a_name
    dst = "/dev/null" if p.new is None else b_name
    if a is None or b is None or is_binary(a) or is_binary(b):
        line = f"Binary files {src} and {dst} differ\n"
        out.write(line.encode("utf-8", "surrogateescape"))
        return
    hunks = unified_hunks(a, b, context)
    if not hunks:
        return
    out.write(f"--- {src}\n+++ {dst}\n".encode("utf-8", "surrogateescape"))
    out.write(format_hunks(hunks))


def pairs_between(
    repo: Repository, old: bytes | None, new: bytes | None, args: argparse.Namespace
) -> list[_FilePair]:
    """The file pairs of two stored trees (show and log use it)."""
    return _pairs(repo, old, new, args, [], None, False)


def worktree_renames(
    repo: Repository, changes: list[Change]
) -> tuple[list[Change], list[tuple[str, str, int]]]:
    """Status's renames: (changes left, (old path, new path, similarity)) of HEAD against
    the working tree, paired as ``muse diff`` pairs them (default 50 %)."""
    from muse.core.renames import detect_renames

    rest, renames = detect_renames(changes, _Reader(repo, True).read)
    return rest, [(old, new, score) for old, new, _, _, score in renames]
