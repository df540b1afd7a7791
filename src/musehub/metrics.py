"""Prometheus metrics of the hub (``GET /metrics``) and the access log that shares their view.

One ASGI middleware, :class:`ObserveMiddleware`, sees every request once: its route template
(never the raw path, so hostile paths cannot grow the label set), status, duration, bytes in
and out, the caller (``request.state.principal``, left by ``musehub.auth``), the repository and
the error code of a refusal (the JSON body of a 4xx/5xx, which is small). From these it counts
pushes and fetches by transport path, objects received, verification failures, rate-limit
refusals and failed parts (database, storage, disk), so no route has to call into it.

Several worker processes: ``musehub serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a directory of
its own (``<data_dir>/metrics``, emptied at start, :func:`prepare_multiprocess`) before any
worker imports ``prometheus_client``; ``/metrics`` then sums every worker's files. Without it
(a hub embedded in a test) the process's own registry answers.

Access: ``/metrics`` is open to loopback callers only unless ``metrics_token`` is set, when it
needs ``Authorization: Bearer <metrics_token>`` from anywhere (docs/operations.md).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from musehub.config import Settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
access_log = logging.getLogger("musehub.access")

#: Codes of a push refused because what was sent did not verify.
VERIFY_CODES = frozenset({"bad_pack", "missing_objects", "unsafe_path"})
#: Codes of a part of the hub that failed (musehub.errors.part_failure) -> the part.
PART_CODES = {
    "database_unavailable": "database",
    "storage_unavailable": "storage",
    "insufficient_storage": "disk",
}
#: A sane incoming X-Request-Id: kept; anything else is replaced by one of ours.
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
#: Error bodies longer than this are not parsed for their code (ours are far smaller).
MAX_SNIFF = 4096


def prepare_multiprocess(settings: Settings) -> str:
    """Give this hub (and the workers it starts) an empty metrics directory of its own;
    must run before ``prometheus_client`` is imported in this process."""
    path = os.path.join(settings.data_dir, "metrics")
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.environ[MULTIPROC_ENV] = path
    return path


@dataclass
class _Metrics:
    requests: Any
    latency: Any
    bytes_in: Any
    bytes_out: Any
    pushes: Any
    fetches: Any
    objects_received: Any
    verify_failures: Any
    rate_limited: Any
    part_errors: Any


_metrics: _Metrics | None = None


def metrics() -> _Metrics:
    """The hub's metric objects, made once per process (the registry refuses twins)."""
    global _metrics
    if _metrics is None:
        from prometheus_client import Counter, Histogram

        route = ["method", "route"]
        _metrics = _Metrics(
            requests=Counter("musehub_http_requests", "HTTP requests answered", [*route, "status"]),
            latency=Histogram(
                "musehub_http_request_duration_seconds",
                "Time from the request to the end of its answer",
                route,
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            ),
            bytes_in=Counter("musehub_http_received_bytes", "Request body bytes", route),
            bytes_out=Counter("musehub_http_sent_bytes", "Response body bytes", route),
            pushes=Counter("musehub_pushes", "Pushes accepted, by transport path", ["path"]),
            fetches=Counter("musehub_fetches", "Fetches answered, by transport path", ["path"]),
            objects_received=Counter("musehub_objects_received", "Objects in accepted pushes"),
            verify_failures=Counter(
                "musehub_verification_failures", "Pushes refused by verification", ["code"]
            ),
            rate_limited=Counter("musehub_rate_limited", "Requests refused with 429"),
            part_errors=Counter(
                "musehub_part_errors", "Requests failed by a part of the hub", ["part"]
            ),
        )
    return _metrics


# -------------------------------------------------------------------------- observing


def request_id(scope: Scope) -> str:
    """The caller's X-Request-Id when it is sane, else a new one."""
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if REQUEST_ID_RE.fullmatch(text):
                return text
            break
    return secrets.token_hex(8)


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


def _repository(scope: Scope) -> str:
    params = scope.get("path_params") or {}
    owner, slug = params.get("owner"), params.get("slug")
    return f"{owner}/{slug}" if isinstance(owner, str) and isinstance(slug, str) else "-"


def _user(scope: Scope) -> str:
    principal = (scope.get("state") or {}).get("principal")
    return getattr(principal, "username", None) or "-"


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "-"


class ObserveMiddleware:
    """Counts every request into the metrics and writes its access-log line (text, or one
    JSON object per line with ``log_format = "json"``); sends ``X-Request-Id`` back."""

    def __init__(self, app: ASGIApp, log_format: str = "text") -> None:
        self.app = app
        self.json = log_format == "json"
        self.m = metrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid = request_id(scope)
        scope.setdefault("state", {})["request_id"] = rid
        seen: dict[str, Any] = {"status": 0, "in": 0, "out": 0, "type": b""}
        sniff: list[bytes] = []

        async def receive_wrapper() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                seen["in"] += len(message.get("body", b""))
            return message

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                headers = list(message.get("headers", []))
                seen["type"] = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                body = message.get("body", b"")
                seen["out"] += len(body)
                if seen["type"].startswith(b"application/json") and seen["out"] <= MAX_SNIFF:
                    sniff.append(body)
            await send(message)

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        finally:
            seconds = time.perf_counter() - start
            body = b"".join(sniff) if seen["out"] <= MAX_SNIFF else b""
            self._count(scope, seen, body, seconds)
            self._log(scope, rid, seen, seconds)

    def _count(self, scope: Scope, seen: dict[str, Any], body: bytes, seconds: float) -> None:
        m, method, route, status = self.m, scope["method"], _route(scope), seen["status"]
        m.requests.labels(method, route, str(status)).inc()
        m.latency.labels(method, route).observe(seconds)
        m.bytes_in.labels(method, route).inc(seen["in"])
        m.bytes_out.labels(method, route).inc(seen["out"])
        doc = _json(body)
        code = doc.get("error") if status >= 400 else None
        if status == 429:
            m.rate_limited.inc()
        if code in PART_CODES:
            m.part_errors.labels(PART_CODES[code]).inc()
        push = route.rsplit("/", 2)[-2:] if route.startswith("/{owner}/{slug}/") else []
        if push[:1] == ["push"]:
            if code in VERIFY_CODES:
                m.verify_failures.labels(code).inc()
            if status == 200 and push[1] in ("stream", "commit", "stage"):
                kind = {"stream": "stream", "commit": "presign", "stage": "stage"}[push[1]]
                m.pushes.labels(kind).inc()
                objects = doc.get("objects")
                if isinstance(objects, int) and objects > 0:
                    m.objects_received.inc(objects)
        elif route.endswith("/fetch/bundle") and status == 200:
            presigned = seen["type"].startswith(b"application/json")
            m.fetches.labels("presign" if presigned else "stream").inc()

    def _log(self, scope: Scope, rid: str, seen: dict[str, Any], seconds: float) -> None:
        fields = {
            "method": scope["method"],
            "path": scope["path"],
            "status": seen["status"],
            "ms": round(seconds * 1000, 1),
            "bytes_in": seen["in"],
            "bytes_out": seen["out"],
            "user": _user(scope),
            "client": _client(scope),
            "repo": _repository(scope),
            "request_id": rid,
        }
        if self.json:
            access_log.info("%s", json.dumps(fields, ensure_ascii=True))
            return
        access_log.info(
            "%s %s %d %.1fms %dB in %dB out user=%s client=%s repo=%s id=%s",
            *fields.values(),
        )


def _json(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


# -------------------------------------------------------------------------- exposition


def cache_sizes(cache_dir: str) -> tuple[int, int]:
    """(packs, bytes) in the local pack cache."""
    packs = total = 0
    try:
        entries = list(os.scandir(os.path.join(cache_dir, "packs")))
    except FileNotFoundError:
        return 0, 0
    for e in entries:
        try:
            total += e.stat().st_size
            packs += e.name.endswith(".pack")
        except FileNotFoundError:
            pass
    return packs, total


def _allowed(request: Request, token: str) -> bool:
    if token:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), token)
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


#: A GET that carries a body anyway: read (and drop) up to this much of it before answering
#: (the answer, tens of KiB, is otherwise cut by the reset an unread body causes).
_DRAIN_LIMIT = 16 << 20


async def _drain(request: Request) -> None:
    """Read a stray request body before answering: a response sent while unread bytes sit
    in the socket makes the kernel reset the connection, and the client may lose the answer
    (the hostile-input test saw 'dropped' for GET /metrics with a body)."""
    seen = 0
    try:
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > _DRAIN_LIMIT:
                break
    except Exception:  # noqa: BLE001 - a broken body does not change what /metrics says
        pass


async def metrics_endpoint(request: Request) -> Response:
    """The Prometheus text exposition: every worker's counters, plus the pack cache."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily

    settings = request.app.state.hub.settings
    await _drain(request)
    if not _allowed(request, settings.metrics_token):
        return JSONResponse(
            {"error": "forbidden", "message": "metrics need the metrics token (or loopback)"},
            status_code=403,
        )
    metrics()
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
    else:
        from prometheus_client import REGISTRY as registry

    packs, size = cache_sizes(settings.cache_dir)
    cache = CollectorRegistry()
    cache.register(
        _Fixed(
            GaugeMetricFamily("musehub_pack_cache_bytes", "Bytes in the local pack cache", size),
            GaugeMetricFamily("musehub_pack_cache_packs", "Packs in the local pack cache", packs),
        )
    )
    body = generate_latest(registry) + generate_latest(cache)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class _Fixed:
    """A collector of metric families computed once, at the scrape."""

    def __init__(self, *families: Any) -> None:
        self.families = families

    def collect(self) -> Any:
        return iter(self.families)
