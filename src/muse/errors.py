"""The errors of the Muse library: one base class and one subclass per kind of failure.

A kind says what a person can do about it (fix the command line, check the name, get
access, fetch first, retry later, ...), so every layer raises the kind and only the CLI
turns it into an exit code (``muse.cli.errors``). Library exceptions with a specific
meaning (``RefNameError``, ``CheckoutConflict``, ``PackError``, ...) subclass the kind that
describes them; nothing here knows about processes, exit codes or HTTP.
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "HubRefused",
    "MuseError",
    "NetworkError",
    "NoAccess",
    "NotFound",
    "Rejected",
    "UsageError",
]


class MuseError(Exception):
    """A failure the user should see as one line. ``kind`` names what went wrong;
    ``hint`` (optional) is what to try, appended to the message when shown."""

    kind = "general"
    hint = ""

    def __init__(self, message: str = "", *, kind: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        if kind is not None:
            self.kind = kind
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return self.message

    def describe(self) -> str:
        """The line a person reads: the message, then the hint in parentheses."""
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(MuseError):
    """The command line or an argument is wrong (bad option, malformed name)."""

    kind = "usage"


class NotFound(MuseError):
    """Something named does not exist: a repository, revision, remote, hub repository."""

    kind = "not_found"


class NoAccess(MuseError):
    """Authentication is missing or the credentials may not do this."""

    kind = "no_access"


class Rejected(MuseError):
    """Refused because of the state of the refs: not a fast-forward, changed meanwhile."""

    kind = "rejected"


class NetworkError(MuseError):
    """The hub or the store could not be reached, or the connection failed."""

    kind = "network"


class HubRefused(MuseError):
    """The hub understood the request and refused it (bad pack, limits, protocol)."""

    kind = "hub_refused"


class Conflict(MuseError):
    """A merge or checkout stopped because files conflict."""

    kind = "conflict"


#: Every kind, for the CLI's exit-code table and its completeness test.
KINDS = (
    MuseError.kind,
    UsageError.kind,
    NotFound.kind,
    NoAccess.kind,
    Rejected.kind,
    NetworkError.kind,
    HubRefused.kind,
    Conflict.kind,
)
