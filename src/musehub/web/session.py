"""Signing in to the web view with a token: the session cookie and the forms' CSRF check.

The cookie never holds the token: it holds the token's SHA-256 (what the database keeps)
and when it was issued, signed with the hub's ``secret_key`` (itsdangerous). Every request
looks the token up again, so revoking or expiring the token ends its web sessions too. The
cookie is HttpOnly, SameSite=Lax, Secure when the page came over https, and lives
``web_session_max_age_s``.

The two forms (sign in, sign out) carry a CSRF value that must equal a random cookie of
their own (SameSite=Strict, so another site's page can neither read nor send it), and a
POST whose ``Origin`` is another site is refused outright.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response

from musehub.auth import Principal, expand_scopes, hash_token, principal_for_token
from musehub.db import Token, now
from musehub.errors import HubError

SESSION_COOKIE = "muse_session"
CSRF_COOKIE = "muse_csrf"
_SALT = "musehub.web.session"


def _serializer(request: Request) -> Any:
    from itsdangerous import URLSafeTimedSerializer

    return URLSafeTimedSerializer(request.app.state.hub.settings.secret_key, salt=_SALT)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def sign_in(request: Request, response: Response, token: str) -> Principal:
    """Check ``token`` (401 if it is not good) and give ``response`` the session cookie."""
    hub = request.app.state.hub
    with hub.db.session(readonly=True) as s:
        principal = principal_for_token(s, token)
    value = _serializer(request).dumps({"h": hash_token(token)})
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=hub.settings.web_session_max_age_s,
        path="/",
        httponly=True,
        secure=_secure(request),
        samesite="lax",
    )
    return principal


def sign_out(request: Request, response: Response) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, secure=_secure(request), samesite="lax"
    )


def session_principal(request: Request) -> Principal | None:
    """The caller of a page: the session cookie's token while it is still good, else
    anonymous (a stale or forged cookie is ignored, not an error). Blocking."""
    from itsdangerous import BadSignature

    value = request.cookies.get(SESSION_COOKIE)
    if not value:
        return None
    hub = request.app.state.hub
    try:
        data = _serializer(request).loads(value, max_age=hub.settings.web_session_max_age_s)
    except BadSignature:
        return None
    token_hash = data.get("h") if isinstance(data, dict) else None
    if not isinstance(token_hash, str):
        return None
    with hub.db.session(readonly=True) as s:
        row = s.execute(select(Token).where(Token.token_hash == token_hash)).scalar_one_or_none()
        if row is None or row.revoked_at is not None:
            return None
        if row.expires_at is not None and row.expires_at <= now():
            return None
        scopes = tuple(expand_scopes(row.scopes))
        return Principal(
            user_id=row.user_id,
            username=row.user.username,
            is_admin=bool(row.user.is_admin) and "admin" in scopes,
            scopes=scopes,
            token_id=row.id,
        )


def csrf_value(request: Request) -> str:
    """The CSRF value the page's forms carry (the cookie's, or a new one)."""
    current = request.cookies.get(CSRF_COOKIE, "")
    if len(current) == 43 and current.replace("-", "").replace("_", "").isalnum():
        return current
    return secrets.token_urlsafe(32)


def set_csrf_cookie(request: Request, response: Response, value: str) -> None:
    response.set_cookie(
        CSRF_COOKIE, value, path="/", httponly=True, secure=_secure(request), samesite="strict"
    )


def check_csrf(request: Request, form_value: object) -> None:
    """403 ``csrf_failed`` unless the form's value matches its cookie and the request came
    from this hub's own pages."""
    origin = request.headers.get("origin")
    if origin is not None:
        own = f"{request.url.scheme}://{request.url.netloc}"
        if origin != own:
            raise HubError(403, "csrf_failed", "form posted from another site")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not (
        isinstance(form_value, str)
        and cookie
        and hmac.compare_digest(cookie.encode(), form_value.encode())
    ):
        raise HubError(403, "csrf_failed", "the form has expired: reload the page and try again")
