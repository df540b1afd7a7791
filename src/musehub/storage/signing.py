"""HMAC-signed URLs for the ``local`` storage backend (docs/wire.md, "Local presigned URLs").

``/_storage/{key}?m=PUT|GET&exp=<unix>&sig=<hex HMAC-SHA256(secret, "m\\nkey\\nexp")>`` grants
one method on one key until ``exp``. The hub process that verifies need not be the one that
signed: every process sharing a data directory shares the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from urllib.parse import quote

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def signature(secret: str, method: str, key: str, exp: int) -> str:
    msg = f"{method}\n{key}\n{exp}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def sign_url(base_url: str, secret: str, method: str, key: str, expires_s: int) -> str:
    exp = int(time.time()) + int(expires_s)
    sig = signature(secret, method, key, exp)
    return f"{base_url}/_storage/{quote(key)}?m={method}&exp={exp}&sig={sig}"


def verify(secret: str, method: str, key: str, m: str, exp: str, sig: str) -> str | None:
    """None when the URL grants ``method`` on ``key`` now, else the reason it does not."""
    if m != method:
        return "signed for another method"
    try:
        expiry = int(exp)
    except ValueError:
        return "malformed expiry"
    if not _HEX64.fullmatch(sig):  # compare_digest refuses non-ASCII text with a TypeError
        return "malformed signature"
    if not hmac.compare_digest(signature(secret, m, key, expiry), sig.lower()):
        return "signature does not match"
    if expiry < time.time():
        return "URL expired"
    return None
