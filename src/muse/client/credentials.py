"""Per-hub access tokens in ``credentials.toml``, readable by the user alone.

The file lives in ``$MUSE_CONFIG_DIR`` or ``$XDG_CONFIG_HOME/muse`` (default
``~/.config/muse``), so tests and scripts can isolate it. It is written atomically under
``credentials.toml.lock`` (muse.core.lockfile) with mode 0600 (the directory 0700) because it
holds secrets. ``MUSE_TOKEN`` in the environment overrides what is stored for one hub, the one
``MUSE_TOKEN_HUB`` names, so a CI token never reaches another hub a job talks to (without
``MUSE_TOKEN_HUB`` it is used only for hubs on this machine, and refused with a message for
any other). Tokens are keyed by the hub's origin (``scheme://host:port``), so every
repository on a hub shares one login.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from muse.client.transport import is_loopback, origin_of
from muse.core import config as _config
from muse.core.lockfile import LockFile
from muse.errors import UsageError

FILE_NAME = "credentials.toml"


def config_dir() -> str:
    d = os.environ.get("MUSE_CONFIG_DIR")
    if d:
        return d
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "muse")


def path() -> str:
    return os.path.join(config_dir(), FILE_NAME)


def load() -> dict[str, Any]:
    data = _config.load(path())
    hubs = data.get("hubs")
    return hubs if isinstance(hubs, dict) else {}


def _save(hubs: dict[str, Any]) -> None:
    d = config_dir()
    os.makedirs(d, mode=0o700, exist_ok=True)
    if os.stat(d).st_mode & 0o077:  # an existing directory others may read: make it ours
        os.chmod(d, 0o700)
    text = _config.dumps({"hubs": hubs}) if hubs else ""
    with LockFile(path(), mode=0o600, what="the credentials file") as lock:
        os.fchmod(lock.fd, 0o600)  # exactly 0600, whatever the umask
        lock.write(text.encode("utf-8"))


def env_token_for(origin: str) -> str | None:
    """MUSE_TOKEN if it is meant for this hub (MUSE_TOKEN_HUB's origin, or, without one, a hub
    on this machine); a UsageError when it is set for no hub in particular and this one is
    elsewhere, rather than sending it or silently going anonymous."""
    env = (os.environ.get("MUSE_TOKEN") or "").strip()
    if not env:
        return None
    scope = (os.environ.get("MUSE_TOKEN_HUB") or "").strip()
    if scope:
        return env if origin_of(scope) == origin else None
    if is_loopback(urlsplit(origin).hostname or ""):
        return env
    raise UsageError(
        f"MUSE_TOKEN is set but MUSE_TOKEN_HUB is not: set MUSE_TOKEN_HUB={origin} to send it "
        "to this hub (it is never sent to a hub it was not meant for)"
    )


def token_for(hub_url: str) -> str | None:
    """The token for a hub: MUSE_TOKEN when meant for it, else the stored one, else None."""
    origin = origin_of(hub_url)
    env = env_token_for(origin)
    if env:
        return env
    entry = load().get(origin)
    if isinstance(entry, dict) and isinstance(entry.get("token"), str):
        return str(entry["token"])
    return None


def store(hub_url: str, token: str, username: str | None = None) -> str:
    """Remember a token for a hub; returns the origin it is stored under."""
    origin = origin_of(hub_url)
    hubs = load()
    entry: dict[str, Any] = {"token": token}
    if username:
        entry["username"] = username
    hubs[origin] = entry
    _save(hubs)
    return origin


def remove(hub_url: str) -> bool:
    origin = origin_of(hub_url)
    hubs = load()
    if origin not in hubs:
        return False
    del hubs[origin]
    _save(hubs)
    return True
