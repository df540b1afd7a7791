"""The hub's HTTP server: uvicorn, with the connection bounds uvicorn lacks on its own.

uvicorn times out idle keep-alive connections, but nothing else: a connection that never
sends a byte, or sends its headers one byte a second (slowloris), is held forever; its
``limit_concurrency`` answers 503 only once a whole request has arrived, so idle sockets
still pile up until the process runs out of file descriptors and answers nobody; and a
request body that stops arriving (a stalled presigned PUT to ``/_storage``) holds its
connection and handler forever. :class:`BoundedProtocol` is uvicorn's own httptools
protocol with those bounds added at the three points they need (a connection is made, a
request begins, its headers are complete), which a wrapper around the ASGI app cannot see:

- **headers**: from the connection (or the first byte of a next request on a kept-alive
  one) to the end of the headers, at most ``header_timeout_s``; then 408 and close;
- **body**: while the app reads a request body, no byte for ``body_idle_timeout_s`` closes
  the connection (the app sees a disconnect); time the app spends not reading is not counted;
- **keep-alive**: idle between requests at most ``keepalive_timeout_s`` (uvicorn's own);
- **connections**: at most ``max_connections`` per worker process, never more than the file
  descriptor limit minus a reserve (a quarter, at least 64) for databases, packs and the
  like, and at most ``max_connections_per_client`` from one address; a connection over a
  limit is answered 503 and closed at once, so it costs a descriptor for microseconds.

The settings are :class:`musehub.config.Limits` fields (docs/operations.md); they travel to
worker processes inside uvicorn's Config (:class:`HubConfig`), which uvicorn pickles.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("musehub.server")


@dataclass(frozen=True)
class Bounds:
    """The connection bounds of one hub (0 switches one off)."""

    header_timeout_s: float = 20.0
    body_idle_timeout_s: float = 60.0
    keepalive_timeout_s: int = 30
    max_connections: int = 1000
    max_connections_per_client: int = 100

    @classmethod
    def from_limits(cls, limits: Any) -> Bounds:
        return cls(
            header_timeout_s=limits.header_timeout_s,
            body_idle_timeout_s=limits.body_idle_timeout_s,
            keepalive_timeout_s=limits.keepalive_timeout_s,
            max_connections=limits.max_connections,
            max_connections_per_client=limits.max_connections_per_client,
        )


def connection_limit(configured: int) -> int:
    """``configured`` (0: as many as descriptors allow), capped so that a reserve of file
    descriptors (a quarter of the limit, at least 64) stays free for everything else."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured or 1 << 20
    cap = max(1, soft - max(64, soft // 4))
    return min(configured, cap) if configured else cap


def _answer(status: int, reason: str, code: str, message: str) -> bytes:
    body = json.dumps({"error": code, "message": message}).encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


_GRACE_S = 1.0
_BUSY = _answer(503, "Service Unavailable", "busy", "too many connections, try again")
_SLOW = _answer(408, "Request Timeout", "request_timeout", "the request headers took too long")


class HubConfig(uvicorn.Config):
    """uvicorn's Config carrying the hub's :class:`Bounds` (and its protocol) to workers."""

    def __init__(self, app: Any, bounds: Bounds, **kwargs: Any) -> None:
        kwargs.setdefault("timeout_keep_alive", bounds.keepalive_timeout_s or 1 << 30)
        super().__init__(app, http=BoundedProtocol, **kwargs)
        self.bounds = bounds


class BoundedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds of the module docstring."""

    #: open connections per client address, in this process
    _per_client: dict[str, int] = {}
    _limit: int | None = None

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.bounds: Bounds = getattr(config, "bounds", None) or Bounds()
        self._refused = False
        self._peer: str | None = None
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._last_rx = 0.0
        self._request_bytes = 0  # of the request whose headers are awaited

    # -- connections -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        cls = BoundedProtocol
        if cls._limit is None:
            cls._limit = connection_limit(self.bounds.max_connections)
            log.info("at most %d connections in this worker", cls._limit)
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        per_client = self.bounds.max_connections_per_client
        if len(self.connections) >= cls._limit or (
            per_client and cls._per_client.get(host, 0) >= per_client
        ):
            self._refused = True
            self.transport = transport
            transport.write(_BUSY)
            transport.close()
            return
        super().connection_made(transport)
        self._peer = host
        cls._per_client[host] = cls._per_client.get(host, 0) + 1
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        self._cancel_timers()
        if self._peer is not None:
            left = BoundedProtocol._per_client.get(self._peer, 1) - 1
            if left > 0:
                BoundedProtocol._per_client[self._peer] = left
            else:
                BoundedProtocol._per_client.pop(self._peer, None)
            self._peer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._last_rx = self.loop.time()
        if self._header_timer is not None:
            self._request_bytes += len(data)
        super().data_received(data)

    # -- headers -----------------------------------------------------------------------
    def _arm_header_timer(self) -> None:
        if self.bounds.header_timeout_s and self._header_timer is None:
            self._request_bytes = 0
            self._header_timer = self.loop.call_later(
                self.bounds.header_timeout_s, self._headers_too_slow
            )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_timer()  # a next request on a kept-alive connection

    def on_headers_complete(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().on_headers_complete()
        if self.bounds.body_idle_timeout_s and self.cycle is not None and self.cycle.more_body:
            self._last_rx = self.loop.time()
            self._arm_body_timer(self.bounds.body_idle_timeout_s)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self._request_bytes:
            self.transport.write(_SLOW)
        self.transport.close()

    # -- body --------------------------------------------------------------------------
    def _arm_body_timer(self, delay: float) -> None:
        self._body_timer = self.loop.call_later(delay, self._check_body)

    def _check_body(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if cycle is None or not cycle.more_body or cycle.response_complete:
            return  # the body arrived (or the answer went): nothing to watch
        if self.transport.is_closing():
            return
        now = self.loop.time()
        if self.flow.read_paused:
            self._last_rx = now  # the app is not reading: not the client's time
        idle = self.bounds.body_idle_timeout_s
        # A second more than the push route's own timer (routes.py), so a stalled push gets
        # its 400 first; a route that answers meanwhile keeps its connection.
        cut = idle + _GRACE_S
        if now - self._last_rx >= cut and not cycle.response_started:
            log.info("closing a connection: no request body bytes for %g s", idle)
            self.transport.close()
            return
        if not cycle.response_started:
            self._arm_body_timer(max(self._last_rx + cut - now, 0.05))

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None


def serve(app: Any, bounds: Bounds, workers: int = 1, **kwargs: Any) -> None:
    """Run the hub as uvicorn.run would, with :class:`BoundedProtocol` (``app`` an import
    string when ``workers`` > 1)."""
    from uvicorn.supervisors import Multiprocess

    from muse.core import heap

    heap.tune()  # this process, and (by the environment) the workers it spawns
    config = HubConfig(app, bounds, workers=workers, **kwargs)
    server = uvicorn.Server(config=config)
    if workers > 1:
        import inspect

        sock = config.bind_socket()
        if "target" in inspect.signature(Multiprocess).parameters:  # uvicorn before 0.50
            Multiprocess(config, target=server.run, sockets=[sock]).run()  # type: ignore[call-arg]
        else:
            Multiprocess(config, sockets=[sock]).run()
    else:
        server.run()
