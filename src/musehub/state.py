"""What every route of one hub process shares: settings, database, storage, a thread pool.

Its own module (not ``musehub.app``) so that the protocol routes can name the type without
importing the application that imports them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from musehub.config import Settings
from musehub.db import Database
from musehub.storage import Storage

T = TypeVar("T")

#: How long one health check's answer is reused (a load balancer may poll every second).
HEALTH_CACHE_S = 1.0


@dataclass
class HubState:
    """Everything a route needs: settings, database, storage, a thread pool."""

    settings: Settings
    db: Database
    storage: Storage
    _health: tuple[float, dict[str, str]] | None = field(default=None, init=False, repr=False)
    _health_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking ``fn`` in the thread pool and await its result."""
        return await run_in_threadpool(partial(fn, *args, **kwargs))

    def health(self) -> dict[str, str]:
        """``{"database": ..., "storage": ...}``, each "ok" or why not (blocking).

        One ``SELECT 1`` and one cheap storage probe (Storage.health, a short timeout),
        answered from the last check for HEALTH_CACHE_S so polling costs nothing; one
        check at a time, the others reuse its answer.
        """
        with self._health_lock:
            now = time.monotonic()
            if self._health is not None and now - self._health[0] < HEALTH_CACHE_S:
                return self._health[1]
            parts = {"database": _probe(self.db.ping), "storage": _probe(self.storage.health)}
            self._health = (time.monotonic(), parts)
            return parts


def _probe(check: Callable[[], None]) -> str:
    try:
        check()
    except Exception as e:  # noqa: BLE001 - any failure is the answer
        text = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        return f"error: {text}"
    return "ok"
