"""muse.core.heap: the hub's workers run with glibc's malloc kept from returning every freed
request body piece to the kernel (the settings reach spawned workers by their environment)."""

from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchlib.proc import descendants  # noqa: E402

from muse.core import heap  # noqa: E402

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="mallopt is glibc's",
)


@glibc
def test_tune_applies_the_settings_and_keeps_the_operators_own() -> None:
    env = {"MALLOC_TRIM_THRESHOLD_": str(32 << 20)}
    assert heap.tune(env) is True
    assert env["MALLOC_TRIM_THRESHOLD_"] == str(32 << 20)  # the operator's value wins
    assert env["MALLOC_MMAP_THRESHOLD_"] == str(heap.MMAP_THRESHOLD)
    assert env["MALLOC_TOP_PAD_"] == str(heap.TOP_PAD)


def test_an_unreadable_value_is_left_to_glibc_not_a_crash() -> None:
    env = {"MALLOC_TOP_PAD_": "lots"}
    heap.tune(env)
    assert env["MALLOC_TOP_PAD_"] == "lots"


@glibc
def test_spawned_workers_start_with_the_settings(tmp_path: Path, start_hub: Any) -> None:
    hub = start_hub(tmp_path, workers=2)
    workers = [p for p in descendants(hub.proc.pid) if p != hub.proc.pid]
    assert workers
    seen = 0
    for pid in workers:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"spawn_main" not in f.read():
                continue  # multiprocessing's resource tracker
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)
        assert environ[b"MALLOC_TRIM_THRESHOLD_"] == str(heap.TRIM_THRESHOLD).encode()
        assert environ[b"MALLOC_MMAP_THRESHOLD_"] == str(heap.MMAP_THRESHOLD).encode()
        seen += 1
    assert seen == 2
    assert hub.request("GET", "/healthz", None, None)[0] == 200


def test_the_client_tunes_once_and_leaves_its_environment_alone(monkeypatch: Any) -> None:
    calls: list[dict[str, str]] = []
    monkeypatch.setattr(heap, "_tuned", False)
    monkeypatch.setattr(heap, "tune", lambda env=None: calls.append(env) or True)
    monkeypatch.delenv("MALLOC_TOP_PAD_", raising=False)
    heap.tune_once()
    heap.tune_once()
    assert len(calls) == 1 and calls[0] is not None  # a copy, not os.environ
    import os

    assert "MALLOC_TOP_PAD_" not in os.environ


def test_a_large_file_tunes_the_client(tmp_path: Path, monkeypatch: Any) -> None:
    from muse.core import chunking

    calls: list[int] = []
    monkeypatch.setattr(heap, "tune_once", lambda: calls.append(1))
    monkeypatch.setattr(chunking, "_cdc", None)
    path = tmp_path / "take.wav"
    path.write_bytes(bytes(range(256)) * 4096 * 5)
    chunking.file_chunks(str(path))
    assert calls
