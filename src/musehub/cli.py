"""The ``musehub`` command: serve the hub and administer it.

    musehub [--config FILE] serve [--host H] [--port P] [--workers N]
    musehub user add NAME [--admin]
    musehub token create USER [--scope read|write|admin] [--expires-days N] [--description T]
    musehub token revoke TOKEN-or---id N
    musehub token list [USER]
    musehub repo create OWNER/SLUG [--private] [--default-branch B]
    musehub repo list [--owner O]
    musehub migrate

Settings come from ``--config`` (TOML), ``MUSEHUB_*`` variables and the options (see
``musehub.config``). Every command brings the database schema up to date first. Errors are
one line, ``musehub: error: ...``, with exit code 1 (2 for usage, 3 for not found, 4 for
"already exists"); ``MUSEHUB_DEBUG=1`` shows the traceback.
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
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser("serve", help="run the hub (uvicorn, several worker processes)")
    serve.add_argument("--config", dest="config_sub", help=argparse.SUPPRESS)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.add_argument("--data-dir")

    sub.add_parser("migrate", help="bring the database schema up to date")

    user = sub.add_parser("user", help="manage users").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    ua = user.add_parser("add", help="create a user")
    ua.add_argument("name")
    ua.add_argument("--admin", action="store_true", help="may administer everything")
    user.add_parser("list", help="list users")

    token = sub.add_parser("token", help="manage API tokens").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    tc = token.add_parser("create", help="create a token (printed once)")
    tc.add_argument("user")
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
    tr = token.add_parser("revoke", help="revoke a token")
    tr.add_argument("token", nargs="?", help="the token itself")
    tr.add_argument("--id", type=int, help="the token's id (see token list)")
    tl = token.add_parser("list", help="list tokens (never their values)")
    tl.add_argument("user", nargs="?")

    repo = sub.add_parser("repo", help="manage repositories").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    rc = repo.add_parser("create", help="create OWNER/SLUG")
    rc.add_argument("name", metavar="OWNER/SLUG")
    rc.add_argument("--private", action="store_true")
    rc.add_argument("--default-branch", default="main")
    rl = repo.add_parser("list", help="list repositories")
    rl.add_argument("--owner")
    return p


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    from musehub.config import load_settings

    return load_settings(args.config, **overrides)


def _database(settings: Settings) -> Database:
    from musehub.db import Database

    db = Database(settings.database_url)
    db.upgrade()
    return db


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

    from musehub.db import User
    from musehub.errors import HubError
    from musehub.names import check_username

    db = _database(_settings(args))
    if args.action == "list":
        with db.session(readonly=True) as s:
            for u in s.execute(select(User).order_by(User.username)).scalars():
                print(f"{u.username}{'  (admin)' if u.is_admin else ''}")
        return 0
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


def cmd_token(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from musehub.auth import create_token, expand_scopes, hash_token, token_expiry
    from musehub.db import Token, User, now

    db = _database(_settings(args))
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

    from musehub.api import create_repo, repo_json
    from musehub.db import Repo, User
    from musehub.errors import HubError

    db = _database(_settings(args))
    if args.action == "create":
        owner, sep, slug = args.name.partition("/")
        if not sep or not owner or not slug or "/" in slug:
            raise CliError(f"expected OWNER/SLUG, got {args.name!r}", EXIT_USAGE)
        try:
            with db.session() as s:
                repo = create_repo(s, _get_user(s, owner), slug, args.private, args.default_branch)
                created = repo_json(repo)
        except HubError as e:
            code = EXIT_EXISTS if e.status == 409 else EXIT_USAGE
            raise CliError(e.message, code) from None
        print(f"{created['owner']}/{created['slug']}")
        return 0
    with db.session(readonly=True) as s:
        q = select(Repo).join(User, Repo.owner_id == User.id).order_by(User.username, Repo.slug)
        if args.owner:
            q = q.where(User.username == args.owner)
        for r in s.execute(q).scalars():
            flags = "private" if r.private else "public"
            print(f"{r.owner.username}/{r.slug}\t{flags}\t{r.default_branch}")
    return 0


COMMANDS = {
    "serve": cmd_serve,
    "migrate": cmd_migrate,
    "user": cmd_user,
    "token": cmd_token,
    "repo": cmd_repo,
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
