"""Shared pytest fixtures (implementations in tests/fixtures/).

- ``free_port``: the function ``free_port() -> int``.
- ``seaweedfs`` (session): a real SeaweedFS server with an S3 endpoint (``.endpoint``,
  ``.access_key``, ``.secret_key``, ``.region``, ``.new_bucket()``, ``.storage()``).
- ``postgres`` (session): a throwaway PostgreSQL cluster (``.url``, ``.new_database()``).
- ``pg_url``: a fresh, empty PostgreSQL database for one test (SQLAlchemy URL).
- ``start_hub``: the function ``start_hub(tmp_path, storage=..., database=..., ...)``; hubs
  started through this fixture are stopped at the end of the test.
- ``hub``: a hub (SQLite + local storage) for one test; ``s3_hub``: one on PostgreSQL +
  SeaweedFS. Hubs from these fixtures fail the test at teardown if any request crashed the
  hub (a logged "unhandled error", answered with a JSON 500).

SeaweedFS and PostgreSQL start once per session, only if a test asks for them. Missing
binaries skip those tests locally and fail them under CI=true.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from fixtures import (  # noqa: E402
    Hub,
    PostgresCluster,
    SeaweedFS,
    ServiceUnavailable,
    missing,
)
from fixtures import (
    free_port as _free_port,
)
from fixtures import (
    start_hub as _start_hub,
)


@pytest.fixture
def free_port() -> Callable[[], int]:
    return _free_port


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    try:
        server = SeaweedFS(str(tmp_path_factory.mktemp("seaweedfs")))
    except ServiceUnavailable as e:
        missing(str(e))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    try:
        cluster = PostgresCluster()
    except ServiceUnavailable as e:
        missing(str(e))
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(postgres: PostgresCluster) -> str:
    return postgres.new_database()


@pytest.fixture
def start_hub() -> Iterator[Callable[..., Hub]]:
    started: list[Hub] = []

    def start(*args: Any, **kwargs: Any) -> Hub:
        hub = _start_hub(*args, **kwargs)
        started.append(hub)
        return hub

    yield start
    for hub in reversed(started):
        hub.stop()
    _no_crashes(*started)


def _no_crashes(*hubs: Hub) -> None:
    """Fail the test if a hub turned an exception into a 500 (bad input must be a 4xx)."""
    crashes = [line for h in hubs for line in h.unhandled_errors()]
    if crashes:
        pytest.fail("hub crashed on requests:\n" + "\n".join(crashes[:10]), pytrace=False)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = _start_hub(tmp_path)
    yield h
    h.stop()
    _no_crashes(h)


@pytest.fixture
def s3_hub(tmp_path: Path, seaweedfs: SeaweedFS, postgres: PostgresCluster) -> Iterator[Hub]:
    h = _start_hub(tmp_path, storage="s3", s3=seaweedfs, database=postgres.new_database())
    yield h
    h.stop()
    _no_crashes(h)
