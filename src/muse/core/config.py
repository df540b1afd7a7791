"""Configuration in TOML: ``.muse/config`` per repository and a per-user global file.

Values are addressed with dotted keys (``user.name``, ``remote.origin.url``): every part but
the last names a table. The global file is ``$MUSE_CONFIG_GLOBAL`` or
``$XDG_CONFIG_HOME/muse/config.toml`` (default ``~/.config/muse/config.toml``). tomllib reads;
the small writer below covers what config holds (tables of strings, numbers, booleans, lists).
"""

from __future__ import annotations

import os
import time
from typing import Any

from muse.core.lockfile import write_atomic
from muse.core.objects import Signature, check_identity
from muse.errors import MuseError

Config = dict[str, Any]

_BARE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


class ConfigError(MuseError, ValueError):
    """A config file that cannot be parsed, or a key/value that cannot be stored."""


def global_config_path() -> str:
    p = os.environ.get("MUSE_CONFIG_GLOBAL")
    if p:
        return p
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "muse", "config.toml")


def load(path: str) -> Config:
    """Parse a TOML config file; a missing file is an empty config."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return {}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"cannot parse {path}: {e}") from None
    fast = _loads_simple(text)
    if fast is not None:
        return fast
    import tomllib  # ~4 ms to import (regexes, datetime): only for files beyond the simple form

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"cannot parse {path}: {e}") from None


def _simple_key(k: str) -> str | None:
    """A bare key, or a basic string key without escapes; None for anything else."""
    if k and _BARE_CHARS.issuperset(k):
        return k
    if len(k) >= 2 and k[0] == '"' and k[-1] == '"':
        inner = k[1:-1]
        if '"' not in inner and "\\" not in inner and _printable(inner):
            return inner
    return None


def _printable(s: str) -> bool:
    return all(ch >= " " and ch != "\x7f" for ch in s)


def _simple_value(v: str) -> tuple[bool, Any]:
    """(ok, value) for a basic string without escapes, a decimal integer, true or false."""
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        inner = v[1:-1]
        if '"' in inner or "\\" in inner or not _printable(inner):
            return False, None
        return True, inner
    if v == "true":
        return True, True
    if v == "false":
        return True, False
    digits = v[1:] if v[:1] == "-" else v
    if digits.isascii() and digits.isdigit() and (digits == "0" or digits[0] != "0"):
        return True, int(v)
    return False, None


def _table_path(inner: str) -> tuple[str, ...] | None:
    """``a."b.c".d`` -> ("a", "b.c", "d"): dots inside quoted keys do not split."""
    parts: list[str] = []
    i, n = 0, len(inner)
    while True:
        while i < n and inner[i] in " \t":
            i += 1
        if i < n and inner[i] == '"':
            end = inner.find('"', i + 1)
            if end < 0:
                return None
            j = end + 1
        else:
            j = i
            while j < n and inner[j] not in ". \t":
                j += 1
        key = _simple_key(inner[i:j])
        if key is None:
            return None
        parts.append(key)
        i = j
        while i < n and inner[i] in " \t":
            i += 1
        if i == n:
            return tuple(parts)
        if inner[i] != ".":
            return None
        i += 1


def _loads_simple(text: str) -> Config | None:
    """Parse the form :func:`dumps` writes (``[a.b]`` tables; ``key = "string"``, integers,
    booleans; comments on their own lines) without importing tomllib. Returns None for anything
    else, duplicates included, so that tomllib decides (and reports errors) exactly as before."""
    root: Config = {}
    cur = root
    seen_tables: set[tuple[str, ...]] = set()
    for raw in text.split("\n"):
        line = raw.strip(" \t")
        if not line or line[0] == "#":
            if "\r" in line or not _printable(line.replace("\t", " ")):
                return None
            continue
        if line[0] == "[":
            if line[-1] != "]" or line.startswith("[["):
                return None
            path = _table_path(line[1:-1])
            if path is None:
                return None
            if path in seen_tables:
                return None
            seen_tables.add(path)
            cur = root
            for p in path:
                nxt = cur.setdefault(p, {})
                if not isinstance(nxt, dict):
                    return None
                cur = nxt
            continue
        k, eq, v = line.partition("=")
        if not eq:
            return None
        key = _simple_key(k.strip(" \t"))
        ok, value = _simple_value(v.strip(" \t"))
        if key is None or not ok or key in cur:
            return None
        cur[key] = value
    return root


def save(path: str, config: Config) -> None:
    """Write a config atomically under ``<path>.lock`` (muse.core.lockfile; not fsynced, as
    git's default); LockHeld if another process holds the lock."""
    text = dumps(config)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    write_atomic(path, text.encode("utf-8"), what=f"the config file {path}")


def _key(k: str) -> str:
    return k if k and _BARE_CHARS.issuperset(k) else _str(k)


def _str(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return _str(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    raise ConfigError(f"cannot store a {type(v).__name__} in the config")


def dumps(config: Config) -> str:
    """Serialize nested dicts as TOML tables (scalars first, then sub-tables)."""
    lines: list[str] = []

    def emit(table: Config, path: list[str]) -> None:
        scalars = [(k, v) for k, v in table.items() if not isinstance(v, dict)]
        tables = [(k, v) for k, v in table.items() if isinstance(v, dict)]
        if path and (scalars or not tables):
            if lines:
                lines.append("")
            lines.append("[" + ".".join(_key(p) for p in path) + "]")
        for k, v in scalars:
            lines.append(f"{_key(k)} = {_value(v)}")
        for k, v in tables:
            emit(v, path + [k])

    emit(config, [])
    return "\n".join(lines) + "\n" if lines else ""


def get_value(config: Config, key: str) -> Any:
    """The value at a dotted key, or None."""
    cur: Any = config
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def set_value(config: Config, key: str, value: Any) -> None:
    parts = key.split(".")
    if len(parts) < 2 or not all(parts):
        raise ConfigError(f"a config key needs a section and a name: {key!r}")
    cur = config
    for part in parts[:-1]:
        nxt = cur.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"{key!r}: {part!r} is a value, not a section")
        cur = nxt
    cur[parts[-1]] = value


def unset_value(config: Config, key: str) -> bool:
    parts = key.split(".")
    cur: Any = config
    stack = []
    for part in parts[:-1]:
        if not isinstance(cur, dict) or part not in cur:
            return False
        stack.append((cur, part))
        cur = cur[part]
    if not isinstance(cur, dict) or parts[-1] not in cur:
        return False
    del cur[parts[-1]]
    for parent, part in reversed(stack):  # drop tables left empty
        if parent[part] == {}:
            del parent[part]
    return True


# ------------------------------------------------------------------------------ identity
def _os_user() -> tuple[str, str]:
    """A default identity the way git guesses one: the login's full name and user@host."""
    login = ""
    full = ""
    try:
        import pwd

        pw = pwd.getpwuid(os.getuid())
        login = pw.pw_name
        full = pw.pw_gecos.split(",")[0].strip()
    except (ImportError, KeyError):
        pass
    login = login or os.environ.get("USER") or os.environ.get("USERNAME") or "user"
    import socket

    host = socket.gethostname() or "localhost"
    if "." not in host:
        host += ".(none)"
    return (full or login), f"{login}@{host}"


def parse_date(text: str) -> tuple[int, int]:
    """(seconds, tz minutes) from ``<unix> [+hhmm]`` or an ISO 8601 date-time."""
    import re

    text = text.strip()
    m = re.fullmatch(r"@?(-?\d+)(?:\s+([+-])(\d{2}):?(\d{2}))?", text)
    if m:
        tz = 0
        if m.group(2):
            tz = int(m.group(3)) * 60 + int(m.group(4))
            if m.group(2) == "-":
                tz = -tz
        return int(m.group(1)), tz
    from datetime import datetime

    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"cannot parse date {text!r}") from None
    off = dt.utcoffset()
    if off is None:
        return int(dt.timestamp()), _local_tz_minutes()
    return int(dt.timestamp()), int(off.total_seconds() // 60)


def _local_tz_minutes(when: float | None = None) -> int:
    t = time.localtime(when)
    return (t.tm_gmtoff or 0) // 60


def identity_guessed(config: Config) -> bool:
    """Whether a commit's name or email would come from the OS (no env, no user.* config):
    git then warns that it "configured them automatically" (muse commit warns too)."""
    env = os.environ
    for field in ("NAME", "EMAIL"):
        if (
            env.get(f"MUSE_AUTHOR_{field}") is None
            and get_value(config, "user." + field.lower()) is None
        ):
            return True
    return False


def signature(config: Config, role: str = "AUTHOR") -> Signature:
    """Who is committing now: env MUSE_<role>_NAME/EMAIL/DATE, then config user.*, then the OS.

    MUSE_COMMITTER_* fall back to MUSE_AUTHOR_*, so setting the author alone pins both.
    """
    env = os.environ

    def pick(field: str) -> str | None:
        v = env.get(f"MUSE_{role}_{field}")
        if v is None and role != "AUTHOR":
            v = env.get(f"MUSE_AUTHOR_{field}")
        return v

    name = pick("NAME")
    email = pick("EMAIL")
    if name is None:
        name = get_value(config, "user.name")
    if email is None:
        email = get_value(config, "user.email")
    if name is None or email is None:
        dn, de = _os_user()
        name = dn if name is None else name
        email = de if email is None else email
    name = str(name).strip()
    email = str(email).strip()
    try:
        check_identity(name, email)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    date = pick("DATE")
    if date:
        when, tz = parse_date(date)
    else:
        now = time.time()
        when, tz = int(now), _local_tz_minutes(now)
    return Signature(name, email, when, tz)
