"""Three-way merge of one file's contents, line by line, with git's conflict markers.

Two sides that changed different lines of a text file merge cleanly; where they changed the
same lines differently, only that hunk is wrapped in ``<<<<<<< ours`` / ``=======`` /
``>>>>>>> theirs`` (with ``||||||| base`` and the base's lines in between for the ``diff3``
style, as git's ``merge.conflictStyle``). A binary file (git's rule: a NUL in the first 8,000
bytes) is never merged by lines and never gets markers: the caller keeps both versions.

The hunk alignment is ``merge3`` (PyPI; breezy's three-way merge, the algorithm of GNU
diff3 on difflib's matching blocks): on the cases that matter here (edits to different
lines, overlapping edits, insertions at the same place, one side deleting lines) it gives
git's result, and a hand-written copy would be the same algorithm again.
"""

from __future__ import annotations

from muse.core.record import Record

#: git's conflict styles (merge.conflictStyle / --conflict=).
STYLES = ("merge", "diff3")


class LineMerge(Record):
    _fields = ("data", "conflicts")

    def __init__(self, data: bytes, conflicts: int) -> None:
        self.data = data  # the merged bytes, with markers around each conflicting hunk
        self.conflicts = conflicts  # how many hunks conflict (0: a clean merge)


def merge_lines(
    base: bytes,
    ours: bytes,
    theirs: bytes,
    ours_label: str = "ours",
    theirs_label: str = "theirs",
    base_label: str = "base",
    style: str = "merge",
) -> LineMerge:
    """Merge two edits of ``base``. Raises ValueError for a binary input (do not merge)."""
    import merge3

    from muse.core.textdiff import is_binary

    if is_binary(base) or is_binary(ours) or is_binary(theirs):
        raise ValueError("binary content is not merged line by line")
    if style not in STYLES:
        raise ValueError(f"unknown conflict style {style!r} (merge or diff3)")
    m = merge3.Merge3(
        base.splitlines(keepends=True),
        ours.splitlines(keepends=True),
        theirs.splitlines(keepends=True),
    )
    out: list[bytes] = []
    conflicts = 0

    def block(lines: list[bytes]) -> None:
        out.extend(lines)
        if lines and not lines[-1].endswith(b"\n"):
            out.append(b"\n")  # a marker always starts a line

    for group in m.merge_groups():
        kind = group[0]
        if kind == "conflict":
            conflicts += 1
            base_lines, our_lines, their_lines = group[1], group[2], group[3]  # type: ignore[misc]
            out.append(b"<<<<<<< " + ours_label.encode("utf-8", "replace") + b"\n")
            block(list(our_lines))
            if style == "diff3":
                out.append(b"||||||| " + base_label.encode("utf-8", "replace") + b"\n")
                block(list(base_lines))
            out.append(b"=======\n")
            block(list(their_lines))
            out.append(b">>>>>>> " + theirs_label.encode("utf-8", "replace") + b"\n")
        else:
            out.extend(group[1])
    return LineMerge(b"".join(out), conflicts)


def has_markers(data: bytes) -> bool:
    """Whether text still holds a whole conflict (a line starting ``<<<<<<< `` followed by
    ``=======`` and ``>>>>>>> `` lines), as ``muse commit`` checks before it records it."""
    start = data.find(b"<<<<<<< ")
    while start != -1:
        if start == 0 or data[start - 1 : start] == b"\n":
            mid = data.find(b"\n=======\n", start)
            if mid != -1 and data.find(b"\n>>>>>>> ", mid) != -1:
                return True
        start = data.find(b"<<<<<<< ", start + 1)
    return False
