"""Progress a person can read (issue 10): on a terminal, on stderr, phase, done/total,
percent, rate and time left; nothing with --quiet or when stderr is not a terminal."""

from __future__ import annotations

import os
import pty
import random
import re
import subprocess
import threading
from pathlib import Path
from typing import Any

from .conftest import MUSE, Muse

MiB = 1 << 20


def _on_tty(muse: Muse, *args: str, cwd: Path) -> tuple[int, str]:
    """Run muse with stderr on a pseudo-terminal; (exit code, what the terminal showed)."""
    master, slave = pty.openpty()
    env = {**muse.env, "TERM": "xterm"}
    p = subprocess.Popen(
        [*MUSE, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=slave, stdin=None
    )
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the other end closed
                return
            if not data:
                return
            chunks.append(data)

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    p.communicate(timeout=300)
    t.join(10)
    os.close(master)
    return p.returncode, b"".join(chunks).decode(errors="replace")


def test_progress_on_a_terminal(muse: Muse, tmp_path: Path, hub: Any) -> None:
    token = hub.create_user("alice")
    muse.login(hub.url, token)
    src = tmp_path / "src"
    muse.run("init", str(src))
    (src / "take.wav").write_bytes(random.Random("p").randbytes(48 * MiB))
    rc, shown = _on_tty(muse, "commit", "-m", "take", cwd=src)
    assert rc == 0
    assert re.search(r"Hashing take.wav: +48.0 MiB / 48.0 MiB +100%", shown), shown
    for path in ("presign", "stream"):
        hub.create_repo("alice", f"p-{path}")
        dest = hub.repo_url("alice", f"p-{path}")
        muse.run("remote", "add", path, dest, cwd=src)
        rc, shown = _on_tty(muse, "push", "--path", path, path, "main", cwd=src)
        assert rc == 0, shown
        phase = "Uploading bundle:" if path == "presign" else "Sending objects:"
        assert phase in shown and "%" in shown and "/s" in shown, shown
        rc, shown = _on_tty(muse, "clone", "--path", path, dest, str(tmp_path / path), cwd=tmp_path)
        assert rc == 0, shown
        assert "Receiving" in shown and "%" in shown, shown
        assert re.search(r"Restoring files: +1/1 objects .*100%", shown), shown
    # --quiet: nothing on the terminal; stderr not a terminal: no control codes
    (src / "take.wav").write_bytes(random.Random("q").randbytes(8 * MiB))
    rc, shown = _on_tty(muse, "commit", "-q", "-m", "quiet", cwd=src)
    assert rc == 0 and "Hashing" not in shown
    (src / "take.wav").write_bytes(random.Random("r").randbytes(8 * MiB))
    cp = muse.run("commit", "-m", "piped", cwd=src)
    assert "\x1b" not in cp.stderr and "\r" not in cp.stderr
