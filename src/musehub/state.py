"""What every route of one hub process shares: settings, database, storage, a thread pool.

Its own module (not ``musehub.app``) so that the protocol routes can name the type without
importing the application that imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from musehub.config import Settings
from musehub.db import Database
from musehub.storage import Storage

T = TypeVar("T")


@dataclass
class HubState:
    """Everything a route needs: settings, database, storage, a thread pool."""

    settings: Settings
    db: Database
    storage: Storage

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking ``fn`` in the thread pool and await its result."""
        return await run_in_threadpool(partial(fn, *args, **kwargs))
