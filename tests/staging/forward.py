"""A real forward proxy (tinyproxy from Debian) on loopback, logging every CONNECT it serves."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def tinyproxy_binary() -> str | None:
    return shutil.which("tinyproxy") or (
        "/usr/bin/tinyproxy" if os.path.exists("/usr/bin/tinyproxy") else None
    )


class ForwardProxy:
    """tinyproxy on ``host:port``; ``connect_ports`` are the ports CONNECT may reach (others
    are refused with 403, as a corporate proxy does)."""

    def __init__(
        self,
        directory: Path,
        host: str,
        port: int,
        connect_ports: list[int] | None = None,
        netns: str | None = None,
    ) -> None:
        binary = tinyproxy_binary()
        if binary is None:
            raise FileNotFoundError("tinyproxy is not installed (apt-get install tinyproxy)")
        directory.mkdir(parents=True, exist_ok=True)
        self.url = f"http://{host}:{port}"
        self.log = directory / "tinyproxy.log"
        lines = [
            f"Port {port}",
            f"Listen {host}",
            "Timeout 600",
            f'LogFile "{self.log}"',
            "LogLevel Connect",
            "MaxClients 64",
            "DisableViaHeader Yes",
        ]
        if os.geteuid() == 0:
            lines += ["User root", "Group root"]
        lines += [f"ConnectPort {p}" for p in (connect_ports or [])]
        conf = directory / "tinyproxy.conf"
        conf.write_text("\n".join(lines) + "\n")
        prefix = ["ip", "netns", "exec", netns] if netns else []
        self.proc = subprocess.Popen(
            [*prefix, binary, "-d", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=open(directory / "tinyproxy.stderr", "ab"),
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while not _listening(host, port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tinyproxy did not start:\n{self.log_text()[-2000:]}")
            time.sleep(0.05)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def connects(self) -> list[str]:
        """The CONNECT requests the proxy logged (``host:port`` each)."""
        out = []
        for line in self.log_text().splitlines():
            if "CONNECT" in line and "Request" in line:
                out.append(line.rsplit("CONNECT", 1)[1].split()[0])
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
