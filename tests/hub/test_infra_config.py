"""Settings: defaults, TOML file, environment, derived values, the persisted secret."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from musehub.config import ConfigError, Settings, load_settings, persistent_secret


def test_defaults(tmp_path: Path) -> None:
    s = load_settings(env={"MUSEHUB_DATA_DIR": str(tmp_path)})
    assert s.database_url == f"sqlite:///{tmp_path}/musehub.db"
    assert s.storage == "local" and s.storage_dir == str(tmp_path / "objects")
    assert s.cache_dir == str(tmp_path / "cache")
    assert s.public_url == "http://127.0.0.1:8000"
    assert s.limits.stream_max_blobs == 500 and s.stream_max_blobs == 500
    assert s.limits.stream_max_bytes == 50 << 20
    assert s.max_pack_bytes == 10 << 30 and s.max_object_bytes == 2 << 30
    assert len(s.secret_key) == 64


def test_default_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings(env={}).data_dir == str(tmp_path / "musehub-data")


def test_precedence_file_env_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "hub.toml"
    cfg.write_text(
        f'data_dir = "{tmp_path}"\nport = 9000\nworkers = 3\nstorage = "s3"\n'
        's3_bucket = "b"\ns3_endpoint = "http://s3:1"\nsecret_key = "from-file"\n'
        "max_object_bytes = 5\n[limits]\nstream_max_blobs = 7\n"
    )
    env = {"MUSEHUB_PORT": "9001", "MUSEHUB_STREAM_MAX_BYTES": "99", "MUSEHUB_OTHER": "ignored"}
    s = load_settings(str(cfg), env=env, workers=5, host=None)
    assert (s.port, s.workers, s.host) == (9001, 5, "127.0.0.1")
    assert s.storage == "s3" and s.s3_bucket == "b" and s.s3_endpoint == "http://s3:1"
    assert s.secret_key == "from-file"
    assert s.limits.max_object_bytes == 5 and s.limits.stream_max_blobs == 7
    assert s.limits.stream_max_bytes == 99
    assert s.public_url == "http://127.0.0.1:9001"
    # via MUSEHUB_CONFIG, and a [musehub] table is accepted too
    cfg2 = tmp_path / "hub2.toml"
    cfg2.write_text(f'[musehub]\ndata_dir = "{tmp_path}"\npublic_url = "https://hub.example/"\n')
    s2 = load_settings(env={"MUSEHUB_CONFIG": str(cfg2)})
    assert s2.public_url == "https://hub.example"


def test_json_round_trip(tmp_path: Path) -> None:
    s = load_settings(env={"MUSEHUB_DATA_DIR": str(tmp_path), "MUSEHUB_MAX_PACK_BYTES": "77"})
    assert Settings.from_json(s.to_json()) == s


@pytest.mark.parametrize(
    "env",
    [
        {"MUSEHUB_STORAGE": "tape"},
        {"MUSEHUB_PORT": "0"},
        {"MUSEHUB_PORT": "eighty"},
        {"MUSEHUB_WORKERS": "0"},
        {"MUSEHUB_MAX_PACK_BYTES": "-1"},
        {"MUSEHUB_STORAGE": "s3", "MUSEHUB_S3_BUCKET": ""},
    ],
)
def test_invalid(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        load_settings(env={"MUSEHUB_DATA_DIR": str(tmp_path), **env})


def test_secret_is_persisted(tmp_path: Path) -> None:
    a = load_settings(env={"MUSEHUB_DATA_DIR": str(tmp_path)}).secret_key
    b = load_settings(env={"MUSEHUB_DATA_DIR": str(tmp_path)}).secret_key
    assert a == b
    assert oct(os.stat(tmp_path / "secret_key").st_mode & 0o777) == "0o600"
    other = load_settings(env={"MUSEHUB_DATA_DIR": str(tmp_path / "x")}).secret_key
    assert other != a


def test_secret_race(tmp_path: Path) -> None:
    """Processes starting together on one data directory all read the same secret."""
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        secrets = pool.map(persistent_secret, [str(tmp_path)] * 24)
    assert len(set(secrets)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]
