"""Who is calling, and what they may do (docs/wire.md §2).

Tokens: ``mh_`` + 32 random bytes (URL-safe base64), shown once; only their SHA-256 is kept.
A token carries scopes ``read`` < ``write`` < ``admin`` (each implies the ones before it),
may expire and may be revoked.

- :func:`authenticate` reads ``Authorization: Bearer <token>``: no header is an anonymous
  caller (None); a header with a malformed, unknown, expired or revoked token is **401**
  ``unauthorized`` (never silently anonymous). Synchronous (one indexed query): call it in a
  thread pool. The result is cached on the request.
- :func:`resolve_repo` finds ``owner/slug`` and checks access: anyone reads a public
  repository; a private one is readable by its owner, collaborators and admins, and is
  **404** ``repo_not_found`` to everyone else, exactly like a missing one. Writing needs the
  owner, a collaborator or an admin (else 401 when anonymous, 403 ``forbidden``) and a token
  with the ``write`` scope. ``need="admin"`` (delete, collaborators) needs the owner or an admin.
- An admin is a user flagged ``is_admin`` calling with a token that has the ``admin`` scope;
  an admin may do anything.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from starlette.requests import Request

from musehub.db import Collaborator, Repo, Token, User, now
from musehub.errors import HubError, rate_limited
from musehub.names import is_slug, is_username

SCOPES = ("read", "write", "admin")
TOKEN_PREFIX = "mh_"
#: last_used is refreshed at most this often, so reads do not all become writes.
LAST_USED_GRANULARITY_S = 60

Need = Literal["read", "write", "admin"]


def scope_level(scope: str) -> int:
    try:
        return SCOPES.index(scope)
    except ValueError:
        raise ValueError(f"unknown scope {scope!r} (read, write or admin)") from None


def expand_scopes(scopes: str | list[str] | tuple[str, ...]) -> list[str]:
    """Normalise scopes: ``"write"`` or ``["write"]`` -> ``["read", "write"]``."""
    items = scopes.split(",") if isinstance(scopes, str) else list(scopes)
    items = [s.strip() for s in items if s.strip()]
    if not items:
        raise ValueError("a token needs at least one scope")
    top = max(scope_level(s) for s in items)
    return list(SCOPES[: top + 1])


#: The longest life a token may be given (``expires_days``): a hundred years.
MAX_EXPIRES_DAYS = 36_500


def token_expiry(days: float | None) -> int | None:
    """The ``expires_at`` (Unix seconds) of a token that lives ``days``; None never expires.
    ValueError unless 0 < days <= MAX_EXPIRES_DAYS (no infinity, NaN or 2**63)."""
    if days is None:
        return None
    if not (0 < days <= MAX_EXPIRES_DAYS):  # also False for NaN
        raise ValueError(f"expires_days must be positive and at most {MAX_EXPIRES_DAYS}")
    return now() + int(days * 86400)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    user_id: int
    username: str
    is_admin: bool  # the user is an admin AND the token has the admin scope
    scopes: tuple[str, ...]
    token_id: int

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


def create_token(
    session: Session,
    user: User,
    scopes: str | list[str] = "write",
    expires_at: int | None = None,
    description: str | None = None,
) -> str:
    """Store a new token for ``user``; returns the token (its only appearance in clear)."""
    token = new_token()
    session.add(
        Token(
            user_id=user.id,
            token_hash=hash_token(token),
            scopes=",".join(expand_scopes(scopes)),
            expires_at=expires_at,
            description=description,
        )
    )
    session.flush()
    return token


def principal_for_token(session: Session, token: str) -> Principal:
    """The caller a token stands for; HubError 401 if it is unknown, expired or revoked."""
    principal, _ = _lookup(session, token)
    return principal


def _lookup(session: Session, token: str) -> tuple[Principal, bool]:
    """(principal, whether its last_used is stale and should be refreshed)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        raise HubError(401, "unauthorized", "invalid token")
    row = session.execute(
        select(Token).where(Token.token_hash == hash_token(token))
    ).scalar_one_or_none()
    t = now()
    if row is None:
        raise HubError(401, "unauthorized", "invalid token")
    if row.revoked_at is not None:
        raise HubError(401, "unauthorized", "token revoked")
    if row.expires_at is not None and row.expires_at <= t:
        raise HubError(401, "unauthorized", "token expired")
    if row.user.disabled:
        raise HubError(403, "user_disabled", f"user {row.user.username!r} is disabled")
    scopes = tuple(expand_scopes(row.scopes))
    principal = Principal(
        user_id=row.user_id,
        username=row.user.username,
        is_admin=bool(row.user.is_admin) and "admin" in scopes,
        scopes=scopes,
        token_id=row.id,
    )
    stale = row.last_used is None or row.last_used < t - LAST_USED_GRANULARITY_S
    return principal, stale


def touch_token(session: Session, token_id: int) -> None:
    session.execute(update(Token).where(Token.id == token_id).values(last_used=now()))


def parse_bearer(header: str) -> str | None:
    """The token of an ``Authorization`` value (scheme in any case, spaces around), or None
    when it is not ``Bearer <token>``. The one reading, shared with the rate limiter's key."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def bearer_token(request: Request) -> str | None:
    """The token of the Authorization header; None without one; 401 if malformed."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    token = parse_bearer(header)
    if token is None:
        raise HubError(
            401,
            "unauthorized",
            "expected 'Authorization: Bearer <token>'",
            {"WWW-Authenticate": "Bearer"},
        )
    return token


_UNSET = object()


def authenticate(request: Request, session: Session | None = None) -> Principal | None:
    """The caller of ``request`` (None if anonymous); raises HubError 401 for a bad token.

    Synchronous: it queries the database (in ``session`` when given, so that a route needs one
    transaction for the caller and its own reads). The result is cached in ``request.state``.
    A stale last_used is refreshed afterwards by :func:`refresh_last_used`, which the caller
    runs once its session is closed; without a session this function does it itself.
    """
    cached = getattr(request.state, "principal", _UNSET)
    if cached is not _UNSET:
        return cached if isinstance(cached, Principal) else None
    failures = _failure_limiter(request)
    address = request.client.host if request.client else "?"
    if failures is not None and request.headers.get("authorization") is not None:
        wait = failures.wait(address)
        if wait:  # this address keeps sending bad tokens: no more lookups for a while
            raise rate_limited(
                f"more than {failures.per_minute} failed authentications per minute", wait
            )
    principal: Principal | None = None
    stale = False
    try:
        token = bearer_token(request)
        if token is not None:
            if session is not None:
                principal, stale = _lookup(session, token)
            else:
                # Read-only: on SQLite this takes no write lock; last_used is refreshed
                # separately, at most once a minute per token.
                with request.app.state.hub.db.session(readonly=True) as s:
                    principal, stale = _lookup(s, token)
    except HubError as e:
        if e.status == 401 and failures is not None:
            failures.hit(address)
        raise
    if principal is not None and stale:
        request.state.touch_token = principal.token_id
        if session is None:
            refresh_last_used(request)
    request.state.principal = principal
    return principal


def _failure_limiter(request: Request) -> Any:
    """The app's ``musehub.ratelimit.RateLimiter`` of failed authentications per client
    address (``app.state.auth_failures``), or None when unlimited. Not imported: the rate
    limiter reads tokens with :func:`parse_bearer`, so it sits above this module."""
    limiter = getattr(request.app.state, "auth_failures", None)
    return limiter if limiter is not None and limiter.per_minute > 0 else None


def refresh_last_used(request: Request) -> None:
    """Record the use of a token whose last_used was stale (a write, at most once a minute)."""
    token_id = getattr(request.state, "touch_token", None)
    if token_id is None:
        return
    request.state.touch_token = None
    with request.app.state.hub.db.session() as s:
        touch_token(s, token_id)


def require_principal(request: Request) -> Principal:
    """:func:`authenticate`, but anonymous is 401."""
    principal = authenticate(request)
    if principal is None:
        raise HubError(
            401, "unauthorized", "authentication required", {"WWW-Authenticate": "Bearer"}
        )
    return principal


def can_write(session: Session, principal: Principal | None, repo: Repo) -> bool:
    if principal is None:
        return False
    if principal.is_admin or repo.owner_id == principal.user_id:
        return True
    return (
        session.execute(
            select(Collaborator.user_id).where(
                Collaborator.repo_id == repo.id, Collaborator.user_id == principal.user_id
            )
        ).first()
        is not None
    )


def can_read(session: Session, principal: Principal | None, repo: Repo) -> bool:
    return not repo.private or can_write(session, principal, repo)


def resolve_repo(
    session: Session,
    principal: Principal | None,
    owner: str,
    slug: str,
    need: Need | str = "read",
) -> Repo:
    """The repository ``owner/slug`` if ``principal`` may ``need`` it; else HubError."""
    not_found = HubError(404, "repo_not_found", f"repository {owner}/{slug} not found")
    if not (is_username(owner) and is_slug(slug)):
        raise not_found  # no repository has such a name: the database is not asked
    repo = session.execute(
        select(Repo)
        .join(User, Repo.owner_id == User.id)
        .where(User.username == owner, Repo.slug == slug)
    ).scalar_one_or_none()
    if repo is None:
        raise not_found
    writer = can_write(session, principal, repo)
    if repo.private and not writer:
        raise not_found
    if need not in ("read", "write", "admin"):
        raise ValueError(f"need must be read, write or admin, not {need!r}")
    if need == "read":
        return repo
    if principal is None:
        raise HubError(
            401, "unauthorized", "authentication required", {"WWW-Authenticate": "Bearer"}
        )
    if need == "admin":
        if not (principal.is_admin or repo.owner_id == principal.user_id):
            raise HubError(403, "forbidden", f"only the owner of {owner}/{slug} may do this")
    elif not writer:
        raise HubError(403, "forbidden", f"no write access to {owner}/{slug}")
    if not principal.has_scope("write"):
        raise HubError(403, "forbidden", "this token has read scope only")
    return repo
