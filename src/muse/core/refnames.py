"""Ref names: the one place that says which names are valid (git's check-ref-format rules).

Used by the local store, the hub and the client, so a name refused in one is refused in all.
"""

from __future__ import annotations

from muse.errors import UsageError

HEADS = "refs/heads/"
TAGS = "refs/tags/"
REMOTES = "refs/remotes/"
MAX_LEN = 255
_FORBIDDEN = set(" ~^:?*[\\") | {chr(c) for c in range(32)} | {"\x7f"}


class RefNameError(UsageError, ValueError):
    """A ref or branch name that is not allowed; the message says why."""


def check_ref_name(name: str) -> str:
    """Validate a full ref name such as ``refs/heads/main``; returns it."""
    if not isinstance(name, str) or not name.startswith("refs/"):
        raise RefNameError(f"invalid ref name {name!r}: must start with 'refs/'")
    _check_components(name, name)
    if name.count("/") < 2:
        raise RefNameError(f"invalid ref name {name!r}: must be refs/<kind>/<name>")
    return name


def check_branch_name(name: str) -> str:
    """Validate a short branch name such as ``main`` or ``feature/x``; returns it."""
    if not isinstance(name, str) or not name:
        raise RefNameError("a branch name cannot be empty")
    if name.startswith("-"):
        raise RefNameError(f"invalid branch name {name!r}: cannot start with '-'")
    if name == "HEAD" or name.startswith("refs/"):
        raise RefNameError(f"invalid branch name {name!r}")
    _check_components(name, name)
    return name


def _check_components(name: str, shown: str) -> None:
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") from JSON: not a name on disk
        raise RefNameError(f"invalid name {shown!r}: not valid Unicode text") from None
    if len(encoded) > MAX_LEN:
        raise RefNameError(f"invalid name {shown!r}: longer than {MAX_LEN} bytes")
    if name.endswith("/") or name.endswith(".") or name == "@":
        raise RefNameError(f"invalid name {shown!r}")
    if ".." in name or "@{" in name or "//" in name:
        raise RefNameError(f"invalid name {shown!r}: contains '..', '@{{' or '//'")
    bad = _FORBIDDEN.intersection(name)
    if bad:
        raise RefNameError(f"invalid name {shown!r}: contains {sorted(bad)[0]!r}")
    for comp in name.split("/"):
        if not comp or comp.startswith(".") or comp.endswith(".lock"):
            raise RefNameError(f"invalid name {shown!r}: bad component {comp!r}")


def branch_ref(branch: str) -> str:
    return HEADS + check_branch_name(branch)
