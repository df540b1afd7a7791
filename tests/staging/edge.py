"""The edge proxy: nginx with a CDN's limits in front of the hub, and beside it a TLS endpoint
for the object store and git's smart HTTP (``git http-backend`` under ``fcgiwrap``).

Limits as Cloudflare's free plan sets them: request bodies of at most 100 MB (413 above), an
origin read timeout of 100 s, request bodies buffered whole before the origin sees them. The
hub's processes are load balanced (round robin; a refused or broken connection moves on to the
next one, a request already sent is not replayed unless it is idempotent, as nginx does).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

NGINX = "/usr/sbin/nginx"
FCGIWRAP = "/usr/sbin/fcgiwrap"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or (NGINX if os.path.exists(NGINX) else None)


def fcgiwrap_binary() -> str | None:
    return shutil.which("fcgiwrap") or (FCGIWRAP if os.path.exists(FCGIWRAP) else None)


class Site:
    """One TLS server name: where it listens, its certificate, what it proxies to."""

    def __init__(
        self, name: str, cert: Path, key: Path, upstreams: list[str], body_cap: str = "100m"
    ) -> None:
        self.name = name
        self.cert = cert
        self.key = key
        self.upstreams = upstreams  # host:port of the origin servers
        self.body_cap = body_cap


def config(
    directory: Path,
    listen: str,
    hub: Site,
    store: Site | None = None,
    git_root: Path | None = None,
    read_timeout: str = "100s",
) -> str:
    """nginx.conf for the edge: ``hub`` (and ``store``, ``git_root``) on ``listen``."""
    d = directory
    user = "user root;\n" if os.geteuid() == 0 else ""
    hub_servers = "".join(f"    server {u} max_fails=1 fail_timeout=5s;\n" for u in hub.upstreams)
    git = ""
    if git_root is not None:
        git = f"""
    location ~ ^/git(/.*)$ {{
      client_max_body_size {hub.body_cap};
      fastcgi_pass unix:{d}/fcgiwrap.sock;
      fastcgi_request_buffering on;
      fastcgi_read_timeout {read_timeout};
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME /usr/lib/git-core/git-http-backend;
      fastcgi_param GIT_PROJECT_ROOT {git_root};
      fastcgi_param GIT_HTTP_EXPORT_ALL "";
      fastcgi_param GIT_CONFIG_COUNT 1;
      fastcgi_param GIT_CONFIG_KEY_0 http.receivepack;
      fastcgi_param GIT_CONFIG_VALUE_0 true;
      fastcgi_param PATH_INFO $1;
    }}"""
    out = f"""{user}worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 512; }}
http {{
  log_format edge '$server_name $request_method $uri $status $request_length $bytes_sent '
                  '$request_time $upstream_addr $upstream_response_time $connection';
  access_log {d}/access.log edge;
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  ssl_protocols TLSv1.2 TLSv1.3;
  keepalive_timeout 75s;
  keepalive_requests 10000;
  upstream hub {{
{hub_servers}    keepalive 16;
  }}
  server {{
    listen {listen} ssl;
    server_name {hub.name};
    ssl_certificate {hub.cert};
    ssl_certificate_key {hub.key};
    client_max_body_size {hub.body_cap};
    client_body_buffer_size 1m;
    location / {{
      proxy_pass http://hub;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Proto https;
      proxy_request_buffering on;
      proxy_read_timeout {read_timeout};
      proxy_send_timeout {read_timeout};
      proxy_next_upstream error timeout http_502;
    }}{git}
  }}
"""
    if store is not None:
        out += f"""  upstream store {{
    server {store.upstreams[0]};
    keepalive 16;
  }}
  server {{
    listen {listen} ssl;
    server_name {store.name};
    ssl_certificate {store.cert};
    ssl_certificate_key {store.key};
    client_max_body_size 0;
    location / {{
      proxy_pass http://store;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_read_timeout {read_timeout};
    }}
  }}
"""
    return out + "}\n"


class Edge:
    """nginx (and fcgiwrap when git is served) running from ``directory``."""

    def __init__(
        self,
        directory: Path,
        listen: str,
        hub: Site,
        store: Site | None = None,
        git_root: Path | None = None,
        netns: str | None = None,
    ) -> None:
        self.directory = directory
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (directory / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        self.conf = directory / "nginx.conf"
        self.conf.write_text(config(directory, listen, hub, store, git_root))
        self.access_log = directory / "access.log"
        prefix = ["ip", "netns", "exec", netns] if netns else []
        self.fcgi: subprocess.Popen[bytes] | None = None
        nginx = nginx_binary()
        if nginx is None:
            raise FileNotFoundError("nginx is not installed (apt-get install nginx)")
        if git_root is not None:
            fcgiwrap = fcgiwrap_binary()
            if fcgiwrap is None:
                raise FileNotFoundError("fcgiwrap is not installed (apt-get install fcgiwrap)")
            sock = directory / "fcgiwrap.sock"
            self.fcgi = subprocess.Popen(
                [*prefix, fcgiwrap, "-c", "4", "-s", f"unix:{sock}"],
                stderr=open(directory / "fcgiwrap.log", "ab"),
                start_new_session=True,
            )
            _wait_path(sock, self.fcgi)
        self.proc = subprocess.Popen(
            [*prefix, nginx, "-p", str(directory), "-c", str(self.conf), "-e", "stderr"],
            stdout=subprocess.DEVNULL,
            stderr=open(directory / "nginx.stderr", "ab"),
            start_new_session=True,
        )
        _wait_path(directory / "nginx.pid", self.proc)

    def stop(self) -> None:
        for p in (self.proc, self.fcgi):
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(10)

    def log_lines(self) -> list[str]:
        try:
            return self.access_log.read_text().splitlines()
        except FileNotFoundError:
            return []


def _wait_path(path: Path, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.05)
    time.sleep(0.1)  # nginx writes its pid just before it listens
