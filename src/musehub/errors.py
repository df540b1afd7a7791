"""Errors as the wire contract says: every failure is ``{"error": code, "message": text}``.

Routes raise :class:`HubError`; :func:`install_error_handlers` turns it (and Starlette's own
HTTP errors) into that JSON body. Anything else that escapes a route is a bug: the app logs it
with its traceback and answers a JSON 500 (see ``musehub.app``), never an HTML page.

:func:`read_json` is the one way routes read a JSON request body, so that wrong content types,
oversized and malformed bodies all get the same 4xx answers everywhere.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ExceptionHandler

from muse.wire.messages import MessageError, parse_json

#: Default error code for a bare HTTP status (used for Starlette's own errors, e.g. 404/405).
STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    411: "length_required",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "bad_request",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
    507: "insufficient_storage",
}

#: Seconds a client is asked to wait when a part of the hub is down (it recovers within
#: about a second of the part coming back: connections are checked before use).
UNAVAILABLE_RETRY_AFTER = "2"

#: JSON request bodies of the API are small; anything bigger is refused unread.
MAX_JSON_BYTES = 1 << 20
#: No request body of the API nests deeper than a few levels; deeper is refused as invalid
#: (so that no later recursive walk, repr or dump of the value can exhaust the stack).
MAX_JSON_DEPTH = 32
#: Error messages may quote what the client sent; they are cut to this many characters.
MAX_MESSAGE_CHARS = 1000


class HubError(Exception):
    """An answer other than success: HTTP status, a stable machine code, a human message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def __repr__(self) -> str:
        return f"HubError({self.status}, {self.code!r}, {self.message!r})"

    def response(self) -> JSONResponse:
        return error_response(self.status, self.code, self.message, self.headers)


def rate_limited(what: str, wait: float) -> HubError:
    """429 ``rate_limited`` with ``Retry-After`` (whole seconds, at least 1)."""
    import math

    retry = str(max(1, math.ceil(wait)))
    return HubError(429, "rate_limited", f"{what}; retry in {retry} s", {"Retry-After": retry})


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The JSON error body; a message quoting hostile input (a lone surrogate, a megabyte)
    is made encodable and short, so that answering an error can never fail itself."""
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS] + "..."
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


async def _hub_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HubError)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = STATUS_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) and exc.detail else code
    if exc.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} not allowed on {request.url.path}"
    return error_response(exc.status_code, code, message, dict(exc.headers or {}))


def part_failure(exc: BaseException) -> HubError | None:
    """The answer for a failure of one of the hub's parts (not a bug in a route), or None.

    The database unreachable (or locked past its timeout) is 503 ``database_unavailable``,
    object storage unreachable 503 ``storage_unavailable``, both with Retry-After; a full
    disk or a file-size limit (ENOSPC, EDQUOT, EFBIG, SQLite's "database or disk is full")
    is 507 ``insufficient_storage``, which waiting will not fix. The exception and what it
    was raised from are looked at, so a wrapped failure is recognised too.
    """
    import errno

    from sqlalchemy.exc import DBAPIError, DisconnectionError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from musehub.storage import StorageUnavailable

    retry = {"Retry-After": UNAVAILABLE_RETRY_AFTER}
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, StorageUnavailable):
            return HubError(503, "storage_unavailable", "object storage unavailable", retry)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return HubError(
                507, "insufficient_storage", f"the hub is out of disk space ({e.strerror})"
            )
        if isinstance(e, DBAPIError):
            text = str(e.orig if e.orig is not None else e).lower()
            if "disk is full" in text or "no space left" in text:
                return HubError(507, "insufficient_storage", "the hub's database disk is full")
            if e.connection_invalidated or _db_unreachable(e, text):
                return HubError(503, "database_unavailable", "database unavailable", retry)
        if isinstance(e, DisconnectionError | PoolTimeout):
            return HubError(503, "database_unavailable", "database unavailable", retry)
        e = e.__cause__ or e.__context__
    return None


def _db_unreachable(e: BaseException, text: str) -> bool:
    """An OperationalError or InterfaceError that says the database cannot be used now (not
    a malformed statement, which SQLite also reports as an OperationalError)."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    if isinstance(e, InterfaceError):
        return True
    if not isinstance(e, OperationalError):
        return False
    return not any(w in text for w in ("no such ", "syntax error", "has no column"))


def log_part_failure(method: str, path: str, err: HubError, exc: BaseException) -> None:
    """One line per failed request (no traceback: the part is down, not the code wrong)."""
    import logging

    reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    logging.getLogger("musehub").error(
        "%s %s: %d %s (%s: %s)", method, path, err.status, err.code, type(exc).__name__, reason
    )


async def _storage_unavailable(request: Request, exc: Exception) -> Response:
    err = part_failure(exc)
    assert err is not None
    log_part_failure(request.method, request.url.path, err, exc)
    return err.response()


async def _message_error(request: Request, exc: Exception) -> Response:
    """A MuseWire message that does not parse (muse.wire.messages): 400 with its code."""
    return error_response(400, getattr(exc, "code", "bad_request"), str(exc))


async def _client_disconnect(request: Request, exc: Exception) -> Response:
    # Nobody is listening any more; the status only shows in the access log.
    return error_response(400, "bad_request", "client disconnected")


def exception_handlers() -> dict[Any, ExceptionHandler]:
    """The handlers to pass to ``Starlette(exception_handlers=...)``."""
    from musehub.storage import StorageUnavailable

    return {
        HubError: _hub_error,
        MessageError: _message_error,
        HTTPException: _http_error,
        ClientDisconnect: _client_disconnect,
        StorageUnavailable: _storage_unavailable,
    }


def require_content_type(request: Request, *allowed: str) -> str:
    """The request's media type (without parameters) if it is one of ``allowed``, else 415."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype not in allowed:
        raise HubError(
            415,
            "unsupported_media_type",
            f"expected Content-Type {' or '.join(allowed)}, got {ctype or 'none'}",
        )
    return ctype


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, refusing (413) as soon as it exceeds ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > max_bytes:
                raise HubError(413, "payload_too_large", f"body larger than {max_bytes} bytes")
        except ValueError:
            raise HubError(400, "bad_request", "invalid Content-Length") from None
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > max_bytes:
            raise HubError(413, "payload_too_large", f"body larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """A JSON object body: 415 for another content type, 413 too big, 400 invalid_json
    (also for nesting deeper than :data:`MAX_JSON_DEPTH`)."""
    require_content_type(request, "application/json")
    raw = await read_body(request, max_bytes)
    try:
        value = parse_json(raw)
    except MessageError as e:
        raise HubError(400, "invalid_json", f"body: {e}") from None
    if not isinstance(value, dict):
        raise HubError(400, "invalid_json", "body must be a JSON object")
    if json_depth(value) > MAX_JSON_DEPTH:
        raise HubError(400, "invalid_json", f"body nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def json_depth(value: Any) -> int:
    """How deeply a parsed JSON value nests (a scalar is 0), walked without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        items = v.values() if isinstance(v, dict) else v if isinstance(v, list) else None
        if items is None:
            continue
        deepest = max(deepest, d)
        stack.extend((x, d + 1) for x in items if isinstance(x, dict | list))
    return deepest


def field(
    body: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = ...
) -> Any:
    """``body[name]`` checked against ``kind`` (400 bad_request otherwise); bools are not ints."""
    if name not in body or body[name] is None:
        if default is ...:
            raise HubError(400, "bad_request", f"missing field {name!r}")
        return default
    value = body[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise HubError(400, "bad_request", f"field {name!r} has the wrong type")
    if not isinstance(value, kinds):
        raise HubError(400, "bad_request", f"field {name!r} has the wrong type")
    return value
