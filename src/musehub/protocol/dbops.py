"""Every database statement of the protocol, in one place: refs, packs, deferred deletions.

Kept apart so the transaction that makes a push visible reads as a whole, and so each
statement is visibly a bulk one (no per-object rows, no per-object queries).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import (
    CursorResult,
    Executable,
    Insert,
    Table,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from musehub.db.models import DeferredDeletion, Lease, Pack, Ref, Repo
from musehub.names import is_ledger_id
from musehub.protocol.records import (
    DELETED,
    DUE_STATES,
    SCHEDULED,
    STORING,
    VERIFYING,
    PackInfo,
)

# DML goes through the Core tables: ORM-enabled bulk statements do not report a reliable
# rowcount on every driver, and compare-and-swap lives on rowcount.
REFS = cast(Table, Ref.__table__)
PACKS = cast(Table, Pack.__table__)
DEFERRED = cast(Table, DeferredDeletion.__table__)


class StaleRef(Exception):
    """A compare-and-swap found the ref elsewhere than expected; the transaction must roll back."""

    def __init__(self, ref: str) -> None:
        super().__init__(ref)
        self.ref = ref


def _dml(s: Session, stmt: Executable) -> CursorResult[Any]:
    """Run an UPDATE or DELETE; its result reports the rows it touched (``rowcount``)."""
    return cast(CursorResult[Any], s.execute(stmt))


def _utc(ts: float) -> int:
    """Times are integer Unix seconds in every table (musehub.db.models)."""
    return int(ts)


def _ts(value: Any) -> float:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.timestamp()
    return float(value)


def read_refs(s: Session, repo_id: int) -> dict[str, bytes]:
    rows = s.execute(select(Ref.name, Ref.target).where(Ref.repo_id == repo_id)).all()
    return {name: bytes.fromhex(target) for name, target in rows}


def pack_infos(s: Session, repo_id: int) -> list[PackInfo]:
    rows = s.execute(
        select(Pack.name, Pack.objects, Pack.blobs, Pack.bytes)
        .where(Pack.repo_id == repo_id)
        .order_by(Pack.id)
    ).all()
    return [PackInfo(n, o, b, z) for n, o, b, z in rows]


def insert_pack(s: Session, repo_id: int, info: PackInfo) -> None:
    s.execute(
        insert(PACKS).values(
            repo_id=repo_id,
            name=info.name,
            objects=info.objects,
            blobs=info.blobs,
            bytes=info.bytes,
        )
    )


def _insert_ignore(s: Session, table: Table) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING: a lost creation race is a rowcount of 0, not an error
    that would abort the whole transaction."""
    if s.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()


def replace_packs(s: Session, repo_id: int, old: list[str], new: PackInfo | None) -> None:
    """Swap merged packs for their union (or, for garbage collection, for what of them is
    still reachable: nothing at all when ``new`` is None); raises StaleRef if any row is
    already gone."""
    res = _dml(s, delete(PACKS).where(PACKS.c.repo_id == repo_id, PACKS.c.name.in_(old)))
    if res.rowcount != len(old):
        raise StaleRef("packs")
    if new is not None:
        insert_pack(s, repo_id, new)


def pack_ages(s: Session, repo_id: int) -> dict[str, float]:
    """{pack name: when its row was written} (garbage collection spares young packs)."""
    rows = s.execute(select(Pack.name, Pack.created_at).where(Pack.repo_id == repo_id)).all()
    return {name: _ts(created) for name, created in rows}


def repo_owners(s: Session, repo_ids: list[int] | None = None) -> list[tuple[int, int, str]]:
    """(repo id, owner id, "owner/slug") of the given repositories, or of every one."""
    from musehub.db.models import User

    q = select(Repo.id, Repo.owner_id, User.username, Repo.slug).join(
        User, User.id == Repo.owner_id
    )
    if repo_ids is not None:
        q = q.where(Repo.id.in_(repo_ids))
    rows = s.execute(q.order_by(User.username, Repo.slug)).all()
    return [(r[0], r[1], f"{r[2]}/{r[3]}") for r in rows]


#: Names MuseHub's advisory locks on PostgreSQL (with the repository id as second key);
#: the first is ``musehub.db.migrate``'s.
GC_LOCK_CLASS = 0x6D75_7367  # "musg"


def gc_fence(s: Session, repo_id: int, exclusive: bool = False) -> None:
    """Order pack listings against a garbage collection's swap (musehub.protocol.gc).

    PostgreSQL: the swap holds the repository's advisory lock exclusively for its
    transaction, every pack listing holds it shared for the listing's, so a listing either
    commits before the swap or reads after it. SQLite needs nothing: the swap's transaction
    holds the write lock (``BEGIN IMMEDIATE``), and a push's ledger row, written before its
    listing, needs that lock too.
    """
    if s.get_bind().dialect.name != "postgresql":
        return
    from sqlalchemy import func

    fn = func.pg_advisory_xact_lock if exclusive else func.pg_advisory_xact_lock_shared
    s.execute(select(fn(GC_LOCK_CLASS, repo_id)))


def pushes_in_flight(s: Session, repo_id: int, now: float, but: str | None = None) -> int:
    """Ledger rows of this repository's pushes (and repacks) still storing or verifying a
    pack: each was written before its push listed the repository's packs, and the push's
    ref transaction (or its refusal) ends it. ``but``: one's own row."""
    d = DeferredDeletion
    q = select(d.id).where(
        d.repo_id == repo_id,
        d.state.in_((STORING, VERIFYING)),
        d.delete_after > _utc(now),
    )
    if but is not None:
        q = q.where(d.id != but)
    return len(s.execute(q).all())


def retired_packs(
    s: Session, repo_id: int, after: float, created_after: float
) -> list[tuple[str, str]]:
    """(ledger row, pack name) of the repository's packs that a repack or gc replaced and
    that stay in storage until later than ``after`` (a hole can still be filled from them):
    their rows are not due before then, nor older than the sweep's grace (``created_after``)."""
    d = DeferredDeletion
    prefix = f"repos/{repo_id}/packs/"
    rows = s.execute(
        select(d.id, d.key).where(
            d.repo_id == repo_id,
            d.state == SCHEDULED,
            d.delete_after > _utc(after),
            d.created_at > _utc(created_after),
            d.key.startswith(prefix, autoescape=True),
        )
    ).all()
    return [(r[0], r[1][len(prefix) : -len(".pack")]) for r in rows if r[1].endswith(".pack")]


def end_storing(s: Session, repo_id: int, key: str) -> None:
    """A pack being stored was deleted again (refused push, lost repack): its ledger row is
    done, so nobody takes the push for one still in flight."""
    d = DeferredDeletion
    s.execute(
        update(DEFERRED)
        .where(d.repo_id == repo_id, d.key == key, d.state == STORING)
        .values(state=DELETED)
    )


def move_ref(s: Session, repo_id: int, ref: str, old: bytes | None, new: bytes | None) -> bool:
    """Compare-and-swap one ref inside the caller's transaction; raises StaleRef.

    The first statement is always a write, so SQLite takes its write lock at once (a read
    first would risk a lock-upgrade failure under concurrency). A ref that already holds
    ``new`` is accepted: that is an idempotent retry of a push that succeeded. Returns
    whether the ref changed.
    """
    if old is None and new is not None:
        # RETURNING, not rowcount: drivers report -1 for INSERT ... ON CONFLICT DO NOTHING.
        stmt = _insert_ignore(s, REFS).values(repo_id=repo_id, name=ref, target=new.hex())
        if s.execute(stmt.returning(REFS.c.id)).first() is not None:
            return True
    elif new is None and old is not None:
        res = _dml(
            s, delete(REFS).where(Ref.repo_id == repo_id, Ref.name == ref, Ref.target == old.hex())
        )
        if res.rowcount == 1:
            return True
    elif old is not None and new is not None:
        res = _dml(
            s,
            update(REFS)
            .where(Ref.repo_id == repo_id, Ref.name == ref, Ref.target == old.hex())
            .values(target=new.hex()),
        )
        if res.rowcount == 1:
            return True
    cur = s.execute(
        select(Ref.target).where(Ref.repo_id == repo_id, Ref.name == ref)
    ).scalar_one_or_none()
    if (cur is None and new is None) or (cur is not None and new is not None and cur == new.hex()):
        return False
    raise StaleRef(ref)


def ref_in_the_way(s: Session, repo_id: int, created: list[str]) -> tuple[str, str] | None:
    """(new ref, existing ref) where a ref just created and another are a file and a
    directory of one another (``refs/heads/df`` and ``refs/heads/df/x``), which no client
    can store; None if there is none. Called inside the ref transaction, after its writes.

    The repository row is locked first (FOR UPDATE on PostgreSQL; SQLite's write lock is
    already held), so two pushes creating ``df`` and ``df/x`` at once cannot both pass:
    the second to take the lock sees the first's row once it committed.
    """
    if not created:
        return None
    s.execute(select(Repo.id).where(Repo.id == repo_id).with_for_update())
    for ref in created:
        parts = ref.split("/")
        above = ["/".join(parts[:i]) for i in range(1, len(parts))]
        other = s.execute(
            select(Ref.name)
            .where(
                Ref.repo_id == repo_id,
                Ref.name.in_(above) | Ref.name.startswith(ref + "/", autoescape=True),
            )
            .limit(1)
        ).scalar_one_or_none()
        if other is not None:
            return ref, other
    return None


# ---------------------------------------------------------------------- deferred deletions
def defer_deletion(
    s: Session,
    row_id: str,
    repo_id: int,
    user_id: int | None,
    key: str,
    delete_after: float,
    state: str,
) -> None:
    """Record ``key`` in the ledger: deleted after ``delete_after`` while ``state`` is due."""
    s.execute(
        insert(DEFERRED).values(
            id=row_id,
            repo_id=repo_id,
            user_id=user_id,
            key=key,
            delete_after=_utc(delete_after),
            state=state,
        )
    )


def get_deferred(s: Session, row_id: str) -> tuple[int, int | None, str, float, str] | None:
    """(repo_id, user_id, key, delete_after, state) of one row, or None (also for an id no row
    can have, such as a client's upload id holding a NUL or a lone surrogate)."""
    if not is_ledger_id(row_id):
        return None
    d = DeferredDeletion
    row = s.execute(
        select(d.repo_id, d.user_id, d.key, d.delete_after, d.state).where(d.id == row_id)
    ).first()
    if row is None:
        return None
    return row[0], row[1], row[2], _ts(row[3]), row[4]


def claim_deferred(
    s: Session, row_id: str, from_state: str, to_state: str, delete_after: float
) -> bool:
    """Move a row between states by compare-and-swap (two commits of one id: one wins)."""
    res = _dml(
        s,
        update(DEFERRED)
        .where(DeferredDeletion.id == row_id, DeferredDeletion.state == from_state)
        .values(state=to_state, delete_after=_utc(delete_after)),
    )
    return res.rowcount == 1


def set_deferred_state(s: Session, row_id: str, state: str) -> None:
    s.execute(update(DEFERRED).where(DeferredDeletion.id == row_id).values(state=state))


def due_deletions(s: Session, now: float, grace_s: float | None = None) -> list[tuple[str, str]]:
    """(row id, key) of every row whose key is garbage: due, and past its delete_after (or,
    with ``grace_s``, older than that, whatever its delete_after: the sweep's upper bound)."""
    d = DeferredDeletion
    when = d.delete_after < _utc(now)
    if grace_s is not None:
        when = or_(when, d.created_at < _utc(now - grace_s))
    rows = s.execute(select(d.id, d.key).where(d.state.in_(DUE_STATES), when)).all()
    return [(r[0], r[1]) for r in rows]


def all_packs(s: Session) -> list[tuple[int, str]]:
    """(repo id, name) of every pack of every repository (for the sweep)."""
    return [(r[0], r[1]) for r in s.execute(select(Pack.repo_id, Pack.name)).all()]


def pending_keys(s: Session) -> list[str]:
    """Every ledger key not deleted yet: work in progress, or garbage whose time is to come."""
    d = DeferredDeletion
    rows = s.execute(select(d.key).where(d.state.in_(DUE_STATES))).all()
    return [r[0] for r in rows]


# ---------------------------------------------------------------------------------- leases
LEASES = cast(Table, Lease.__table__)


def take_lease(s: Session, name: str, holder: str, now: float, ttl_s: float) -> bool:
    """Hold the lease ``name`` until now + ttl_s if it is free (expired) or ours already;
    by compare-and-swap, so of several processes asking at once exactly one gets it."""
    until = _utc(now + ttl_s)
    res = _dml(
        s,
        update(LEASES)
        .where(
            LEASES.c.name == name, (LEASES.c.expires_at <= _utc(now)) | (LEASES.c.holder == holder)
        )
        .values(holder=holder, expires_at=until),
    )
    if res.rowcount == 1:
        return True
    stmt = _insert_ignore(s, LEASES).values(name=name, holder=holder, expires_at=until)
    return s.execute(stmt.returning(LEASES.c.name)).first() is not None
