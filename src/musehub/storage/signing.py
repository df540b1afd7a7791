"""HMAC-signed URLs for the ``local`` storage backend (docs/wire.md, "Local presigned URLs").

``/_storage/{key}?m=PUT|GET&exp=<unix>&sig=<hex HMAC-SHA256(secret, "m\\nkey\\nexp")>`` grants
one method on one key until ``exp``. A PUT URL also binds the size of the body it accepts:
``&n=<bytes>``, signed as ``"m\\nkey\\nexp\\nn"``. The hub process that verifies need not be
the one that signed: every process sharing a data directory shares the secret (and the record
of PUT URLs already used, see ``LocalStorage.claim``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from urllib.parse import quote

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def signature(secret: str, method: str, key: str, exp: int, size: int | None = None) -> str:
    msg = f"{method}\n{key}\n{exp}" + ("" if size is None else f"\n{size}")
    return hmac.new(secret.encode(), msg.encode(), hashlib.sha256).hexdigest()


def sign_url(
    base_url: str, secret: str, method: str, key: str, expires_s: int, size: int | None = None
) -> str:
    """A URL granting ``method`` on ``key`` for ``expires_s``; with ``size``, only for a body
    of exactly that many bytes."""
    exp = int(time.time()) + int(expires_s)
    sig = signature(secret, method, key, exp, size)
    bound = "" if size is None else f"&n={size}"
    return f"{base_url}/_storage/{quote(key)}?m={method}&exp={exp}{bound}&sig={sig}"


def verify(
    secret: str, method: str, key: str, m: str, exp: str, sig: str, n: str | None = None
) -> str | None:
    """None when the URL grants ``method`` on ``key`` now (for the size ``n`` when the URL
    names one), else the reason it does not."""
    if m != method:
        return "signed for another method"
    try:
        expiry = int(exp)
    except ValueError:
        return "malformed expiry"
    if n is not None and not (n.isascii() and n.isdigit() and len(n) < 20):
        return "malformed size"
    if not _HEX64.fullmatch(sig):  # compare_digest refuses non-ASCII text with a TypeError
        return "malformed signature"
    size = None if n is None else int(n)
    if not hmac.compare_digest(signature(secret, m, key, expiry, size), sig.lower()):
        return "signature does not match"
    if expiry < time.time():
        return "URL expired"
    return None
