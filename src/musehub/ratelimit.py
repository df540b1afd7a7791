"""Requests per minute per caller, as ASGI middleware; failed authentications per address.

The caller is the bearer token when there is one (keyed by a hash, never the token; read as
``musehub.auth`` reads it, so ``bearer``, ``BEARER`` and extra spaces are one caller), else
the client address. The client address is the TCP peer's, or what ``X-Forwarded-For`` says
when the peer is one of the ``trusted_proxies`` (uvicorn's proxy headers, set by
``musehub serve``). A sliding window of one minute: the timestamps of a caller's recent
requests are kept, and a request beyond ``per_minute`` gets **429** ``rate_limited`` with
``Retry-After`` (seconds until the oldest request in the window leaves it).

A forged token costs a database lookup, and a new forged token is a new caller: so a second
limiter (``app.state.auth_failures``, used by ``musehub.auth.authenticate``) counts failed
authentications per client address, and past ``auth_failures_per_minute`` a request from that
address that carries a token is 429 before any lookup.

The counters live in this process: with N hub processes (``--workers``, several machines) a
caller may reach N times the limit. That bounds abuse well enough for one hub; a shared
counter (Redis, the database) would be the next step.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict, deque

from starlette.types import ASGIApp, Receive, Scope, Send

from musehub.auth import parse_bearer
from musehub.errors import rate_limited

WINDOW_S = 60.0
#: Callers tracked at most (a flood of forged tokens is a flood of callers): past it the
#: callers idle longest are forgotten first, so memory stays bounded (~30 MB).
MAX_KEYS = 100_000
#: Paths that are never limited (health checks from load balancers).
EXEMPT = ("/healthz", "/readyz", "/metrics")


class RateLimiter:
    def __init__(self, per_minute: int, max_keys: int = MAX_KEYS) -> None:
        self.per_minute = per_minute
        self.max_keys = max_keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()  # least recent first
        self._lock = threading.Lock()
        self._last_gc = time.monotonic()

    def wait(self, key: str, t: float | None = None) -> float:
        """0 if a request of ``key`` would be allowed now, else the seconds to wait; records
        nothing (the failure limiter counts only what failed)."""
        if self.per_minute <= 0:
            return 0.0
        t = time.monotonic() if t is None else t
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                return 0.0
            while hits and hits[0] <= t - WINDOW_S:
                hits.popleft()
            if len(hits) >= self.per_minute:
                return max(hits[0] + WINDOW_S - t, 0.001)
            return 0.0

    def hit(self, key: str, t: float | None = None) -> float:
        """Record a request; 0 if allowed, else the seconds to wait before retrying."""
        if self.per_minute <= 0:
            return 0.0
        t = time.monotonic() if t is None else t
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                if len(self._hits) >= self.max_keys and t - self._last_gc > 1.0:
                    self._gc(t)  # at most once a second: a full sweep is O(keys)
                while len(self._hits) >= self.max_keys:
                    self._hits.popitem(last=False)  # the longest idle
                hits = self._hits[key] = deque()
            else:
                self._hits.move_to_end(key)
            while hits and hits[0] <= t - WINDOW_S:
                hits.popleft()
            if len(hits) >= self.per_minute:
                return max(hits[0] + WINDOW_S - t, 0.001)
            hits.append(t)
            if t - self._last_gc > WINDOW_S:
                self._gc(t)
            return 0.0

    def _gc(self, t: float) -> None:
        self._last_gc = t
        for key in [k for k, v in self._hits.items() if not v or v[-1] <= t - WINDOW_S]:
            del self._hits[key]


def caller_key(scope: Scope) -> str:
    """The normalised token's hash, else the client address."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            token = parse_bearer(value.decode("latin-1"))
            if token is not None:
                return "t:" + hashlib.sha256(token.encode("latin-1")).hexdigest()[:32]
            break
    client = scope.get("client")
    return "a:" + (client[0] if client else "?")


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        wait = self.limiter.hit(caller_key(scope))
        if wait:
            what = f"more than {self.limiter.per_minute} requests per minute"
            await rate_limited(what, wait).response()(scope, receive, send)
            return
        await self.app(scope, receive, send)
