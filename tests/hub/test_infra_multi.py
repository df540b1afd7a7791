"""Several hub processes on one database and one object store, and restarts."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from fixtures import Hub, PostgresCluster, SeaweedFS, http_call


@pytest.fixture(params=["sqlite+local", "postgresql+s3"])
def pair(request: pytest.FixtureRequest, tmp_path: Path, start_hub: Any) -> tuple[Hub, Hub]:
    if request.param == "sqlite+local":
        first = start_hub(tmp_path, workers=2)
    else:
        pg: PostgresCluster = request.getfixturevalue("postgres")
        s3: SeaweedFS = request.getfixturevalue("seaweedfs")
        first = start_hub(tmp_path, storage="s3", s3=s3, database=pg.new_database(), workers=2)
    second = start_hub(tmp_path, share=first, workers=2)
    return first, second


def test_hubs_share_database(pair: tuple[Hub, Hub]) -> None:
    a, b = pair
    tok = a.create_user("alice")
    assert b.request("GET", "/api/user", token=tok)[1]["username"] == "alice"
    a.request("POST", "/api/repos", {"slug": "one"}, token=tok)
    code, body = b.request("POST", "/api/repos", {"slug": "one"}, token=tok, check=False)
    assert code == 409 and body["error"] == "repo_exists"
    assert b.request("GET", "/alice/one/refs")[1]["refs"] == {}
    b.request("DELETE", "/api/repos/alice/one", token=tok)
    assert a.request("GET", "/api/repos/alice/one", check=False)[0] == 404


def test_concurrent_creates_across_hubs(pair: tuple[Hub, Hub]) -> None:
    """Both hubs (2 workers each) create the same 10 repositories at once: one wins each."""
    a, b = pair
    tok = a.create_user("bob")
    results: list[int] = []
    lock = threading.Lock()

    def create(hub: Hub) -> None:
        for i in range(10):
            code, _ = hub.request("POST", "/api/repos", {"slug": f"r{i}"}, token=tok, check=False)
            with lock:
                results.append(code)

    threads = [threading.Thread(target=create, args=(h,)) for h in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [201] * 10 + [409] * 30
    listed = a.request("GET", "/api/repos?owner=bob")[1]["repos"]
    assert sorted(r["slug"] for r in listed) == sorted(f"r{i}" for i in range(10))


def test_local_presigned_urls_work_on_every_hub(tmp_path: Path, start_hub: Any) -> None:
    """A URL signed by one process is honoured by another sharing the data directory."""
    from musehub.storage.local import LocalStorage

    a = start_hub(tmp_path)
    b = start_hub(tmp_path, share=a)
    secret = (a.data_dir / "secret_key").read_text().strip()
    st = LocalStorage(str(a.data_dir / "objects"), a.url, secret)
    url, _ = st.presign_put("shared/k", 60)
    assert http_call("PUT", url.replace(a.url, b.url), b"via b")[0] == 200
    assert http_call("GET", st.presign_get("shared/k", 60)) == (200, b"via b")


def test_restart_and_kill_keep_data(hub: Hub) -> None:
    tok = hub.create_user("carol")
    hub.create_repo("carol", "keep", private=True)
    hub.kill()
    assert not hub.running
    hub.start()
    assert hub.request("GET", "/api/repos/carol/keep", token=tok)[0] == 200
    hub.restart()
    assert hub.request("GET", "/api/repos/carol/keep", token=tok)[0] == 200
