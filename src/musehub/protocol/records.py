"""Values the protocol's database statements and its pack store share: upload states and
the packs table's row. Their own module, so that dbops (statements) and repostore (files)
both import it and neither imports the other's dependents.
"""

from __future__ import annotations

from dataclasses import dataclass

UPLOAD_PENDING = "pending"  # presigned URL handed out, not committed yet
UPLOAD_RECEIVING = "receiving"  # a pack being uploaded by a push in progress
UPLOAD_COMMITTING = "committing"  # a presigned bundle being verified by push/commit
UPLOAD_BUNDLE = "bundle"  # a temporary fetch bundle, deleted after expiry
UPLOAD_DONE = "done"
UPLOAD_EXPIRED = "expired"
LIVE_STATES = (UPLOAD_PENDING, UPLOAD_RECEIVING, UPLOAD_COMMITTING, UPLOAD_BUNDLE)


@dataclass(frozen=True)
class PackInfo:
    """One row of the packs table: what a stored pack holds."""

    name: str
    objects: int
    blobs: int
    bytes: int
