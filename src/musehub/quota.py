"""Storage quotas: the bytes of packs one repository, and one owner's repositories, may hold.

A repository's use is the sum of its ``packs`` rows' bytes (what storage holds for it; a
repack or gc changes it by its own net effect). An owner's use is that sum over all the
repositories they own, whoever pushed. The limits are the hub's settings
``repo_quota_bytes`` and ``user_quota_bytes`` (musehub.config.Limits, 0 = unlimited), unless
the repository's or user's own ``quota_bytes`` column says otherwise: NULL = the hub's
setting, 0 = unlimited, anything else that many bytes.

A push that would take either over its limit is refused with 413 ``quota_exceeded`` (as
Forgejo does), saying which quota, the limit, the use and the push's size: early when the
size is known (push/presign, push/commit, a stream's Content-Length or its bytes as they
arrive) and finally, with the pack's real size, inside the ref transaction (see
musehub.protocol.receive), so neither a lying client nor two pushes at once get past it.
A push that adds no pack (ref moves, deletions) is never refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from musehub.db.models import Pack, Repo, User
from musehub.errors import HubError

if TYPE_CHECKING:
    from musehub.config import Settings

#: A pack this small holds no objects worth counting (a push that only moves or deletes
#: refs sends an empty pack): never refused early; the transaction's exact check decides.
EMPTY_PACK_SLACK = 4096


@dataclass(frozen=True)
class Quota:
    """One limit that applies to a push: a repository's or its owner's."""

    subject: str  # "repository alice/song" or "user alice"
    limit: int | None  # bytes; None = unlimited
    used: int
    #: Where the limit comes from: "set for it" (its own column) or the hub's setting.
    source: str

    @property
    def room(self) -> int | None:
        """Bytes that may still be added (None: no limit)."""
        return None if self.limit is None else max(0, self.limit - self.used)

    def line(self) -> str:
        """One line of ``musehub quota show``."""
        limit = "unlimited" if self.limit is None else _both(self.limit)
        return f"{self.subject}: used {_both(self.used)}, quota {limit}, {self.source}"


def effective(override: int | None, hub_default: int) -> int | None:
    """The limit in force: a column's own value unless NULL, else the hub's; 0 = none."""
    value = hub_default if override is None else override
    return value or None


def quotas(
    s: Session, settings: Settings, repo_id: int, lock: bool = False, every: bool = False
) -> list[Quota]:
    """The repository's and its owner's quotas: those with a limit (``every``: both).

    ``lock`` (inside the ref transaction) locks the owner's row first (FOR NO KEY UPDATE on
    PostgreSQL, which holds up no insert that merely references the user; SQLite's write
    lock is held already), so concurrent pushes to one owner's repositories count each
    other's packs instead of both fitting into the same room.
    """
    row = s.execute(
        select(Repo.slug, Repo.quota_bytes, User.id, User.username, User.quota_bytes)
        .join(User, Repo.owner_id == User.id)
        .where(Repo.id == repo_id)
    ).first()
    if row is None:
        return []
    slug, repo_q, owner_id, owner, user_q = row
    lim = settings.limits
    repo_limit = effective(repo_q, lim.repo_quota_bytes)
    user_limit = effective(user_q, lim.user_quota_bytes)
    if not every and repo_limit is None and user_limit is None:
        return []
    if lock:
        s.execute(select(User.id).where(User.id == owner_id).with_for_update(key_share=True))
    out = []
    if every or repo_limit is not None:
        src = _source(repo_q, "repo_quota_bytes")
        out.append(Quota(f"repository {owner}/{slug}", repo_limit, repo_bytes(s, repo_id), src))
    if every or user_limit is not None:
        out.append(_user_quota(s, settings, owner_id, owner, user_q))
    return out


def user_report(s: Session, settings: Settings, user: User) -> list[Quota]:
    """A user's own quota, then each of their repositories' (musehub quota show USER)."""
    out = [_user_quota(s, settings, user.id, user.username, user.quota_bytes)]
    rows = s.execute(
        select(Repo.id, Repo.slug, Repo.quota_bytes)
        .where(Repo.owner_id == user.id)
        .order_by(Repo.slug)
    ).all()
    for repo_id, slug, repo_q in rows:
        limit = effective(repo_q, settings.limits.repo_quota_bytes)
        src = _source(repo_q, "repo_quota_bytes")
        out.append(Quota(f"repository {user.username}/{slug}", limit, repo_bytes(s, repo_id), src))
    return out


def _user_quota(
    s: Session, settings: Settings, user_id: int, name: str, override: int | None
) -> Quota:
    limit = effective(override, settings.limits.user_quota_bytes)
    src = _source(override, "user_quota_bytes")
    return Quota(f"user {name} (all their repositories)", limit, owner_bytes(s, user_id), src)


def _source(override: int | None, setting: str) -> str:
    return "set for it" if override is not None else f"the hub's {setting}"


def repo_bytes(s: Session, repo_id: int) -> int:
    q = select(func.coalesce(func.sum(Pack.bytes), 0)).where(Pack.repo_id == repo_id)
    return int(s.execute(q).scalar_one())


def owner_bytes(s: Session, owner_id: int) -> int:
    q = (
        select(func.coalesce(func.sum(Pack.bytes), 0))
        .join(Repo, Pack.repo_id == Repo.id)
        .where(Repo.owner_id == owner_id)
    )
    return int(s.execute(q).scalar_one())


def repo_size(s: Session, settings: Settings, repo: Repo) -> dict[str, int | None]:
    """What GET /api/repos/{owner}/{slug} adds: bytes stored and the quota in force."""
    limit = effective(repo.quota_bytes, settings.limits.repo_quota_bytes)
    return {"size_bytes": repo_bytes(s, repo.id), "quota_bytes": limit}


def check(s: Session, settings: Settings, repo_id: int, adding: int, lock: bool = False) -> None:
    """Refuse (413 quota_exceeded) adding ``adding`` bytes of pack to the repository."""
    for q in quotas(s, settings, repo_id, lock):
        if q.room is not None and adding > q.room:
            raise exceeded(q, format_size(adding))


def room(s: Session, settings: Settings, repo_id: int) -> Quota | None:
    """The quota with the least room left (None: no limit applies)."""
    limited = [q for q in quotas(s, settings, repo_id) if q.room is not None]
    return min(limited, key=lambda q: q.room or 0, default=None)


def exceeded(q: Quota, push: str) -> HubError:
    """The refusal: which quota, its limit, what is in use, what the push adds."""
    assert q.limit is not None
    return HubError(
        413,
        "quota_exceeded",
        f"quota of {q.subject} exceeded: limit {format_size(q.limit)} ({q.limit} bytes), "
        f"in use {format_size(q.used)}, this push {push}",
    )


# ----------------------------------------------------------------------- sizes as text
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGTP]?)(?:I?B)?", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes from ``1048576``, ``500M``, ``2G``, ``1.5GiB`` (K, M, G, T, P are powers of
    1024, as in du and Gitea); ValueError for anything else."""
    m = _SIZE.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"not a size: {text!r}")
    value = float(m.group(1)) * _UNITS[m.group(2).upper()]
    if value >= 1 << 63:
        raise ValueError(f"size too large: {text!r}")
    return int(value)


def parse_quota(text: str) -> int | None:
    """A ``quota_bytes`` column's value from ``musehub quota set``: ``none`` (NULL, the
    hub's setting), ``unlimited`` (0) or a size (parse_size; ``0`` is unlimited too)."""
    word = text.strip().lower()
    if word == "none":
        return None
    if word == "unlimited":
        return 0
    return parse_size(text)


def _both(n: int) -> str:
    return format_size(n) if n < 1024 else f"{format_size(n)} ({n} bytes)"


def format_size(n: int) -> str:
    """``512 bytes``, ``1.5 KiB``, ``2.0 GiB``."""
    if n < 1024:
        return f"{n} bytes"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1024 or unit == "PiB":
            break
    return f"{value:.1f} {unit}"
