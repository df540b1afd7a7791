"""A local pack that is exactly the history being pushed: found, proven once, recorded.

A first push to an empty hub sends what is reachable from the pushed commits. When one local
pack holds exactly that (a history imported by ``muse fast-import``, or cloned), the pack goes
as it is, without walking the history. Proving it (``verify.closure_pack``, one pass over the
pack's trees and commits) costs about a quarter of a second for pallets/flask, so the proof is
kept in the pack's closure record (``core.pack.closure``): ``muse fast-import`` proves what it
wrote for the branches it made, and a push proves what it did not find recorded.
"""

from __future__ import annotations

from muse.core.objects import COMMIT
from muse.core.pack import closure
from muse.core.pack.file import PackFile
from muse.core.repo import Repository


def proven(pf: PackFile, wants: list[bytes]) -> bool:
    """Whether ``pf`` is exactly what ``wants`` reach: from its record, or proven now (and
    then recorded)."""
    from muse.wire.verify import closure_pack

    path = str(pf.path)
    if closure.recorded(path, wants):
        return True
    if not closure_pack(pf, wants):
        return False
    closure.remember(path, wants)
    return True


def closure_pack_path(
    repo: Repository, wants: list[bytes]
) -> tuple[str, list[tuple[int, bytes]]] | None:
    """A local pack holding exactly what is reachable from ``wants``, and its (kind, id)s;
    None when no pack qualifies. Never one holding anything more (no objects of other
    branches, nothing the user did not push)."""
    packs = repo.store.packs
    if packs is None or not wants:
        return None
    holders = [pf for pf in packs.packs if all(pf.kind(w) == COMMIT for w in wants)]
    if len(holders) != 1:
        return None
    pf = holders[0]
    if not proven(pf, wants):
        return None
    return str(pf.path), list((k, oid) for oid, k in pf.kinds())
