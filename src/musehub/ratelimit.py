"""Requests per minute per caller, as ASGI middleware.

The caller is the bearer token when there is one (keyed by a hash, never the token), else the
client address. A sliding window of one minute: the timestamps of a caller's recent requests
are kept, and a request beyond ``per_minute`` gets **429** ``rate_limited`` with
``Retry-After`` (seconds until the oldest request in the window leaves it).

The counters live in this process: with N hub processes (``--workers``, several machines) a
caller may reach N times the limit. That bounds abuse well enough for one hub; a shared
counter (Redis, the database) would be the next step.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import deque

from starlette.types import ASGIApp, Receive, Scope, Send

from musehub.errors import error_response

WINDOW_S = 60.0
#: Paths that are never limited (health checks from load balancers).
EXEMPT = ("/healthz",)


class RateLimiter:
    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._last_gc = time.monotonic()

    def hit(self, key: str, t: float | None = None) -> float:
        """Record a request; 0 if allowed, else the seconds to wait before retrying."""
        if self.per_minute <= 0:
            return 0.0
        t = time.monotonic() if t is None else t
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                hits = self._hits[key] = deque()
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
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            return "t:" + hashlib.sha256(value).hexdigest()[:32]
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
            retry = str(max(1, math.ceil(wait)))
            response = error_response(
                429,
                "rate_limited",
                f"more than {self.limiter.per_minute} requests per minute; retry in {retry} s",
                {"Retry-After": retry},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
