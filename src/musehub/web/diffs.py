"""The diff a commit or compare page shows: per file, unified hunks, binaries summarised.

Which files changed comes from ``muse.core.treediff`` (it descends only where ids differ);
binaries (git's rule: a NUL in the first 8000 bytes) are summarised with their sizes, and the
hunks of text files come from ``muse.core.textdiff``, the same diff ``muse diff`` prints. A
page stays bounded however large the change: past MAX_FILES files, above MAX_FILE_BYTES, or
past MAX_LINES rows, a file is listed with a note instead of its lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from muse.core.objects import CHUNKED_MODES, MODE_NAMES
from muse.core.treediff import diff_trees
from musehub.web.media import SNIFF_BYTES
from musehub.web.objects import RepoReader

MAX_FILES = 300
MAX_FILE_BYTES = 1 << 20
MAX_LINES = 5000


@dataclass
class FileDiff:
    """One changed file: how it changed and, for text, its unified lines
    (kind ``hunk``/``ctx``/``add``/``del``, old line number, new line number, text)."""

    path: str
    status: str  # added, deleted, modified, mode changed
    binary: bool = False
    old_size: int | None = None
    new_size: int | None = None
    additions: int = 0
    deletions: int = 0
    omitted: str = ""
    lines: list[tuple[str, int | None, int | None, str]] = field(default_factory=list)


def diff(reader: RepoReader, old_tree: bytes | None, new_tree: bytes) -> list[FileDiff]:
    out: list[FileDiff] = []
    for path, old, new in diff_trees(reader.tree_map, old_tree, new_tree):
        if old is None:
            status = "added"
        elif new is None:
            status = "deleted"
        elif old[1] == new[1]:
            status = "mode changed"
        else:
            status = "modified"
        f = FileDiff(path, status)
        if old is not None:
            f.old_size = reader.file_size(*old)
        if new is not None:
            f.new_size = reader.file_size(*new)
        if status == "mode changed":
            f.omitted = f"mode {MODE_NAMES[old[0]]} \u2192 {MODE_NAMES[new[0]]}"  # type: ignore[index]
        elif len(out) >= MAX_FILES:
            f.omitted = f"not shown: more than {MAX_FILES} files changed"
        else:
            _fill(reader, f, old, new)
        out.append(f)
    return out


def _content(reader: RepoReader, entry: tuple[int, bytes] | None) -> bytes:
    if entry is None:
        return b""
    return reader.head(entry[0], entry[1], MAX_FILE_BYTES + 1)


def _fill(
    reader: RepoReader, f: FileDiff, old: tuple[int, bytes] | None, new: tuple[int, bytes] | None
) -> None:
    if max(f.old_size or 0, f.new_size or 0) > MAX_FILE_BYTES:
        chunked = any(e is not None and e[0] in CHUNKED_MODES for e in (old, new))
        f.binary = chunked
        f.omitted = "" if chunked else "not shown: the file is too large"
        return
    a, b = _content(reader, old), _content(reader, new)
    try:
        from muse.core import textdiff  # type: ignore[attr-defined,unused-ignore]
    except ImportError:  # a build without muse.core.textdiff: binaries by the same rule
        f.binary = b"\0" in a[:SNIFF_BYTES] or b"\0" in b[:SNIFF_BYTES]
        f.omitted = "" if f.binary else "line diff not available in this build"
        return
    if textdiff.is_binary(a) or textdiff.is_binary(b):
        f.binary = True
        return
    f.lines = rows(textdiff.unified_hunks(a, b))
    f.additions = sum(1 for row in f.lines if row[0] == "add")
    f.deletions = sum(1 for row in f.lines if row[0] == "del")
    if len(f.lines) > MAX_LINES:
        f.lines = []
        f.omitted = f"not shown: more than {MAX_LINES} lines changed"


Row = tuple[str, int | None, int | None, str]


def rows(hunks: list[Any]) -> list[Row]:
    """textdiff's hunks as table rows, numbered on both sides: ``hunk`` (the @@ line),
    ``ctx``, ``del``, ``add``, and ``note`` for git's missing-newline mark."""
    out: list[Row] = []
    for h in hunks:
        out.append(("hunk", None, None, h.header().decode("utf-8", "replace").rstrip("\n")))
        old_no, new_no = h.old_start, h.new_start
        for tag, line in h.lines:
            text = line.decode("utf-8", "replace").removesuffix("\n")
            if tag == b"+":
                out.append(("add", None, new_no, text))
                new_no += 1
            elif tag == b"-":
                out.append(("del", old_no, None, text))
                old_no += 1
            else:
                out.append(("ctx", old_no, new_no, text))
                old_no += 1
                new_no += 1
            if not line.endswith(b"\n"):
                out.append(("note", None, None, "\\ No newline at end of file"))
    return out


def summary(files: list[FileDiff]) -> dict[str, Any]:
    return {
        "files": len(files),
        "additions": sum(f.additions for f in files),
        "deletions": sum(f.deletions for f in files),
    }
