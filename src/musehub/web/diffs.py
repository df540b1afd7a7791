"""The diff a commit or compare page shows: per file, unified hunks, binaries summarised.

Which files changed comes from ``muse.core.treediff`` (it descends only where ids differ);
binary files (git's rule: a NUL in the first 8000 bytes, or not UTF-8) are summarised with
their sizes; the hunks of text files are to come from ``muse.core.textdiff``, the diff
``muse diff`` prints (not in this build yet: such files are listed with a note). A page stays
bounded however large the change: past MAX_FILES files, or above MAX_FILE_BYTES, a file is
listed with a note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from muse.core.objects import CHUNKED_MODES, MODE_NAMES
from muse.core.treediff import diff_trees
from musehub.web.media import SNIFF_BYTES, is_text
from musehub.web.objects import RepoReader

MAX_FILES = 300
MAX_FILE_BYTES = 1 << 20


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
    f.binary = not (is_text(a[:SNIFF_BYTES]) and is_text(b[:SNIFF_BYTES]))
    if not f.binary:
        # The rows come from muse.core.textdiff (the diff `muse diff` prints), which is not
        # in this build yet; the web view writes no diff of its own.
        f.omitted = "line diff not available in this build"


def summary(files: list[FileDiff]) -> dict[str, Any]:
    return {
        "files": len(files),
        "additions": sum(f.additions for f in files),
        "deletions": sum(f.deletions for f in files),
    }
