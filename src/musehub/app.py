"""The MuseHub ASGI application.

``create_app(settings)`` builds a Starlette app with:

- the MuseWire protocol routes from ``musehub.protocol.routes.routes(state)``;
- the JSON repository API (``musehub.api``), ``/healthz`` and ``/openapi.json``;
- ``/_storage/{key}``: the ``local`` storage backend's presigned GET/PUT URLs
  (``musehub.storage.signing``); present only with that backend;
- middleware, outermost first: metrics and the access log (``musehub.metrics``); turning
  any unexpected exception into a logged traceback and a JSON 500, and the
  ``Muse-Protocol: 1`` header on every response; the per-process rate limit.

What the protocol routes get, ``app.state.hub`` (a :class:`musehub.state.HubState`):

- ``state.settings``: :class:`musehub.config.Settings` (limits as ``settings.limits.*``, also
  flat as ``settings.max_pack_bytes`` etc.);
- ``state.db``: :class:`musehub.db.Database` (``with state.db.session() as s:``);
- ``state.storage``: :class:`musehub.storage.Storage` (synchronous methods);
- ``await state.run(fn, *args, **kwargs)``: run blocking work in the thread pool.

Database migrations are applied (under a lock) when the app is created, so every worker and
command starts on the current schema.
"""

from __future__ import annotations

import json
import logging
import os
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from muse.wire.messages import PROTOCOL_VERSION
from musehub.config import Settings, load_settings, worker_settings
from musehub.db import Database
from musehub.errors import (
    UNAVAILABLE_RETRY_AFTER,
    HubError,
    error_response,
    exception_handlers,
    log_part_failure,
    part_failure,
)
from musehub.metrics import ObserveMiddleware, metrics_endpoint
from musehub.ratelimit import RateLimiter, RateLimitMiddleware
from musehub.state import HubState
from musehub.storage import InvalidKey, open_storage
from musehub.storage.local import LocalStorage
from musehub.storage.signing import verify

log = logging.getLogger("musehub")

# -------------------------------------------------------------------------- middleware


class AccessLogMiddleware:
    """Adds ``Muse-Protocol``; a crash becomes a JSON 500, logged once with its traceback; a
    part of the hub that failed (database, storage, a full disk) becomes its 503/507
    (``errors.part_failure``), logged as one line. The access line itself is written by
    ``musehub.metrics.ObserveMiddleware``, around this one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                headers.append((b"muse-protocol", str(PROTOCOL_VERSION).encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            failed = part_failure(exc)  # database, storage or disk: 503/507, one log line
            if failed is not None:
                log_part_failure(scope["method"], scope["path"], failed, exc)
                if not started:
                    await failed.response()(scope, receive, send_wrapper)
            else:
                log.exception("unhandled error in %s %s", scope["method"], scope["path"])
                if not started:
                    resp = error_response(500, "internal_error", "internal server error")
                    await resp(scope, receive, send_wrapper)


# -------------------------------------------------------------------------- routes


async def healthz(request: Request) -> Response:
    """200 while the process serves (liveness); what it depends on is /readyz's question."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """200 when the database and the storage answer, else 503 naming the part that failed
    (checked cheaply, at most about once a second: HubState.health)."""
    hub: HubState = request.app.state.hub
    parts = await hub.run(hub.health)
    failed = [name for name, state in parts.items() if state != "ok"]
    if not failed:
        return JSONResponse({"status": "ok", **parts})
    code = f"{failed[0]}_unavailable"
    body = {
        "status": "unavailable",
        "error": code,
        "message": f"{' and '.join(failed)} unavailable",
        **parts,
    }
    return JSONResponse(body, status_code=503, headers={"Retry-After": UNAVAILABLE_RETRY_AFTER})


def _openapi_document() -> dict[str, Any]:
    text = resources.files("musehub").joinpath("openapi.json").read_text(encoding="utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


async def openapi(request: Request) -> Response:
    hub: HubState = request.app.state.hub
    doc = dict(request.app.state.openapi)
    doc["servers"] = [{"url": hub.settings.public_url}]
    return JSONResponse(doc)


def _signed_key(request: Request, method: str) -> str:
    hub: HubState = request.app.state.hub
    key = request.path_params["key"]
    q = request.query_params
    reason = verify(
        hub.settings.secret_key,
        method,
        key,
        q.get("m", ""),
        q.get("exp", ""),
        q.get("sig", ""),
        q.get("n"),
    )
    if reason is not None:
        raise HubError(403, "bad_signature", f"presigned URL refused: {reason}")
    return key


def _local_storage(hub: HubState) -> LocalStorage:
    """The local backend (the only one whose presigned URLs point at the hub itself)."""
    if not isinstance(hub.storage, LocalStorage):
        raise HubError(404, "not_found", "this hub's storage is not local")
    return hub.storage


async def storage_get(request: Request) -> Response:
    """GET of a local presigned URL: the file, streamed, with its Content-Length."""
    key = _signed_key(request, "GET")
    storage = _local_storage(request.app.state.hub)
    try:
        path = storage.path(key)
    except InvalidKey:
        raise HubError(403, "bad_signature", "invalid key") from None
    if not os.path.isfile(path):
        raise HubError(404, "not_found", f"no object {key}")
    return BigChunkFileResponse(path, media_type="application/octet-stream")


class BigChunkFileResponse(FileResponse):
    """Bundles are large: read them 1 MiB at a time (one thread hop per MiB, not per 64 KiB)."""

    chunk_size = 1 << 20


#: Body bytes gathered before each write (done in the thread pool, off the event loop).
PUT_WRITE_BATCH = 1 << 20


async def storage_put(request: Request) -> Response:
    """PUT of a local presigned URL: the body streams to a temp file, then is renamed.

    The body must be exactly the size the URL was presigned for (``n``): larger is 413
    ``payload_too_large`` as soon as it is, smaller is 400 ``size_mismatch``. A URL is good
    for one upload: a PUT while another holds it, or after one landed, is 403 ``url_used``;
    a PUT that failed gives it back.
    """
    key = _signed_key(request, "PUT")
    hub: HubState = request.app.state.hub
    storage = _local_storage(hub)
    try:
        storage.path(key)
    except InvalidKey:
        raise HubError(403, "bad_signature", "invalid key") from None
    limit = hub.settings.limits.max_pack_bytes
    n = request.query_params.get("n")
    size = None if n is None else int(n)  # verified digits
    if size is not None and size > limit:
        raise HubError(413, "payload_too_large", f"body larger than {limit} bytes")
    limit = limit if size is None else size
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise HubError(400, "bad_request", "invalid Content-Length")
        if int(declared) > limit:
            raise HubError(413, "payload_too_large", f"body larger than {limit} bytes")
        if size is not None and int(declared) != size:
            raise HubError(400, "size_mismatch", f"body of {declared} bytes, presigned for {size}")
    sig, exp = request.query_params["sig"], int(request.query_params["exp"])
    if not await hub.run(storage.claim, sig, exp):
        raise HubError(403, "url_used", "presigned URL refused: already used for an upload")
    f, tmp = await hub.run(storage.temp_file)
    total = 0
    try:
        with f:
            batch: list[bytes] = []
            batched = 0
            async for chunk in request.stream():
                total += len(chunk)
                if total > limit:
                    raise HubError(413, "payload_too_large", f"body larger than {limit} bytes")
                batch.append(chunk)
                batched += len(chunk)
                if batched >= PUT_WRITE_BATCH:
                    await hub.run(f.write, b"".join(batch))
                    batch, batched = [], 0
            if batch:
                await hub.run(f.write, b"".join(batch))
        if declared is not None and total != int(declared):
            raise HubError(400, "bad_request", "body shorter than its Content-Length")
        if size is not None and total != size:
            raise HubError(400, "size_mismatch", f"body of {total} bytes, presigned for {size}")
        await hub.run(storage.commit_temp, tmp, key)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        storage.release(sig, exp)
        raise
    return Response(status_code=200, headers={"ETag": f'"{total}"'})


def _protocol_routes(state: HubState) -> list[BaseRoute]:
    from musehub.protocol.routes import routes

    return list(routes(state))


def _web_routes(state: HubState) -> list[BaseRoute]:
    from musehub.web import routes

    return list(routes(state))


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> Starlette:
    """The hub application for ``settings`` (default: from the environment)."""
    from musehub import api

    settings = settings or load_settings()
    configure_logging(settings.log_level)
    db = Database(settings.database_url)
    if migrate:
        db.upgrade()
    storage = open_storage(settings)
    state = HubState(settings=settings, db=db, storage=storage)

    route_list: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *api.routes(),
    ]
    if settings.storage == "local":
        route_list += [
            Route("/_storage/{key:path}", storage_get, methods=["GET", "HEAD"]),
            Route("/_storage/{key:path}", storage_put, methods=["PUT"]),
        ]
    route_list += _protocol_routes(state)
    route_list += _web_routes(state)  # last: /{owner}/{slug} pages after every API path

    handlers: dict[Any, Any] = exception_handlers()
    app = Starlette(
        routes=route_list,
        middleware=[
            Middleware(ObserveMiddleware, log_format=settings.log_format),
            Middleware(AccessLogMiddleware),
            Middleware(RateLimitMiddleware, limiter=RateLimiter(settings.rate_limit_per_minute)),
        ],
        exception_handlers=handlers,
    )
    app.state.hub = state
    app.state.openapi = _openapi_document()
    # Failed authentications per client address (musehub.auth.authenticate reads it).
    app.state.auth_failures = RateLimiter(settings.limits.auth_failures_per_minute)
    return app


def factory() -> Starlette:
    """Entry point for ``uvicorn --factory``: settings come from the file ``musehub serve``
    hands its workers (musehub.config.hand_to_workers), else from the environment."""
    from musehub.files import private_process

    private_process()  # also when uvicorn --factory is run by hand
    settings = worker_settings() or load_settings()
    return create_app(settings)


_logging_configured = False


def configure_logging(level: str = "info") -> None:
    """One line per record to stderr, unless the host application configured logging."""
    global _logging_configured
    if _logging_configured:
        return
    _logging_configured = True
    root = logging.getLogger("musehub")
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
        )
        root.addHandler(handler)
        root.propagate = False
    root.setLevel(level.upper())
