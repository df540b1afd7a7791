"""Helpers shared by the core commands: open the repository, resolve revisions, format."""

from __future__ import annotations

import time

from muse.core.repo import NotARepository, Repository, UnknownRevision
from muse.errors import NotFound


def open_repo() -> Repository:
    try:
        return Repository.find()
    except NotARepository as e:
        raise NotFound(str(e)) from None


def resolve(repo: Repository, rev: str, kind: int | None = 3) -> bytes:
    try:
        return repo.resolve(rev, kind)
    except UnknownRevision as e:
        raise NotFound(str(e)) from None


def short(oid: bytes) -> str:
    return oid.hex()[:12]


def format_date(when: int, tz_minutes: int) -> str:
    t = time.gmtime(when + tz_minutes * 60)
    sign = "+" if tz_minutes >= 0 else "-"
    off = abs(tz_minutes)
    return time.strftime("%a %b %d %H:%M:%S %Y", t) + f" {sign}{off // 60:02d}{off % 60:02d}"
