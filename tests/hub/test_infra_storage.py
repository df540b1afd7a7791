"""Storage backends through the one interface: local (a directory) and s3 (a real SeaweedFS).

Presigned URLs are used with a plain HTTP client, as a muse client would: the local
backend's URLs are served by a running hub, the s3 backend's by SeaweedFS itself.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from fixtures import Hub, SeaweedFS, http_call

from musehub.storage import InvalidKey, NotFound, Storage, check_key
from musehub.storage.local import LocalStorage


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(str(tmp_path / "objects"), "http://127.0.0.1:1", "secret")
    seaweed: SeaweedFS = request.getfixturevalue("seaweedfs")
    return seaweed.storage()  # type: ignore[no-any-return]


def test_put_get_delete(storage: Storage, tmp_path: Path) -> None:
    storage.put_bytes("repos/1/a.pack", b"hello")
    assert storage.exists("repos/1/a.pack")
    assert storage.size("repos/1/a.pack") == 5
    with storage.open_read("repos/1/a.pack") as f:
        assert f.read() == b"hello"
    src = tmp_path / "src.bin"
    data = os.urandom(3 << 20)
    src.write_bytes(data)
    storage.put_file("repos/1/b.pack", str(src))
    dest = tmp_path / "dest.bin"
    storage.download_to("repos/1/b.pack", str(dest))
    assert dest.read_bytes() == data
    with storage.open_read("repos/1/b.pack") as f:
        got = b"".join(iter(lambda: f.read(1 << 16), b""))
    assert got == data
    assert storage.list("repos/1/") == ["repos/1/a.pack", "repos/1/b.pack"]
    assert storage.list("repos/2/") == []
    storage.put_bytes("repos/1/a.pack", b"replaced")
    assert storage.open_read("repos/1/a.pack").read() == b"replaced"
    storage.delete("repos/1/a.pack")
    storage.delete("repos/1/a.pack")  # missing is fine
    assert not storage.exists("repos/1/a.pack")
    assert storage.delete_prefix("repos/1/") == 1
    assert storage.list("") == [] or all(not k.startswith("repos/1/") for k in storage.list(""))


def test_files_past_the_multipart_threshold_round_trip(
    storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 stores and fetches a small file in one request, a large one in parts (boto3's
    managed transfer): both sides of the threshold give back the same bytes."""
    from musehub.storage import s3

    monkeypatch.setattr(s3.TRANSFER, "multipart_threshold", 6 << 20)
    monkeypatch.setattr(s3.TRANSFER, "multipart_chunksize", 5 << 20)
    for name, size in (("under", (6 << 20) - 1), ("over", 13 << 20)):
        data = os.urandom(size)
        src = tmp_path / f"{name}.bin"
        src.write_bytes(data)
        storage.put_file(f"repos/1/{name}.pack", str(src))
        assert storage.size(f"repos/1/{name}.pack") == size
        dest = tmp_path / f"{name}.out"
        storage.download_to(f"repos/1/{name}.pack", str(dest))
        assert dest.read_bytes() == data
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".download-")]


def test_missing_keys(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        storage.open_read("nope/x")
    with pytest.raises(NotFound):
        storage.size("nope/x")
    with pytest.raises(NotFound):
        storage.download_to("nope/x", str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()
    assert not storage.exists("nope/x")


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "..", "a//b", "a/", "a b", "a\\b", "é"])
def test_invalid_keys(key: str) -> None:
    with pytest.raises(InvalidKey):
        check_key(key)


def test_local_leaves_no_temp_files(tmp_path: Path) -> None:
    st = LocalStorage(str(tmp_path / "o"), "http://x", "s")
    st.put_bytes("k", b"1")
    src = tmp_path / "f"
    src.write_bytes(b"2")
    st.put_file("k2", str(src))
    assert st.list() == ["k", "k2"]
    assert os.listdir(tmp_path / "o" / ".tmp") == []
    with pytest.raises(FileNotFoundError):
        st.put_file("k3", str(tmp_path / "missing"))
    assert os.listdir(tmp_path / "o" / ".tmp") == []
    assert not st.exists("k3")


# ------------------------------------------------------------------ presigned URLs


def local_storage_of(hub: Hub) -> LocalStorage:
    secret = (hub.data_dir / "secret_key").read_text().strip()
    return LocalStorage(str(hub.data_dir / "objects"), hub.url, secret)


@pytest.fixture(params=["local", "s3"])
def presigning(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        hub: Hub = request.getfixturevalue("hub")
        return local_storage_of(hub)
    seaweed: SeaweedFS = request.getfixturevalue("seaweedfs")
    return seaweed.storage()  # type: ignore[no-any-return]


def test_presigned_put_then_get(presigning: Storage) -> None:
    data = os.urandom(2 << 20)
    url, headers = presigning.presign_put("uploads/u1.pack", 60)
    assert headers == {}
    status, _ = http_call("PUT", url, data)
    assert status == 200
    assert presigning.size("uploads/u1.pack") == len(data)
    status, body = http_call("GET", presigning.presign_get("uploads/u1.pack", 60))
    assert status == 200 and body == data


def test_presigned_url_grants_one_method_one_key(presigning: Storage) -> None:
    presigning.put_bytes("k/one", b"one")
    get_url = presigning.presign_get("k/one", 60)
    put_url, _ = presigning.presign_put("k/one", 60)
    # another key with the same signature
    assert http_call("GET", get_url.replace("k/one", "k/two"))[0] in (403, 404)
    # another method
    status, _ = http_call("PUT", get_url, b"overwrite")
    assert status in (403, 405)
    assert presigning.open_read("k/one").read() == b"one"
    if isinstance(presigning, LocalStorage):
        assert http_call("GET", put_url)[0] == 403


def _forge(url: str) -> str:
    def flip(m: re.Match[str]) -> str:
        return m.group(1) + ("1" if m.group(2) != "1" else "2")

    return re.sub(r"((?:sig|X-Amz-Signature)=)([0-9a-f])", flip, url)


def test_forged_and_expired_urls_refused(presigning: Storage) -> None:
    presigning.put_bytes("k/secret", b"s")
    url = presigning.presign_get("k/secret", 60)
    assert http_call("GET", url) == (200, b"s")
    status, body = http_call("GET", _forge(url))
    assert status == 403
    if isinstance(presigning, LocalStorage):
        assert b'"bad_signature"' in body
        # a later expiry with the old signature
        later = re.sub(r"exp=(\d+)", lambda m: f"exp={int(m.group(1)) + 3600}", url)
        assert http_call("GET", later)[0] == 403
        assert http_call("GET", url.split("?")[0])[0] == 403
    expiring = presigning.presign_get("k/secret", 1)
    put_expiring, _ = presigning.presign_put("k/new", 1)
    time.sleep(2.2)
    assert http_call("GET", expiring)[0] == 403
    assert http_call("PUT", put_expiring, b"late")[0] == 403
    assert not presigning.exists("k/new")


def test_local_presigned_put_limits(tmp_path: Path, start_hub: Any) -> None:
    hub = start_hub(tmp_path, env={"MUSEHUB_MAX_PACK_BYTES": "1000"})
    st = local_storage_of(hub)
    url, _ = st.presign_put("big", 60)
    status, body = http_call("PUT", url, b"x" * 1001)
    assert status == 413 and b"payload_too_large" in body
    assert not st.exists("big")
    assert http_call("PUT", url, b"x" * 1000)[0] == 200
    assert st.size("big") == 1000
    assert os.listdir(hub.data_dir / "objects" / ".tmp") == []


def test_local_get_missing_object(hub: Hub) -> None:
    st = local_storage_of(hub)
    status, body = http_call("GET", st.presign_get("never/written", 60))
    assert status == 404 and b'"not_found"' in body


def test_s3_public_endpoint_signs_for_clients() -> None:
    """The hub may reach the store at one address while clients use another."""
    from musehub.storage.s3 import S3Storage

    st = S3Storage(
        "b",
        "http://10.0.0.5:8333",
        access_key="k",
        secret_key="s",
        create_bucket=False,
        public_endpoint_url="https://objects.example",
    )
    assert st.presign_get("a/b", 60).startswith("https://objects.example/b/a/b?")
    assert st.presign_put("a/b", 60)[0].startswith("https://objects.example/b/a/b?")
    assert st.client.meta.endpoint_url == "http://10.0.0.5:8333"


@pytest.mark.parametrize(
    "key", ["../secret_key", "..%2Fsecret_key", ".tmp/x", "a/../../musehub.db"]
)
def test_local_route_refuses_unsafe_keys_even_when_signed(hub: Hub, key: str) -> None:
    """A correctly signed URL for a key outside the store still grants nothing."""
    import urllib.parse as up

    from musehub.storage.signing import signature

    secret = (hub.data_dir / "secret_key").read_text().strip()
    decoded = up.unquote(key)
    exp = int(time.time()) + 60
    for method in ("GET", "PUT"):
        sig = signature(secret, method, decoded, exp)
        url = f"{hub.url}/_storage/{key}?m={method}&exp={exp}&sig={sig}"
        status, body = http_call(method, url, b"x" if method == "PUT" else None)
        assert status in (403, 404), (method, key, status)
        assert b"secret" not in body or b"error" in body
    assert (hub.data_dir / "secret_key").read_text().strip() == secret


def test_copy_is_independent_of_its_source(storage: Storage) -> None:
    data = os.urandom(3 << 20)
    storage.put_bytes("repos/7/uploads/u.pack", data)
    storage.copy("repos/7/uploads/u.pack", "repos/7/packs/p.pack")
    with storage.open_read("repos/7/packs/p.pack") as f:
        assert f.read() == data
    # Writing (or deleting) the source later leaves the copy as it was.
    storage.put_bytes("repos/7/uploads/u.pack", b"changed")
    with storage.open_read("repos/7/packs/p.pack") as f:
        assert f.read() == data
    storage.delete("repos/7/uploads/u.pack")
    assert storage.size("repos/7/packs/p.pack") == len(data)
    with pytest.raises(NotFound):
        storage.copy("repos/7/uploads/missing.pack", "repos/7/packs/q.pack")
    assert not storage.exists("repos/7/packs/q.pack")
    with pytest.raises(InvalidKey):
        storage.copy("repos/7/packs/p.pack", "../escape")
    storage.delete_prefix("repos/7/")


def test_declared_capabilities(storage: Storage, tmp_path: Path) -> None:
    """local_files / local_path / put_immutable say what the backend can do, no probing: the
    local backend keeps the very file (one inode) and names it; s3 stores a copy, no path."""
    src = tmp_path / "finished.pack"
    data = os.urandom(1 << 16)
    src.write_bytes(data)
    storage.put_immutable("repos/8/packs/p.pack", str(src))
    with storage.open_read("repos/8/packs/p.pack") as f:
        assert f.read() == data
    local = storage.local_path("repos/8/packs/p.pack")
    if storage.local_files:
        assert local is not None and os.path.samefile(local, src)
        assert os.stat(src).st_nlink == 2
    else:
        assert local is None
        src.write_bytes(b"the caller broke its promise")  # the store kept its own copy
        with storage.open_read("repos/8/packs/p.pack") as f:
            assert f.read() == data
    with pytest.raises(InvalidKey):
        storage.put_immutable("../escape", str(src))
    storage.delete_prefix("repos/8/")
