"""What user names, repository names and ledger ids may look like: the one place that says so.

Every name a client sends (in a path, a query or a JSON body) is checked here before any query
uses it. A text that no row could hold (a NUL, a lone surrogate, a character outside the
rules) is answered like a name that does not exist, without asking the database: PostgreSQL
refuses NUL bytes in text and SQLite cannot encode lone surrogates, and either refusal would
otherwise become a 500 instead of the 404 every backend owes.
"""

from __future__ import annotations

import re
from typing import Any

from musehub.errors import HubError

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
SLUG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
#: Ids of ``deferred_deletions`` rows (upload ids are 32 hex digits; bundle names are longer).
LEDGER_ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: First path segments the hub itself uses: no user may take them as a name.
RESERVED_NAMES = {"api", "_storage", "healthz", "openapi.json", "static", "admin", "login"}


def is_username(name: object) -> bool:
    """Whether some user could have this name (the database is not asked)."""
    return isinstance(name, str) and NAME_RE.fullmatch(name) is not None


def is_slug(slug: object) -> bool:
    """Whether some repository could have this name (the database is not asked)."""
    return isinstance(slug, str) and SLUG_RE.fullmatch(slug) is not None


def is_ledger_id(row_id: object) -> bool:
    return isinstance(row_id, str) and LEDGER_ID_RE.fullmatch(row_id) is not None


def check_username(name: Any) -> str:
    """A name for a new user; 400 otherwise."""
    if not is_username(name) or name.endswith(".git"):
        raise HubError(
            400,
            "bad_request",
            f"invalid user name {name!r}: letters, digits, '_', '.', '-' (at most 64)",
        )
    if name.lower() in RESERVED_NAMES:
        raise HubError(400, "bad_request", f"the name {name!r} is reserved")
    return str(name)


def check_slug(slug: Any) -> str:
    """A name for a new repository; 400 otherwise."""
    if not is_slug(slug) or slug.endswith((".git", ".lock")) or ".." in slug:
        raise HubError(
            400,
            "bad_request",
            f"invalid repository name {slug!r}: letters, digits, '_', '.', '-' (at most 100)",
        )
    return str(slug)
