"""Monitoring (issue 16): /metrics summed over several worker processes, /healthz and
/readyz, the access log's user, client, repository and request id, the metrics token."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from fixtures.recovery import wait_until
from ops_util import add_commit, clone_and_fsck, muse, user_env, work_tree

from muse.wire.messages import PUSH_TYPE

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _metrics(hub: Any, token: str | None = None) -> Samples:
    from prometheus_client.parser import text_string_to_metric_families

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(f"{hub.url}/metrics", headers=headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _sum(samples: Samples, name: str, **labels: str) -> float:
    return sum(
        v
        for (n, ls), v in samples.items()
        if n == name and all(dict(ls).get(k) == val for k, val in labels.items())
    )


def test_metrics_over_two_workers_and_the_access_log(tmp_path: Path, start_hub: Any) -> None:
    hub = start_hub(tmp_path / "hub", workers=2)
    token = hub.create_user("alice")
    hub.create_repo("alice", "song")
    env = user_env(tmp_path, token)
    root = work_tree(env, tmp_path / "src", hub.repo_url("alice", "song"), commits=1)
    for i in range(3):  # 4 pushes on the stream path, one on the presigned path
        add_commit(env, root, f"more{i}")
        muse(env, "push", cwd=root)
    add_commit(env, root, "big")
    muse(env, "push", "--path", "presign", cwd=root)
    assert clone_and_fsck(env, hub.repo_url("alice", "song"), tmp_path / "c1")
    muse(env, "clone", "--path", "presign", hub.repo_url("alice", "song"), str(tmp_path / "c2"))
    # a push refused: its body is no push
    status, _ = hub.request(
        "POST",
        "/alice/song/push/stream",
        b"garbage",
        token,
        headers={"Content-Type": PUSH_TYPE},
        check=False,
    )
    assert status == 400
    for _ in range(6):  # spread over both workers
        assert hub.request("GET", "/alice/song/refs")[0] == 200

    m = _metrics(hub)
    assert _sum(m, "musehub_pushes_total", path="stream") == 4
    assert _sum(m, "musehub_pushes_total", path="presign") == 1
    assert _sum(m, "musehub_fetches_total", path="stream") >= 1
    assert _sum(m, "musehub_fetches_total", path="presign") >= 1
    assert _sum(m, "musehub_objects_received_total") > 10
    refs = _sum(m, "musehub_http_requests_total", route="/{owner}/{slug}/refs", status="200")
    assert refs >= 6
    assert (
        _sum(m, "musehub_http_request_duration_seconds_count", route="/{owner}/{slug}/refs") == refs
    )
    assert _sum(m, "musehub_http_received_bytes_total", route="/{owner}/{slug}/push/stream") > 0
    assert _sum(m, "musehub_http_sent_bytes_total", route="/{owner}/{slug}/fetch/bundle") > 0
    assert _sum(m, "musehub_pack_cache_bytes") > 0
    push = "/{owner}/{slug}/push/stream"
    assert _sum(m, "musehub_http_requests_total", route=push, status="400") == 1
    # a hostile path never becomes a label
    hub.request("GET", "/no/such/place/at/all", check=False)

    def counted() -> Samples | None:  # a request is counted once its answer went out
        m = _metrics(hub)
        unmatched = _sum(m, "musehub_http_requests_total", route="unmatched", status="404")
        return m if unmatched >= 1 else None

    m = wait_until(counted, 10, "the 404 to be counted")
    assert not any("no/such" in str(labels) for _, labels in m)

    # request ids: ours are kept, hostile ones replaced
    req = urllib.request.Request(f"{hub.url}/alice/song/refs", headers={"X-Request-Id": "abc-123"})
    with urllib.request.urlopen(req) as resp:
        assert resp.headers["X-Request-Id"] == "abc-123"
    req = urllib.request.Request(f"{hub.url}/alice/song/refs", headers={"X-Request-Id": "<script>"})
    with urllib.request.urlopen(req) as resp:
        assert (
            resp.headers["X-Request-Id"] != "<script>" and len(resp.headers["X-Request-Id"]) == 16
        )
    time.sleep(0.3)
    lines = [ln for ln in hub.log().splitlines() if "musehub.access" in ln]
    mine = [ln for ln in lines if "id=abc-123" in ln]
    assert len(mine) == 1 and "repo=alice/song" in mine[0] and "client=127.0.0.1" in mine[0]
    assert any("user=alice" in ln and "/push/stream 200" in ln for ln in lines)


def test_health_ready_json_log_and_metrics_token(tmp_path: Path, start_hub: Any) -> None:
    hub = start_hub(
        tmp_path / "hub", env={"MUSEHUB_LOG_FORMAT": "json", "MUSEHUB_METRICS_TOKEN": "s3cret"}
    )
    assert hub.request("GET", "/healthz")[1] == {"status": "ok"}
    assert hub.request("GET", "/readyz")[1] == {"status": "ok", "database": "ok", "storage": "ok"}
    status, body = hub.request("GET", "/metrics", check=False)
    assert status == 403 and body["error"] == "forbidden"
    status, body = hub.request("GET", "/metrics", token="wrong", check=False)
    assert status == 403
    m = _metrics(hub, "s3cret")
    assert _sum(m, "musehub_http_requests_total", route="/metrics", status="403") == 2
    token = hub.create_user("bob")
    hub.request("GET", "/api/user", token=token, headers={"X-Request-Id": "req-42"})
    time.sleep(0.3)
    docs = []
    for line in hub.log().splitlines():
        start = line.find("{")
        if "musehub.access" in line and start >= 0:
            docs.append(json.loads(line[start:]))
    mine = [d for d in docs if d["request_id"] == "req-42"]
    assert mine == [
        {
            "method": "GET",
            "path": "/api/user",
            "status": 200,
            "ms": mine[0]["ms"],
            "bytes_in": 0,
            "bytes_out": mine[0]["bytes_out"],
            "user": "bob",
            "client": "127.0.0.1",
            "repo": "-",
            "request_id": "req-42",
        }
    ]
