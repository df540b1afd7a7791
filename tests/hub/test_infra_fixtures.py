"""The shared fixtures themselves: CI strictness, ports, the real services."""

from __future__ import annotations

import socket

import pytest
from fixtures import PostgresCluster, SeaweedFS, free_port, missing


def test_missing_service_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required in CI"):
        missing("weed not found")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        missing("weed not found")


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_postgres_databases_are_isolated(postgres: PostgresCluster) -> None:
    import psycopg

    a, b = postgres.new_database(), postgres.new_database()
    assert a != b
    for url in (a, b, postgres.url):
        dbname = url.rsplit("/", 1)[1]
        with psycopg.connect(
            host="127.0.0.1", port=postgres.port, user=postgres.USER, dbname=dbname
        ) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (dbname,)


def test_seaweedfs_checks_credentials(seaweedfs: SeaweedFS) -> None:
    from musehub.storage import StorageUnavailable
    from musehub.storage.s3 import S3Storage

    good = seaweedfs.storage()
    good.put_bytes("x", b"1")
    bad = S3Storage(seaweedfs.new_bucket(), seaweedfs.endpoint, "us-east-1", "muse", "wrong")
    with pytest.raises(StorageUnavailable):
        bad.put_bytes("x", b"1")
