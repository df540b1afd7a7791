"""``.museignore``: gitignore-style patterns (globs, ``dir/``, ``!negation``, ``**``, ``/x``).

A ``.museignore`` in any directory applies to that directory and below; later patterns win,
and a file inside an ignored directory cannot be re-included (the scan never enters it).
``.muse/`` itself is never tracked, whatever the patterns say.
"""

from __future__ import annotations

import re

from muse.core.record import Frozen

IGNORE_FILE = ".museignore"


class Rule(Frozen):
    """One line of a .museignore, compiled."""

    __slots__ = ("regex", "negate", "dir_only", "anchored", "base")

    regex: re.Pattern[str]
    negate: bool
    dir_only: bool
    anchored: bool  # match the path relative to base, not just the basename
    base: str  # directory (relative to the root, "" for the root) holding the ignore file

    def __init__(
        self, regex: re.Pattern[str], negate: bool, dir_only: bool, anchored: bool, base: str
    ) -> None:
        _set = object.__setattr__
        _set(self, "regex", regex)
        _set(self, "negate", negate)
        _set(self, "dir_only", dir_only)
        _set(self, "anchored", anchored)
        _set(self, "base", base)


def _glob_to_regex(glob: str) -> str:
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            if glob.startswith("**", i):
                before_ok = i == 0 or glob[i - 1] == "/"
                after = glob[i + 2 : i + 3]
                if before_ok and after == "/":
                    out.append("(?:.*/)?")
                    i += 3
                    continue
                if before_ok and i + 2 == n:
                    out.append(".*")
                    i += 2
                    continue
                out.append("[^/]*")
                i += 2
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i + 1
            if j < n and glob[j] in "!^":
                j += 1
            if j < n and glob[j] == "]":
                j += 1
            while j < n and glob[j] != "]":
                j += 1
            if j >= n:
                out.append(re.escape(c))
            else:
                body = glob[i + 1 : j]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(glob[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def parse(text: str, base: str = "") -> list[Rule]:
    rules: list[Rule] = []
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        # trailing spaces are ignored unless escaped
        while line.endswith(" ") and not line.endswith("\\ "):
            line = line[:-1]
        if not line or line.startswith("#"):
            continue
        negate = False
        if line.startswith("!"):
            negate, line = True, line[1:]
        elif line.startswith("\\!") or line.startswith("\\#"):
            line = line[1:]
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        anchored = "/" in line
        line = line.lstrip("/")
        rx = re.compile(_glob_to_regex(line) + r"\Z", re.DOTALL)
        rules.append(Rule(rx, negate, dir_only, anchored, base))
    return rules


def is_ignored(rules: list[Rule], rel: str, name: str, is_dir: bool) -> bool:
    """Whether the path rel (relative to the root; name is its last component) is ignored."""
    result = False
    for r in rules:
        if r.dir_only and not is_dir:
            continue
        if r.anchored:
            if r.base:
                if not rel.startswith(r.base + "/"):
                    continue
                subject = rel[len(r.base) + 1 :]
            else:
                subject = rel
        else:
            subject = name
        if r.regex.match(subject):
            result = not r.negate
    return result
