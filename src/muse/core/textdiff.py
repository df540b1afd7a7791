"""Line diffs of two byte strings, as git prints them: the binary test and unified hunks.

The client's ``diff``/``show``/``log -p`` and the hub's web view print the same patches, so
the rules live here, free of any output concerns: a file is binary when a NUL byte occurs in
its first 8,000 bytes (git's ``buffer_is_binary``); hunks carry 3 lines of context, join when
at most twice that many unchanged lines separate two changes, name the nearest preceding
line that starts with a letter, ``_`` or ``$`` after the ``@@`` (git's default funcname
rule, 80 bytes at most, trailing space trimmed) and mark a last line without a newline with
``\\ No newline at end of file``.

The matching is the stdlib's ``difflib.SequenceMatcher`` (``autojunk=False``) on the lines
between the common ends, chosen by measurement against ``patiencediff`` (PyPI, Rust core,
from the Breezy project) and ``myers`` (PyPI, pure Python), each followed by the compaction
below, against git 2.39's own hunks: on 300 random edits of 2,000-line files with many
distinct lines both agreed 300/300; on 40 edits of 300-line files of only 40 distinct lines
(repetitive text, where patience has few unique anchors) difflib agreed 40/40 and
patiencediff 26/40 (its hunks correct but longer than git's). difflib's cost grows with the
product of the sizes (a 20,000-line file with 200 scattered edits: difflib 2.5 s,
patiencediff 0.04 s), so when both changed middles exceed ``DIFFLIB_MAX_LINES`` lines
patiencediff takes over. ``myers`` copies its whole history at each step (quadratic memory)
and was dropped.

Changed runs are then slid as git's ``xdl_change_compact`` slides them (to meet a change on
the other side, else by git's indent heuristic), which is what makes the hunks git's.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from muse.core.record import Frozen

__all__ = [
    "BINARY_PROBE",
    "Hunk",
    "count_changes",
    "format_hunks",
    "is_binary",
    "split_lines",
    "unified_hunks",
]

#: How many leading bytes git inspects for a NUL to call a file binary.
BINARY_PROBE = 8000
NO_NEWLINE = b"\\ No newline at end of file\n"
_FUNCNAME_MAX = 80


def is_binary(data: bytes) -> bool:
    """True when a NUL byte occurs in the first 8,000 bytes, git's rule."""
    return b"\0" in data[:BINARY_PROBE]


def split_lines(data: bytes) -> list[bytes]:
    """The lines of data, each with its newline (the last may lack one)."""
    # bytes.splitlines would also split at \r, \v, \f and \x1c-\x1e; git splits at \n only.
    if not data:
        return []
    parts = data.split(b"\n")
    lines = [p + b"\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


class Hunk(Frozen):
    """One ``@@`` block: 1-based starts (git's convention for empty ranges), counts, lines.

    ``lines`` holds (tag, line) with tag ``b" "``, ``b"-"`` or ``b"+"`` and the line with
    its newline, if it has one; ``funcname`` is the text git prints after the second ``@@``.
    """

    __slots__ = ("old_start", "old_count", "new_start", "new_count", "funcname", "lines")

    old_start: int
    old_count: int
    new_start: int
    new_count: int
    funcname: bytes
    lines: tuple[tuple[bytes, bytes], ...]

    def __init__(
        self,
        old_start: int,
        old_count: int,
        new_start: int,
        new_count: int,
        funcname: bytes,
        lines: tuple[tuple[bytes, bytes], ...],
    ) -> None:
        _set = object.__setattr__
        _set(self, "old_start", old_start)
        _set(self, "old_count", old_count)
        _set(self, "new_start", new_start)
        _set(self, "new_count", new_count)
        _set(self, "funcname", funcname)
        _set(self, "lines", lines)

    def header(self) -> bytes:
        """The ``@@ -l,n +l,n @@ funcname`` line, with its newline."""
        old = _range(self.old_start, self.old_count)
        new = _range(self.new_start, self.new_count)
        tail = b" " + self.funcname if self.funcname else b""
        return b"@@ -" + old + b" +" + new + b" @@" + tail + b"\n"


def _range(start: int, count: int) -> bytes:
    # git omits ",1", and names the line before an empty range.
    if count == 1:
        return str(start).encode()
    return f"{start},{count}".encode()


#: Above this many lines on both sides (after the common ends), difflib's cost grows with
#: the product of the sizes; patiencediff takes over there.
DIFFLIB_MAX_LINES = 5000


def _opcodes(a: list[bytes], b: list[bytes]) -> Sequence[tuple[str, int, int, int, int]]:
    """difflib's matching of a against b (patiencediff for two long, changed middles)."""
    lo = 0
    top = min(len(a), len(b))
    while lo < top and a[lo] == b[lo]:
        lo += 1
    hi = 0
    while hi < top - lo and a[-1 - hi] == b[-1 - hi]:
        hi += 1
    ma, mb = a[lo : len(a) - hi], b[lo : len(b) - hi]
    if min(len(ma), len(mb)) > DIFFLIB_MAX_LINES:
        import patiencediff

        ops = patiencediff.PatienceSequenceMatcher(None, ma, mb).get_opcodes()
    else:
        ops = difflib.SequenceMatcher(None, ma, mb, autojunk=False).get_opcodes()
    return [(tag, i1 + lo, i2 + lo, j1 + lo, j2 + lo) for tag, i1, i2, j1, j2 in ops]


def _changed(a: list[bytes], b: list[bytes]) -> tuple[list[bool], list[bool]]:
    """Per line of each side: whether it is removed (a) or added (b), compacted as git does."""
    ca, cb = [False] * (len(a) + 2), [False] * (len(b) + 2)  # a sentinel at each end
    for tag, i1, i2, j1, j2 in _opcodes(a, b):
        if tag != "equal":
            for i in range(i1, i2):
                ca[i + 1] = True
            for j in range(j1, j2):
                cb[j + 1] = True
    _Compactor(a, ca, cb).run()
    _Compactor(b, cb, ca).run()
    return ca[1:-1], cb[1:-1]


class _Group:
    """A run [start, end) of changed lines (possibly empty) between two unchanged ones."""

    __slots__ = ("start", "end", "rchg", "n")

    def __init__(self, rchg: list[bool]) -> None:
        # rchg is offset by one: rchg[i + 1] is line i; rchg[0] and rchg[n + 1] are False.
        self.rchg, self.n = rchg, len(rchg) - 2
        self.start = self.end = 0
        while self.rchg[self.end + 1]:
            self.end += 1

    def next(self) -> bool:
        if self.end == self.n:
            return False
        self.start = self.end = self.end + 1
        while self.rchg[self.end + 1]:
            self.end += 1
        return True

    def previous(self) -> bool:
        if self.start == 0:
            return False
        self.end = self.start = self.start - 1
        while self.rchg[self.start]:
            self.start -= 1
        return True


class _Compactor:
    """git's ``xdl_change_compact``: slide each group to where it reads best.

    A group slides while the line past one end equals the line at its other end (the
    script stays as short); it settles where it meets a change on the other side, else
    where git's indent heuristic scores its edges best.
    """

    def __init__(self, lines: list[bytes], rchg: list[bool], other: list[bool]) -> None:
        self.lines, self.rchg, self.other = lines, rchg, other

    def _down(self, g: _Group) -> bool:
        if g.end < g.n and self.lines[g.start] == self.lines[g.end]:
            self.rchg[g.start + 1] = False
            self.rchg[g.end + 1] = True
            g.start += 1
            g.end += 1
            while self.rchg[g.end + 1]:
                g.end += 1
            return True
        return False

    def _up(self, g: _Group) -> bool:
        if g.start > 0 and self.lines[g.start - 1] == self.lines[g.end - 1]:
            g.start -= 1
            g.end -= 1
            self.rchg[g.start + 1] = True
            self.rchg[g.end + 1] = False
            while self.rchg[g.start]:
                g.start -= 1
            return True
        return False

    def run(self) -> None:
        g, go = _Group(self.rchg), _Group(self.other)
        while True:
            if g.end != g.start:
                self._settle(g, go)
            if not g.next():
                return
            go.next()

    def _settle(self, g: _Group, go: _Group) -> None:
        while True:
            size = g.end - g.start
            matching = -1
            while self._up(g):
                go.previous()
            earliest_end = g.end
            if go.end > go.start:
                matching = g.end
            while self._down(g):
                go.next()
                if go.end > go.start:
                    matching = g.end
            if size == g.end - g.start:
                break
        if g.end == earliest_end:
            return
        if matching != -1:
            while go.end == go.start:
                self._up(g)
                go.previous()
            return
        shift = max(earliest_end, g.end - size - 1, g.end - _MAX_SLIDING)
        best_shift, best = -1, (0, 0)
        for s in range(shift, g.end + 1):
            score = _split_score(self.lines, s, s - size)
            if best_shift == -1 or _score_cmp(score, best) <= 0:
                best, best_shift = score, s
        while g.end > best_shift:
            self._up(g)
            go.previous()


# git's indent heuristic (xdiff/xdiffi.c), its constants as git tuned them.
_MAX_SLIDING = 100
_MAX_INDENT = 200
_MAX_BLANKS = 20
_START_OF_FILE_PENALTY = 1
_END_OF_FILE_PENALTY = 21
_TOTAL_BLANK_WEIGHT = -30
_POST_BLANK_WEIGHT = 6
_RELATIVE_INDENT_PENALTY = -4
_RELATIVE_INDENT_WITH_BLANK_PENALTY = 10
_RELATIVE_OUTDENT_PENALTY = 24
_RELATIVE_OUTDENT_WITH_BLANK_PENALTY = 17
_RELATIVE_DEDENT_PENALTY = 23
_RELATIVE_DEDENT_WITH_BLANK_PENALTY = 17
_INDENT_WEIGHT = 60
_SPACE = frozenset(b" \t\n\v\f\r")


def _indent(line: bytes) -> int:
    """Columns of leading space (tab stops of 8), or -1 for a blank line."""
    ret = 0
    for c in line:
        if c not in _SPACE:
            return ret
        if c == 32:
            ret += 1
        elif c == 9:
            ret += 8 - ret % 8
        if ret >= _MAX_INDENT:
            return _MAX_INDENT
    return -1


def _split_score(lines: list[bytes], *splits: int) -> tuple[int, int]:
    """(effective indent, penalty) of cutting the file before each of ``splits``."""
    eff = pen = 0
    n = len(lines)
    for split in splits:
        eof = split >= n
        ind = -1 if eof else _indent(lines[split])
        pre_blank, pre_indent = 0, -1
        for i in range(split - 1, -1, -1):
            pre_indent = _indent(lines[i])
            if pre_indent != -1:
                break
            pre_blank += 1
            if pre_blank == _MAX_BLANKS:
                pre_indent = 0
                break
        post_blank_run, post_indent = 0, -1
        for i in range(split + 1, n):
            post_indent = _indent(lines[i])
            if post_indent != -1:
                break
            post_blank_run += 1
            if post_blank_run == _MAX_BLANKS:
                post_indent = 0
                break
        if pre_indent == -1 and pre_blank == 0:
            pen += _START_OF_FILE_PENALTY
        if eof:
            pen += _END_OF_FILE_PENALTY
        post_blank = 1 + post_blank_run if ind == -1 else 0
        total_blank = pre_blank + post_blank
        pen += _TOTAL_BLANK_WEIGHT * total_blank + _POST_BLANK_WEIGHT * post_blank
        indent = ind if ind != -1 else post_indent
        blanks = total_blank != 0
        eff += indent
        if indent == -1 or pre_indent == -1 or indent == pre_indent:
            pass
        elif indent > pre_indent:
            pen += _RELATIVE_INDENT_WITH_BLANK_PENALTY if blanks else _RELATIVE_INDENT_PENALTY
        elif post_indent != -1 and post_indent > indent:
            pen += _RELATIVE_OUTDENT_WITH_BLANK_PENALTY if blanks else _RELATIVE_OUTDENT_PENALTY
        else:
            pen += _RELATIVE_DEDENT_WITH_BLANK_PENALTY if blanks else _RELATIVE_DEDENT_PENALTY
    return eff, pen


def _score_cmp(a: tuple[int, int], b: tuple[int, int]) -> int:
    return _INDENT_WEIGHT * ((a[0] > b[0]) - (a[0] < b[0])) + (a[1] - b[1])


def _funcname(a: list[bytes], before: int, prev: list[object]) -> bytes:
    """The nearest line of a above index ``before`` that git would name after ``@@``.

    ``prev`` is [index, name] of the previous hunk's search: hunks come in order, so the
    scan stops there and keeps that answer (git's ``get_func_line`` with its limit).
    """
    limit, found = prev
    assert isinstance(limit, int) and isinstance(found, bytes)
    for k in range(before - 1, limit - 1, -1):
        line = a[k]
        if line[:1].isalpha() or line[:1] in (b"_", b"$"):
            found = line.rstrip(b"\n")[:_FUNCNAME_MAX].rstrip()
            break
    prev[:] = [before, found]
    return found


def unified_hunks(a: bytes, b: bytes, context: int = 3) -> list[Hunk]:
    """The hunks turning a into b with ``context`` lines around each change, git's way."""
    la, lb = split_lines(a), split_lines(b)
    ca, cb = _changed(la, lb)
    # Walk both sides at once into a script of (tag, i, j): lines i of a / j of b.
    script: list[tuple[bytes, int, int]] = []
    i = j = 0
    while i < len(la) or j < len(lb):
        if i < len(la) and ca[i]:
            script.append((b"-", i, j))
            i += 1
        elif j < len(lb) and cb[j]:
            script.append((b"+", i, j))
            j += 1
        else:
            script.append((b" ", i, j))
            i += 1
            j += 1
    changes = [k for k, (tag, _, _) in enumerate(script) if tag != b" "]
    hunks: list[Hunk] = []
    prev: list[object] = [0, b""]
    k = 0
    while k < len(changes):
        first = last = changes[k]
        k += 1
        while k < len(changes) and changes[k] - last - 1 <= 2 * context:
            last = changes[k]
            k += 1
        lo = max(0, first - context)
        hi = min(len(script), last + context + 1)
        body: list[tuple[bytes, bytes]] = []
        old_n = new_n = 0
        for tag, x, y in script[lo:hi]:
            if tag == b"+":
                body.append((tag, lb[y]))
                new_n += 1
            else:
                body.append((tag, la[x]))
                old_n += 1
                new_n += tag == b" "
        _, i0, j0 = script[lo]
        hunks.append(
            Hunk(
                old_start=i0 + 1 if old_n else i0,
                old_count=old_n,
                new_start=j0 + 1 if new_n else j0,
                new_count=new_n,
                funcname=_funcname(la, i0, prev),
                lines=tuple(body),
            )
        )
    return hunks


def format_hunks(hunks: list[Hunk]) -> bytes:
    """The hunks as git prints them, each line with its newline or the no-newline mark."""
    out: list[bytes] = []
    for h in hunks:
        out.append(h.header())
        for tag, line in h.lines:
            out.append(tag + line)
            if not line.endswith(b"\n"):
                out.append(b"\n" + NO_NEWLINE)
    return b"".join(out)


def count_changes(a: bytes, b: bytes) -> tuple[int, int]:
    """(lines added, lines removed) from a to b, as ``--stat`` and ``--numstat`` count."""
    la, lb = split_lines(a), split_lines(b)
    ca, cb = _changed(la, lb)
    return sum(cb), sum(ca)
