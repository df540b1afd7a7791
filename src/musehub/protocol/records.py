"""Values the protocol's database statements and its pack store share: the states of the
deferred-deletion ledger and the packs table's row. Their own module, so that dbops
(statements) and repostore (files) both import it and neither imports the other's dependents.

The ledger (table ``deferred_deletions``, one row per storage key) holds every key the hub
writes before anything references it (a presigned upload, a pack a push or a repack is
storing, a fetch bundle, a clone manifest) and every key that stops being referenced while
someone may still read it (a pack a repack replaced). A row whose state is one of
:data:`DUE_STATES` once its ``delete_after`` has passed is garbage: the sweep deletes its key.
"""

from __future__ import annotations

from dataclasses import dataclass

#: A presigned PUT URL was handed out; push/commit has not claimed the upload yet.
AWAITING_UPLOAD = "awaiting_upload"
#: push/commit claimed the upload and is verifying it.
VERIFYING = "verifying"
#: A push or a repack in progress is storing a pack under this key.
STORING = "storing"
#: Garbage once ``delete_after`` passed: fetch bundles, clone manifests, packs a repack
#: replaced, committed uploads (their URL could still PUT a new copy until it expired).
SCHEDULED = "scheduled"
#: The key became part of the repository (an accepted pack): the deletion is called off.
CANCELLED = "cancelled"
#: The key was deleted (by the sweep, or by a push/commit that refused the upload).
DELETED = "deleted"

DUE_STATES = (AWAITING_UPLOAD, VERIFYING, STORING, SCHEDULED)


@dataclass(frozen=True)
class PackInfo:
    """One row of the packs table: what a stored pack holds."""

    name: str
    objects: int
    blobs: int
    bytes: int
