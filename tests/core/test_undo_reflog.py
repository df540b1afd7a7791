"""The reflog's line format as docs/format.md specifies it, and what RefStore appends."""

from __future__ import annotations

import re
from pathlib import Path

from muse.core import reflog
from muse.core.repo import Repository

DOCS = Path(__file__).resolve().parents[2] / "docs" / "format.md"


def _docs_line() -> bytes:
    m = re.search(r"```reflog\n(.*?)\n```", DOCS.read_text(encoding="utf-8"), re.S)
    assert m, "docs/format.md has no reflog example"
    return m.group(1).encode() + b"\n"


def test_docs_example_parses_and_formats_back() -> None:
    line = _docs_line()
    e = reflog.parse_line(line)
    assert e is not None
    assert e.old == reflog.ZERO and e.new.hex().startswith("5d091a93")
    assert (e.name, e.email, e.when, e.tz) == ("Ada Lovelace", "ada@example.org", 1704153600, 60)
    assert e.message == "commit (initial): first verse"
    assert reflog.format_line(e) == line


def test_torn_lines_are_skipped_and_messages_stay_one_line(tmp_path: Path) -> None:
    e = reflog.Entry(b"\1" * 32, b"\2" * 32, "A B", "a@b", 5, -90, "two\nlines")
    reflog.append(str(tmp_path), "HEAD", e)
    with open(reflog.log_path(str(tmp_path), "HEAD"), "ab") as f:
        f.write(b"garbage without a tab\n0123 torn")
    (got,) = reflog.read(str(tmp_path), "HEAD")
    assert got.message == "two lines" and got.tz == -90 and got.new == b"\2" * 32


def test_refstore_logs_branch_and_head_and_at_n(tmp_path: Path) -> None:
    repo = Repository.init(str(tmp_path / "r"))
    a, b = b"\xaa" * 32, b"\xbb" * 32
    repo.refs.update("refs/heads/main", a, None, log="first")
    repo.refs.update("refs/heads/main", b, a, log="second")
    repo.refs.update("refs/tags/v1", a, None)  # tags keep no log
    repo.refs.update("refs/heads/other", a, None, log="made")
    heads = [e.message for e in reflog.read(repo.muse_dir, "HEAD")]
    assert heads == ["first", "second"]  # HEAD is attached to main: logged for HEAD too
    assert reflog.nth(repo.muse_dir, "refs/heads/main", 0) == b
    assert reflog.nth(repo.muse_dir, "refs/heads/main", 1) == a
    assert reflog.nth(repo.muse_dir, "refs/heads/main", 2) is None  # before it existed
    assert not Path(reflog.log_path(repo.muse_dir, "refs/tags/v1")).exists()
    repo.refs.update("refs/heads/other", None, a)
    assert reflog.read(repo.muse_dir, "refs/heads/other") == []  # deleted with its branch


def test_concurrent_appends_never_interleave(tmp_path: Path) -> None:
    """Four processes append 300 long lines each to one log: every line stays whole."""
    import subprocess
    import sys

    code = (
        "import sys; from muse.core import reflog as r\n"
        "d, k = sys.argv[1], int(sys.argv[2])\n"
        "for i in range(300):\n"
        "    r.append(d, 'HEAD', r.Entry(bytes([k]) * 32, bytes([i % 256]) * 32, 'N' * 200,"
        " 'e@x', i, 0, f'w{k} {i} ' + 'm' * 300))\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(k)]) for k in range(1, 5)
    ]
    assert all(p.wait() == 0 for p in procs)
    raw = Path(reflog.log_path(str(tmp_path), "HEAD")).read_bytes().split(b"\n")[:-1]
    entries = reflog.read(str(tmp_path), "HEAD")
    assert len(raw) == len(entries) == 1200
    for k in range(1, 5):
        mine = [e for e in entries if e.old == bytes([k]) * 32]
        assert [e.when for e in mine] == list(range(300))  # each writer's lines, in its order
