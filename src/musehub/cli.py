"""The ``musehub`` command: serve the hub and administer it.

    musehub [--config FILE] serve [--host H] [--port P] [--workers N]
    musehub migrate                                   (creates a new hub when there is none)
    musehub user add NAME [--admin] | list | disable NAME | enable NAME | delete NAME [--yes]
    musehub token create USER [--scope read|write|admin] [--expires-days N] [--description T]
    musehub token revoke TOKEN-or---id N
    musehub token list [USER]
    musehub repo create OWNER/SLUG [--private] [--default-branch B]
    musehub repo list [--owner O]
    musehub repo delete OWNER/SLUG [--yes] | rename OWNER/SLUG NEW-SLUG
    musehub repo set-private OWNER/SLUG | set-public OWNER/SLUG
    musehub collaborator add|remove OWNER/SLUG USER | list OWNER/SLUG
    musehub config show
    musehub gc [--repo OWNER/SLUG] [--dry-run] [--grace SECONDS]
    musehub backup DEST | restore SRC               (a hub as a directory, and back)
    musehub quota show USER|OWNER/SLUG | set USER|OWNER/SLUG BYTES|none|unlimited

Settings come from ``--config`` (TOML), ``MUSEHUB_*`` variables and the options (see
``musehub.config``). Every command brings the database schema up to date first. An admin
command that finds no hub (no database yet) refuses, unless ``--init`` or a yes on a
terminal says to create a new, empty one: a command run in the wrong directory must not
silently start a second hub. Errors are one line, ``musehub: error: ...``, with exit code 1
(2 for usage, 3 for not found, 4 for "already exists"); ``MUSEHUB_DEBUG=1`` shows the
traceback. The logic is the REST API's (``musehub.api``), called offline.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from musehub.config import Settings
    from musehub.db import Database

EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_EXISTS = 1, 2, 3, 4


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="musehub", description="MuseHub server and administration")
    p.add_argument("--config", help="TOML settings file (also $MUSEHUB_CONFIG)")
    p.add_argument("--init", action="store_true", help="create a new hub if there is none")
    # --init after the action too (SUPPRESS: a default here would hide the one given above).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--init", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def actions(name: str, help: str) -> Any:
        return sub.add_parser(name, help=help).add_subparsers(
            dest="action", metavar="ACTION", required=True
        )

    def action(group: Any, name: str, help: str, *names: str) -> Any:
        a = group.add_parser(name, help=help, parents=[common])
        for n in names:
            a.add_argument(n, metavar=n.upper().replace("_", "-"))
        return a

    serve = sub.add_parser("serve", help="run the hub (uvicorn, several worker processes)")
    serve.add_argument("--config", dest="config_sub", help=argparse.SUPPRESS)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.add_argument("--data-dir")

    sub.add_parser("migrate", help="bring the database schema up to date (or create a hub)")

    user = actions("user", "manage users")
    action(user, "add", "create a user", "name").add_argument(
        "--admin", action="store_true", help="may administer everything"
    )
    action(user, "list", "list users")
    action(user, "disable", "refuse the user's tokens from now on (data kept)", "name")
    action(user, "enable", "accept the user's tokens again", "name")
    action(user, "delete", "delete a user and their repositories", "name").add_argument(
        "--yes", "-y", action="store_true", help="do not ask"
    )

    token = actions("token", "manage API tokens")
    tc = action(token, "create", "create a token (printed once)", "user")
    tc.add_argument(
        "--scope",
        "--scopes",
        dest="scope",
        default="write",
        help="read, write or admin (each implies the previous; a comma list is "
        "accepted, the highest counts); default write",
    )
    tc.add_argument("--expires-days", type=float)
    tc.add_argument("--description")
    tr = action(token, "revoke", "revoke a token")
    tr.add_argument("token", nargs="?", help="the token itself")
    tr.add_argument("--id", type=int, help="the token's id (see token list)")
    action(token, "list", "list tokens (never their values)").add_argument("user", nargs="?")

    repo = actions("repo", "manage repositories")
    rc = action(repo, "create", "create OWNER/SLUG", "name")
    rc.add_argument("--private", action="store_true")
    rc.add_argument("--default-branch", default="main")
    action(repo, "list", "list repositories").add_argument("--owner")
    action(repo, "delete", "delete a repository and its objects", "name").add_argument(
        "--yes", "-y", action="store_true", help="do not ask"
    )
    action(repo, "rename", "give a repository a new slug", "name", "new_slug")
    action(repo, "set-private", "readable by its owner and collaborators only", "name")
    action(repo, "set-public", "readable by anyone", "name")

    collab = actions("collaborator", "manage who may write to a repository")
    action(collab, "add", "let USER write to OWNER/SLUG", "name", "user")
    action(collab, "remove", "take USER's write access away", "name", "user")
    action(collab, "list", "list a repository's collaborators", "name")

    quota = actions("quota", "storage quotas of users and repositories")
    action(quota, "show", "the quota and use of USER or OWNER/SLUG", "name")
    action(
        quota,
        "set",
        "set the quota of USER or OWNER/SLUG: bytes (500M, 2G), none (the hub's "
        "setting) or unlimited",
        "name",
        "bytes",
    )

    backup = sub.add_parser("backup", help="write a consistent snapshot into a new directory")
    backup.add_argument("dest", metavar="DEST")
    restore = sub.add_parser("restore", help="bring a new, empty hub to a backup's state")
    restore.add_argument("src", metavar="SRC")

    gc = sub.add_parser("gc", help="drop objects no branch or tag reaches any more")
    gc.add_argument("--repo", metavar="OWNER/SLUG", help="only this repository")
    gc.add_argument("--dry-run", action="store_true", help="only say what would go")
    gc.add_argument(
        "--grace", type=float, metavar="SECONDS", help="spare packs younger (gc_grace_s)"
    )

    config = actions("config", "the hub's settings")
    action(config, "show", "the effective settings, secrets masked")
    return p


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    from musehub.config import load_settings

    return load_settings(args.config, **overrides)


def _database(settings: Settings) -> Database:
    from musehub.db import Database

    db = Database(settings.database_url)
    db.upgrade()
    return db


def _hub_exists(settings: Settings) -> bool:
    """Whether the settings name a hub that exists: SQLite's file, a schema in PostgreSQL."""
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        path = url.database
        return not path or path == ":memory:" or os.path.exists(path)
    from musehub.db import Database

    db = Database(settings.database_url)
    try:
        return bool(inspect(db.engine).has_table("alembic_version"))
    finally:
        db.dispose()


def _where(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return f"in {settings.data_dir}"
    return f"in database {url.render_as_string(hide_password=True)}"


def _open_hub(args: argparse.Namespace) -> tuple[Settings, Database]:
    """The settings and database of the hub an admin command works on. No hub there yet:
    refused, unless ``--init`` (or a yes on a terminal) asks for a new, empty one."""
    from musehub.config import persistent_secret

    settings = _settings(args, make_secret=False)
    if not _hub_exists(settings):
        where = _where(settings)
        if getattr(args, "init", False):
            print(f"musehub: creating a new, empty hub {where}", file=sys.stderr)
        elif sys.stdin.isatty():
            answer = input(f"No hub {where}. Create a new, empty one? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                raise CliError("no hub created", EXIT_ERROR)
        else:
            raise CliError(
                f"no hub {where}: run where the hub's data directory is, or name it with "
                "--config or MUSEHUB_DATA_DIR (--init creates a new, empty hub)",
                EXIT_NOT_FOUND,
            )
    if not settings.secret_key:
        settings.secret_key = persistent_secret(settings.data_dir)
    return settings, _database(settings)


def _confirm(args: argparse.Namespace, what: str) -> None:
    """Destructive commands: --yes, or the name typed again on a terminal."""
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise CliError(f"refusing to delete {what} {args.name} without --yes", EXIT_USAGE)
    answer = input(f"Delete {what} {args.name} and everything it holds? Type its name: ")
    if answer.strip() != args.name:
        raise CliError("not confirmed; nothing deleted", EXIT_ERROR)


def _owner_slug(name: str) -> tuple[str, str]:
    owner, sep, slug = name.partition("/")
    if not sep or not owner or not slug or "/" in slug:
        raise CliError(f"expected OWNER/SLUG, got {name!r}", EXIT_USAGE)
    return owner, slug


def _get_repo(s: Any, name: str) -> Any:
    from sqlalchemy import select

    from musehub.db import Repo

    owner, slug = _owner_slug(name)
    user = _get_user(s, owner)
    repo = s.execute(
        select(Repo).where(Repo.owner_id == user.id, Repo.slug == slug)
    ).scalar_one_or_none()
    if repo is None:
        raise CliError(f"no repository {name!r}", EXIT_NOT_FOUND)
    return repo


def _hub_error(e: Any) -> CliError:
    """A HubError of the shared logic as the command's error (409: exists, 404: not found)."""
    code = {409: EXIT_EXISTS, 404: EXIT_NOT_FOUND}.get(e.status, EXIT_USAGE)
    return CliError(e.message, code)


def cmd_serve(args: argparse.Namespace) -> int:
    from musehub.app import configure_logging, create_app
    from musehub.server import Bounds, serve

    settings = _settings(
        args, host=args.host, port=args.port, workers=args.workers, data_dir=args.data_dir
    )
    configure_logging(settings.log_level)
    from musehub.files import secure_data_dir

    secure_data_dir(settings)  # 0700, even when an earlier version made it 0755
    from musehub.metrics import prepare_multiprocess

    prepare_multiprocess(settings)  # before any worker imports prometheus_client
    _database(settings).dispose()  # migrate once before the workers start
    from musehub.storage import open_storage

    open_storage(settings).check()
    import musehub.protocol.routes  # noqa: F401 - fail here, not in every worker, if broken

    common: dict[str, Any] = dict(
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,  # musehub.access logs every request with its size and time
        timeout_graceful_shutdown=30,  # SIGTERM: let transfers finish, then stop anyway
        backlog=2048,
        # X-Forwarded-For/-Proto are believed only from the configured proxies: otherwise any
        # client could pick the address its rate limit is counted under.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
        server_header=False,
    )
    bounds = Bounds.from_limits(settings.limits)  # header, body, keep-alive, connections
    if settings.workers == 1:
        serve(create_app(settings, migrate=False), bounds, **common)
    else:
        from musehub.config import hand_to_workers

        hand_to_workers(settings)  # a 0600 file: no secret in the workers' environment
        serve("musehub.app:factory", bounds, factory=True, workers=settings.workers, **common)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from musehub.db.migrate import current_revision

    settings = _settings(args, make_secret=False)
    if not _hub_exists(settings):
        print(f"musehub: creating a new, empty hub {_where(settings)}", file=sys.stderr)
    db = _database(_settings(args))
    print(f"database at revision {current_revision(db)}")
    return 0


def _get_user(s: Any, name: str) -> Any:
    from sqlalchemy import select

    from musehub.db import User
    from musehub.names import is_username

    user = None
    if is_username(name):  # a name no user can have is not a question for the database
        user = s.execute(select(User).where(User.username == name)).scalar_one_or_none()
    if user is None:
        raise CliError(f"no user {name!r}", EXIT_NOT_FOUND)
    return user


def cmd_user(args: argparse.Namespace) -> int:
    from sqlalchemy import select
    from sqlalchemy.exc import IntegrityError

    from musehub.api import delete_user, remove_repository_files
    from musehub.db import User
    from musehub.errors import HubError
    from musehub.names import check_username

    settings, db = _open_hub(args)
    if args.action == "list":
        with db.session(readonly=True) as s:
            for u in s.execute(select(User).order_by(User.username)).scalars():
                flags = ("  (admin)" if u.is_admin else "") + ("  (disabled)" if u.disabled else "")
                print(f"{u.username}{flags}")
        return 0
    if args.action == "add":
        try:
            check_username(args.name)
        except HubError as e:
            raise CliError(e.message, EXIT_USAGE) from None
        try:
            with db.session() as s:
                s.add(User(username=args.name, is_admin=args.admin))
        except IntegrityError:
            raise CliError(f"user {args.name!r} already exists", EXIT_EXISTS) from None
        print(f"created user {args.name}{' (admin)' if args.admin else ''}", file=sys.stderr)
        return 0
    if args.action == "delete":
        with db.session(readonly=True) as s:
            _get_user(s, args.name)
        _confirm(args, "user")
        with db.session() as s:
            remains = delete_user(s, _get_user(s, args.name))
        from musehub.storage import open_storage

        storage = open_storage(settings)
        for r in remains:
            remove_repository_files(storage, settings.cache_dir, r)
        print(f"deleted user {args.name} and {len(remains)} repositories", file=sys.stderr)
        return 0
    with db.session() as s:
        user = _get_user(s, args.name)
        user.disabled = args.action == "disable"
        print(f"user {args.name} {args.action}d", file=sys.stderr)
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from musehub.auth import create_token, expand_scopes, hash_token, token_expiry
    from musehub.db import Token, User, now

    _, db = _open_hub(args)
    if args.action == "create":
        try:
            scopes = expand_scopes(args.scope)
        except ValueError as e:
            raise CliError(str(e), EXIT_USAGE) from None
        try:
            expires = token_expiry(args.expires_days)
        except ValueError as e:
            raise CliError(str(e).replace("expires_days", "--expires-days"), EXIT_USAGE) from None
        with db.session() as s:
            user = _get_user(s, args.user)
            token = create_token(s, user, scopes, expires, args.description)
        print(token)
        return 0
    if args.action == "revoke":
        if (args.token is None) == (args.id is None):
            raise CliError("give either the token or --id", EXIT_USAGE)
        with db.session() as s:
            if args.id is not None:
                row = s.get(Token, args.id)
            else:
                q = select(Token).where(Token.token_hash == hash_token(args.token))
                row = s.execute(q).scalar_one_or_none()
            if row is None:
                raise CliError("no such token", EXIT_NOT_FOUND)
            if row.revoked_at is None:
                row.revoked_at = now()
            print(f"revoked token {row.id} of {row.user.username}", file=sys.stderr)
        return 0
    with db.session(readonly=True) as s:
        q = select(Token).join(User, Token.user_id == User.id).order_by(Token.id)
        if args.user:
            q = q.where(User.username == _get_user(s, args.user).username)
        for t in s.execute(q).scalars():
            state = (
                "revoked"
                if t.revoked_at
                else "expired"
                if t.expires_at and t.expires_at <= now()
                else "active"
            )
            print(f"{t.id}\t{t.user.username}\t{t.scopes}\t{state}\t{t.description or ''}")
    return 0


def cmd_repo(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from musehub.api import (
        create_repo,
        delete_repository,
        remove_repository_files,
        rename_repository,
        repo_json,
    )
    from musehub.db import Repo, User
    from musehub.errors import HubError

    settings, db = _open_hub(args)
    if args.action == "create":
        owner, slug = _owner_slug(args.name)
        try:
            with db.session() as s:
                repo = create_repo(s, _get_user(s, owner), slug, args.private, args.default_branch)
                created = repo_json(repo)
        except HubError as e:
            raise _hub_error(e) from None
        print(f"{created['owner']}/{created['slug']}")
        kind = "private" if created["private"] else "public"
        print(f"created {kind} repository {created['owner']}/{created['slug']}", file=sys.stderr)
        return 0
    if args.action == "list":
        with db.session(readonly=True) as s:
            q = select(Repo).join(User, Repo.owner_id == User.id)
            q = q.order_by(User.username, Repo.slug)
            if args.owner:
                q = q.where(User.username == args.owner)
            for r in s.execute(q).scalars():
                flags = "private" if r.private else "public"
                print(f"{r.owner.username}/{r.slug}\t{flags}\t{r.default_branch}")
        return 0
    if args.action == "delete":
        with db.session(readonly=True) as s:
            _get_repo(s, args.name)
        _confirm(args, "repository")
        with db.session() as s:
            remains = delete_repository(s, _get_repo(s, args.name))
        from musehub.storage import open_storage

        remove_repository_files(open_storage(settings), settings.cache_dir, remains)
        print(f"deleted repository {args.name}", file=sys.stderr)
        return 0
    try:
        with db.session() as s:
            repo = _get_repo(s, args.name)
            if args.action == "rename":
                rename_repository(s, repo, args.new_slug)
                said = f"renamed {args.name} to {repo.owner.username}/{args.new_slug}"
            else:
                repo.private = args.action == "set-private"
                said = f"{args.name} is {'private' if repo.private else 'public'} now"
    except HubError as e:
        raise _hub_error(e) from None
    print(said, file=sys.stderr)
    return 0


def cmd_collaborator(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from musehub.api import set_collaborator
    from musehub.db import Collaborator, User

    _, db = _open_hub(args)
    if args.action == "list":
        with db.session(readonly=True) as s:
            repo = _get_repo(s, args.name)
            q = select(User.username).join(Collaborator, Collaborator.user_id == User.id)
            for name in s.execute(
                q.where(Collaborator.repo_id == repo.id).order_by(User.username)
            ).scalars():
                print(name)
        return 0
    add = args.action == "add"
    with db.session() as s:
        repo = _get_repo(s, args.name)
        user = _get_user(s, args.user)
        if add and user.id == repo.owner_id:
            raise CliError(f"{args.user} owns {args.name}", EXIT_USAGE)
        changed = set_collaborator(s, repo, user, add)
    state = ("now" if changed else "already") + (" a" if add else " not a")
    print(f"{args.user} is {state} collaborator of {args.name}", file=sys.stderr)
    return 0


def cmd_quota(args: argparse.Namespace) -> int:
    """``quota show|set``: a user's (over their repositories) or a repository's storage."""
    from musehub import quota

    settings, db = _open_hub(args)
    is_repo = "/" in args.name
    if args.action == "set":
        try:
            value = quota.parse_quota(args.bytes)
        except ValueError as e:
            raise CliError(
                f"{e}: give bytes (1048576), a size such as 500M or 2G, none (the hub's "
                "setting) or unlimited",
                EXIT_USAGE,
            ) from None
        with db.session() as s:
            row = _get_repo(s, args.name) if is_repo else _get_user(s, args.name)
            row.quota_bytes = value
        said = {None: "the hub's setting", 0: "unlimited"}.get(value, f"{value} bytes")
        print(f"quota of {args.name}: {said}", file=sys.stderr)
    with db.session(readonly=True) as s:
        if is_repo:
            shown = quota.quotas(s, settings, _get_repo(s, args.name).id, every=True)
        else:
            shown = quota.user_report(s, settings, _get_user(s, args.name))
        for q in shown:
            print(q.line())
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    """``backup DEST``: the database and the packs it names, while the hub serves."""
    from musehub.backup import BackupError
    from musehub.backup.snapshot import backup
    from musehub.storage import open_storage

    settings, db = _open_hub(args)
    try:
        summary = backup(db, open_storage(settings), args.dest)
    except BackupError as e:
        raise CliError(str(e), EXIT_EXISTS if e.exists else EXIT_ERROR) from None
    print(f"backed up {summary.describe()} to {args.dest}", file=sys.stderr)
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """``restore SRC``: the backup is checked whole before anything is written; the hub
    must be new and empty (its own secret key is made when it first serves)."""
    from sqlalchemy.engine import make_url

    from musehub.backup import BackupError
    from musehub.backup.restore import restore, verify
    from musehub.db import Database
    from musehub.files import private_dir
    from musehub.storage import open_storage

    try:
        manifest = verify(args.src)
        settings = _settings(args, make_secret=False)
        url = make_url(settings.database_url)
        if url.get_backend_name() == "sqlite" and url.database:
            private_dir(os.path.dirname(os.path.abspath(url.database)))
        db = Database(settings.database_url)
        summary = restore(manifest, db, open_storage(settings), _where(settings))
    except BackupError as e:
        raise CliError(str(e), EXIT_EXISTS if e.exists else EXIT_ERROR) from None
    print(f"restored {summary.describe()} {_where(settings)}", file=sys.stderr)
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    """``gc``: drop unreachable objects (musehub.protocol.gc); figures on stdout."""
    from musehub.protocol.gc import Collector
    from musehub.protocol.repostore import RepoStore
    from musehub.storage import open_storage

    if args.grace is not None and not args.grace >= 0:
        raise CliError("--grace must be a number of seconds, 0 or more", EXIT_USAGE)
    settings, db = _open_hub(args)
    ids = None
    if args.repo:
        with db.session(readonly=True) as s:
            ids = [_get_repo(s, args.repo).id]
    grace = settings.gc_grace_s if args.grace is None else args.grace
    store = RepoStore(settings, db, open_storage(settings))
    report = Collector(store, grace, dry_run=args.dry_run).run(ids)
    for line in report.lines():
        print(line)
    return EXIT_ERROR if report.failed else 0


#: Settings whose values are never shown.
SECRET_SETTINGS = ("secret_key", "s3_secret_key", "metrics_token")


def cmd_config(args: argparse.Namespace) -> int:
    """``config show``: the settings in effect, as TOML (secrets masked, the database
    URL without its password)."""
    import dataclasses
    import json

    from sqlalchemy.engine import make_url

    settings = _settings(args, make_secret=False)
    values = dataclasses.asdict(settings)
    limits = values.pop("limits")
    for name in SECRET_SETTINGS:
        if values.get(name):
            values[name] = "********"
    if not values["secret_key"]:
        kept = os.path.join(settings.data_dir, "secret_key")
        values["secret_key"] = "******** (kept in secret_key)" if os.path.exists(kept) else ""
    values["database_url"] = make_url(values["database_url"]).render_as_string(hide_password=True)

    def line(name: str, value: Any) -> str:
        shown = json.dumps(value) if not isinstance(value, bool) else str(value).lower()
        return f"{name} = {shown}"

    for name, value in values.items():
        if value is not None:
            print(line(name, value))
    print("\n[limits]")
    for name, value in limits.items():
        print(line(name, value))
    return 0


COMMANDS = {
    "serve": cmd_serve,
    "migrate": cmd_migrate,
    "user": cmd_user,
    "token": cmd_token,
    "repo": cmd_repo,
    "collaborator": cmd_collaborator,
    "config": cmd_config,
    "gc": cmd_gc,
    "backup": cmd_backup,
    "restore": cmd_restore,
    "quota": cmd_quota,
}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from musehub.files import private_process

    private_process()  # what any command creates (database, packs, secret) is private
    if getattr(args, "config_sub", None):
        args.config = args.config_sub
    try:
        return COMMANDS[args.command](args)
    except CliError as e:
        print(f"musehub: error: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - one line for the operator, traceback on demand
        if os.environ.get("MUSEHUB_DEBUG"):
            raise
        from musehub.config import ConfigError

        if isinstance(e, ConfigError):
            print(f"musehub: error: {e}", file=sys.stderr)
            return EXIT_USAGE
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"musehub: error: {type(e).__name__}: {msg}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
