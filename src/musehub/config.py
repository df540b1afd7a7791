"""Hub settings: defaults, then an optional TOML file, then ``MUSEHUB_*`` environment variables.

Every field can be set in the TOML file (top level; the limits also in a ``[limits]`` table)
or by the environment variable ``MUSEHUB_<FIELD>`` in upper case, for example
``MUSEHUB_DATABASE_URL``, ``MUSEHUB_STORAGE=s3``, ``MUSEHUB_MAX_PACK_BYTES``. The environment
wins over the file; explicit keyword overrides (from the command line) win over both.

``secret_key`` signs the local storage's presigned URLs. When none is configured, one is
generated on first use and kept in ``<data_dir>/secret_key`` (created exclusively, so several
hub processes sharing a data directory agree on it).
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from muse.wire.messages import STREAM_MAX_BLOBS, STREAM_MAX_BYTES

MiB = 1 << 20
GiB = 1 << 30

ENV_PREFIX = "MUSEHUB_"


class ConfigError(ValueError):
    """A setting that cannot be used; the message names it."""


@dataclass
class Limits:
    """What the hub accepts and when it switches transport paths (docs/wire.md §3)."""

    max_pack_bytes: int = 10 * GiB
    max_object_bytes: int = 2 * GiB
    stream_max_blobs: int = STREAM_MAX_BLOBS  # the protocol's defaults (muse.wire.messages)
    stream_max_bytes: int = STREAM_MAX_BYTES
    #: Records in one pack, and bytes after decompression (a zstd bomb stops here).
    max_objects: int = 10_000_000
    max_decompressed_bytes: int = 40 * GiB
    #: zstd blocks may expand at most this many times the pack bytes read (plus 64 MiB).
    max_zstd_expansion: int = 250
    #: Decompressed bytes all receives of one worker process may hold at once.
    decode_budget_bytes: int = 64 * MiB
    #: Helper processes per worker that re-hash a pushed pack's objects on another core
    #: while the request checks everything else (musehub.protocol.idhash); 0 = no helper.
    hash_processes: int = 1
    #: Requests per minute per token (or per client address when anonymous); 0 = unlimited.
    rate_limit_per_minute: int = 1200
    #: Failed authentications (bad, expired, revoked tokens) per minute per client address;
    #: beyond it, requests with a token are 429 before any lookup. 0 = unlimited.
    auth_failures_per_minute: int = 60
    #: Connection bounds (musehub.server; 0 = off). Seconds from a connection, or from the
    #: first byte of a next request, to the end of its headers (slowloris), then 408.
    header_timeout_s: float = 20.0
    #: Seconds without a request body byte while the hub reads one (a stalled push or
    #: presigned PUT): a push is answered 400, any other request's connection is closed.
    body_idle_timeout_s: float = 60.0
    #: Seconds a kept-alive connection may wait for its next request.
    keepalive_timeout_s: int = 30
    #: Connections per worker process (never more than its file descriptors allow, less a
    #: reserve), and from one client address; more are answered 503 and closed at once.
    max_connections: int = 1000
    max_connections_per_client: int = 100
    #: Storage quotas (musehub.quota): bytes of packs one repository may hold, and one user
    #: over all the repositories they own; 0 = unlimited. A repository's or user's own
    #: quota_bytes (musehub quota set) overrides these.
    repo_quota_bytes: int = 0
    user_quota_bytes: int = 0


LIMIT_FIELDS = tuple(f.name for f in dataclasses.fields(Limits))


@dataclass
class Settings:
    data_dir: str = "./musehub-data"
    database_url: str = ""  # default: sqlite:///<data_dir>/musehub.db
    storage: str = "local"  # "local" | "s3"
    s3_endpoint: str | None = None
    s3_bucket: str = "musehub"
    s3_region: str = "us-east-1"
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    #: Base URL clients use to reach the store when it differs from s3_endpoint (the hub
    #: talks to s3_endpoint; presigned URLs are signed for this one).
    s3_public_endpoint: str | None = None
    secret_key: str = ""  # default: generated once, kept in <data_dir>/secret_key
    public_url: str = ""  # default: http://<host>:<port>
    #: Comma-separated addresses or networks of reverse proxies whose X-Forwarded-For and
    #: X-Forwarded-Proto are believed; default none: the peer's address is the client's.
    trusted_proxies: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2
    cache_dir: str = ""  # default: <data_dir>/cache
    log_level: str = "info"
    #: Access log lines as "text" or one JSON object per line ("json").
    log_format: str = "text"
    #: GET /metrics needs "Authorization: Bearer <metrics_token>" when set; else loopback only.
    metrics_token: str = ""
    #: The periodic sweep of leftovers (docs/operations.md, "Garbage after crashes"): every
    #: this many seconds (0: only at start-up), removing what is older than the grace.
    sweep_interval_s: int = 600
    sweep_grace_s: int = 6 * 3600
    #: ``musehub gc`` (docs/operations.md, "Garbage collection"): packs younger than this are
    #: never touched, nor anything their objects reach (git's gc.pruneExpire, two weeks).
    gc_grace_s: int = 14 * 86400
    #: Bound of the local pack cache (<cache_dir>/packs), least recently used packs evicted
    #: first; 0 = unbounded.
    cache_max_bytes: int = 10 * GiB
    #: How long a web view sign-in (its session cookie) lasts (musehub.web.session).
    web_session_max_age_s: int = 14 * 86400
    limits: Limits = field(default_factory=Limits)

    # The limits are also reachable flat (settings.max_pack_bytes), as they are configured.
    @property
    def max_pack_bytes(self) -> int:
        return self.limits.max_pack_bytes

    @property
    def max_object_bytes(self) -> int:
        return self.limits.max_object_bytes

    @property
    def stream_max_blobs(self) -> int:
        return self.limits.stream_max_blobs

    @property
    def stream_max_bytes(self) -> int:
        return self.limits.stream_max_bytes

    @property
    def rate_limit_per_minute(self) -> int:
        return self.limits.rate_limit_per_minute

    @property
    def storage_dir(self) -> str:
        """Where the ``local`` storage backend keeps its objects."""
        return os.path.join(self.data_dir, "objects")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Settings:
        raw = json.loads(text)
        limits = Limits(**raw.pop("limits"))
        return cls(limits=limits, **raw)


_TOP_FIELDS = {f.name: f for f in dataclasses.fields(Settings) if f.name != "limits"}
_FLOAT_FIELDS = {"header_timeout_s", "body_idle_timeout_s"}
_INT_FIELDS = {
    "port",
    "workers",
    "sweep_interval_s",
    "sweep_grace_s",
    "gc_grace_s",
    "cache_max_bytes",
    "web_session_max_age_s",
    *LIMIT_FIELDS,
} - _FLOAT_FIELDS


def _coerce(name: str, value: Any) -> Any:
    if name in _FLOAT_FIELDS:
        if isinstance(value, bool):
            raise ConfigError(f"setting {name} must be a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"setting {name} must be a number, got {value!r}") from None
    if name in _INT_FIELDS:
        if isinstance(value, bool):
            raise ConfigError(f"setting {name} must be an integer")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"setting {name} must be an integer, got {value!r}") from None
    if value is None:
        return None
    if not isinstance(value, str | int | float):
        raise ConfigError(f"setting {name} must be a string")
    return str(value)


def _apply(settings: Settings, values: Mapping[str, Any], source: str) -> None:
    for key, value in values.items():
        name = key.lower()
        if name == "limits" and isinstance(value, Mapping):
            _apply(settings, value, source)
        elif name in LIMIT_FIELDS:
            setattr(settings.limits, name, _coerce(name, value))
        elif name in _TOP_FIELDS:
            setattr(settings, name, _coerce(name, value))
        else:
            raise ConfigError(f"unknown setting {key!r} in {source}")


def load_settings(
    config_file: str | None = None,
    env: Mapping[str, str] | None = None,
    *,
    make_secret: bool = True,
    **overrides: Any,
) -> Settings:
    """Settings from defaults < TOML file < environment < ``overrides`` (None values ignored).

    ``config_file`` defaults to ``$MUSEHUB_CONFIG`` when set. Derived defaults (database URL,
    public URL, cache dir, secret key) are filled in last, by :func:`finalize`; without
    ``make_secret`` a missing secret key stays empty (nothing is written to the data dir).
    """
    env = os.environ if env is None else env
    settings = Settings()
    config_file = config_file or env.get(ENV_PREFIX + "CONFIG") or None
    if config_file:
        try:
            with open(config_file, "rb") as f:
                data = tomllib.load(f)
        except OSError as e:
            raise ConfigError(f"cannot read config file {config_file}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"invalid TOML in {config_file}: {e}") from None
        hub = data.get("musehub")
        _apply(settings, hub if isinstance(hub, dict) else data, config_file)
    from_env = {
        k[len(ENV_PREFIX) :].lower(): v
        for k, v in env.items()
        if k.startswith(ENV_PREFIX) and k != ENV_PREFIX + "CONFIG"
    }
    from_env = {k: v for k, v in from_env.items() if k in _TOP_FIELDS or k in LIMIT_FIELDS}
    _apply(settings, from_env, "the environment")
    _apply(settings, {k: v for k, v in overrides.items() if v is not None}, "arguments")
    return finalize(settings, make_secret=make_secret)


def finalize(settings: Settings, *, make_secret: bool = True) -> Settings:
    """Check the settings and fill in the defaults that derive from other fields."""
    if settings.storage not in ("local", "s3"):
        raise ConfigError(f"storage must be 'local' or 's3', not {settings.storage!r}")
    if settings.storage == "s3" and not settings.s3_bucket:
        raise ConfigError("storage 's3' needs s3_bucket")
    if not (0 < settings.port < 65536):
        raise ConfigError(f"port out of range: {settings.port}")
    if settings.workers < 1:
        raise ConfigError("workers must be at least 1")
    if settings.log_format not in ("text", "json"):
        raise ConfigError(f"log_format must be 'text' or 'json', not {settings.log_format!r}")
    if settings.web_session_max_age_s < 1:
        raise ConfigError("web_session_max_age_s must be at least 1")
    if settings.sweep_interval_s < 0 or settings.sweep_grace_s < 0:
        raise ConfigError("sweep_interval_s and sweep_grace_s cannot be negative")
    if settings.gc_grace_s < 0 or settings.cache_max_bytes < 0:
        raise ConfigError("gc_grace_s and cache_max_bytes cannot be negative")
    for name in LIMIT_FIELDS:
        if getattr(settings.limits, name) < 0:
            raise ConfigError(f"{name} cannot be negative")
    settings.trusted_proxies = ",".join(trusted_proxies(settings.trusted_proxies))
    settings.data_dir = os.path.abspath(settings.data_dir)
    if not settings.database_url:
        settings.database_url = "sqlite:///" + os.path.join(settings.data_dir, "musehub.db")
    if not settings.public_url:
        host = settings.host if settings.host not in ("0.0.0.0", "::") else "127.0.0.1"
        settings.public_url = f"http://{host}:{settings.port}"
    settings.public_url = settings.public_url.rstrip("/")
    if not settings.cache_dir:
        settings.cache_dir = os.path.join(settings.data_dir, "cache")
    settings.cache_dir = os.path.abspath(settings.cache_dir)
    if not settings.secret_key and make_secret:
        settings.secret_key = persistent_secret(settings.data_dir)
    return settings


def trusted_proxies(value: str) -> list[str]:
    """The addresses and networks of ``trusted_proxies``, each checked (ConfigError)."""
    import ipaddress

    out = []
    for item in (x.strip() for x in value.split(",")):
        if not item:
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(
                f"trusted_proxies: {item!r} is not an IP address or network"
            ) from None
        out.append(item)
    return out


#: Settings variables that may hold secrets; never passed on to worker processes.
SECRET_ENV = tuple(
    ENV_PREFIX + name.upper()
    for name in ("secret_key", "s3_secret_key", "database_url", "metrics_token")
)
#: Names the file from which ``musehub serve``'s worker processes read their settings.
WORKER_SETTINGS_ENV = ENV_PREFIX + "WORKER_SETTINGS"


def hand_to_workers(settings: Settings) -> str:
    """Make ``settings`` reach the worker processes about to be started, secrets included,
    without putting a secret in their environment (``/proc/<pid>/environ``, ``ps e``, crash
    reports): a 0600 file in the 0700 data directory, named by :data:`WORKER_SETTINGS_ENV`,
    removed when this process exits. The secret variables this process was given are taken
    out of the environment the workers inherit. Returns the file's path."""
    import atexit

    from muse.core.lockfile import process_alive

    for name in os.listdir(settings.data_dir):  # left by a hub that was killed
        pid = name.removeprefix(".worker-settings-").removesuffix(".json")
        if pid != name and pid.isdigit() and not process_alive(int(pid)):
            os.unlink(os.path.join(settings.data_dir, name))
    path = os.path.join(settings.data_dir, f".worker-settings-{os.getpid()}.json")
    if os.path.exists(path):
        os.unlink(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(settings.to_json())
    atexit.register(_unlink_quietly, path)
    for name in SECRET_ENV:
        os.environ.pop(name, None)
    os.environ[WORKER_SETTINGS_ENV] = path
    return path


def worker_settings() -> Settings | None:
    """In a worker process: the settings :func:`hand_to_workers` left (None outside one)."""
    path = os.environ.get(WORKER_SETTINGS_ENV)
    if not path:
        return None
    with open(path) as f:
        return Settings.from_json(f.read())


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def persistent_secret(data_dir: str) -> str:
    """The secret kept in ``<data_dir>/secret_key``, created once (first writer wins)."""
    path = os.path.join(data_dir, "secret_key")
    try:
        os.makedirs(data_dir, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create data_dir {data_dir}: {e.strerror}") from None
    for _ in range(50):
        try:
            with open(path) as f:
                value = f.read().strip()
            if value:
                return value
        except FileNotFoundError:
            pass
        except OSError as e:
            raise ConfigError(f"cannot read {path}: {e.strerror}") from None
        # Write to a temp file, then link it into place: the link fails if another process
        # won the race, and nobody ever reads a half-written secret.
        tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    raise ConfigError(f"cannot establish a secret key in {path}")
