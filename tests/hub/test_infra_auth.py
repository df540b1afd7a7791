"""Tokens and access rules, over HTTP against a real hub (docs/wire.md §2)."""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures import Hub, start_hub

_names = (f"u{i}" for i in itertools.count())


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    h = start_hub(tmp_path_factory.mktemp("auth"))
    yield h
    h.stop()
    assert h.unhandled_errors() == []


def user(hub: Hub, scopes: str = "write") -> tuple[str, str]:
    name = next(_names)
    return name, hub.create_user(name, scopes=scopes)


def status(
    hub: Hub, method: str, path: str, token: str | None = None, body: object = None
) -> tuple[int, object]:
    return hub.request(method, path, body, token=token, check=False)


def test_missing_token_is_anonymous(hub: Hub) -> None:
    name, tok = user(hub)
    hub.request("POST", "/api/repos", {"slug": "pub"}, token=tok)
    assert status(hub, "GET", f"/api/repos/{name}/pub")[0] == 200
    code, body = status(hub, "GET", "/api/user")
    assert code == 401 and body["error"] == "unauthorized"  # type: ignore[index]
    code, body = status(hub, "POST", "/api/repos", body={"slug": "x"})
    assert code == 401


@pytest.mark.parametrize(
    "header",
    ["Bearer mh_notatoken", "Bearer ", "Basic dXNlcjpwYXNz", "mh_raw", "Bearer " + "x" * 300],
)
def test_wrong_tokens_are_401_even_on_public_repos(hub: Hub, header: str) -> None:
    name, tok = user(hub)
    hub.request("POST", "/api/repos", {"slug": "p"}, token=tok)
    for path in (f"/api/repos/{name}/p", "/api/user", "/api/repos"):
        code, body = hub.request("GET", path, headers={"Authorization": header}, check=False)
        assert code == 401, path
        assert body["error"] == "unauthorized"


def _db(hub: Hub) -> sqlite3.Connection:
    return sqlite3.connect(str(hub.data_dir / "musehub.db"))


def test_expired_token(hub: Hub) -> None:
    name = next(_names)
    hub.create_user(name)
    tok = hub.create_token(name, "write", expires_days=1)
    assert status(hub, "GET", "/api/user", tok)[0] == 200
    with _db(hub) as c:  # move the expiry into the past
        c.execute(
            "UPDATE tokens SET expires_at = ? WHERE expires_at IS NOT NULL AND user_id = "
            "(SELECT id FROM users WHERE username = ?)",
            (int(time.time()) - 1, name),
        )
    code, body = status(hub, "GET", "/api/user", tok)
    assert code == 401 and "expired" in body["message"]  # type: ignore[index]


def test_revoked_token_via_cli(hub: Hub) -> None:
    import subprocess
    import sys

    name, tok = user(hub)
    assert status(hub, "GET", "/api/user", tok)[0] == 200
    cp = subprocess.run(
        [sys.executable, "-m", "musehub", "token", "revoke", tok],
        env=hub.env,
        capture_output=True,
        text=True,
    )
    assert cp.returncode == 0, cp.stderr
    code, body = status(hub, "GET", "/api/user", tok)
    assert code == 401 and "revoked" in body["message"]  # type: ignore[index]


def test_tokens_are_stored_hashed(hub: Hub) -> None:
    _, tok = user(hub)
    assert tok.startswith("mh_") and len(tok) >= 40
    with _db(hub) as c:
        rows = [r[0] for r in c.execute("SELECT token_hash FROM tokens")]
    assert tok not in rows
    import hashlib

    assert hashlib.sha256(tok.encode()).hexdigest() in rows


def test_last_used_is_recorded(hub: Hub) -> None:
    name, tok = user(hub)
    import hashlib

    h = hashlib.sha256(tok.encode()).hexdigest()
    with _db(hub) as c:
        assert c.execute("SELECT last_used FROM tokens WHERE token_hash = ?", (h,)).fetchone() == (
            None,
        )
    hub.request("GET", "/api/user", token=tok)
    with _db(hub) as c:
        (used,) = c.execute("SELECT last_used FROM tokens WHERE token_hash = ?", (h,)).fetchone()
    assert abs(used - time.time()) < 60


def test_scopes(hub: Hub) -> None:
    name, tok = user(hub)
    hub.request("POST", "/api/repos", {"slug": "s"}, token=tok)
    read_tok = hub.create_token(name, "read")
    assert hub.request("GET", "/api/user", token=read_tok)[1]["scopes"] == ["read"]
    assert hub.request("GET", "/api/user", token=tok)[1]["scopes"] == ["read", "write"]
    # read scope: may read, may not create or delete
    assert status(hub, "GET", f"/api/repos/{name}/s", read_tok)[0] == 200
    assert status(hub, "POST", "/api/repos", read_tok, {"slug": "t"})[0] == 403
    assert status(hub, "DELETE", f"/api/repos/{name}/s", read_tok)[0] == 403
    # write scope cannot administer users
    assert status(hub, "POST", "/api/users", tok, {"username": "zz"})[0] == 403
    assert status(hub, "POST", f"/api/users/{name}/tokens", tok, {})[0] == 403
    # an admin-scoped token of a non-admin user is no admin
    admin_scoped = hub.create_token(name, "admin")
    assert status(hub, "POST", "/api/users", admin_scoped, {"username": "zz"})[0] == 403


def test_private_repo_is_404_to_others(hub: Hub) -> None:
    owner, otok = user(hub)
    other, xtok = user(hub)
    hub.request("POST", "/api/repos", {"slug": "secret", "private": True}, token=otok)
    path = f"/api/repos/{owner}/secret"
    assert status(hub, "GET", path, otok)[0] == 200
    for tok in (None, xtok):
        code, body = status(hub, "GET", path, tok)
        assert code == 404 and body["error"] == "repo_not_found"  # type: ignore[index]
        assert status(hub, "GET", f"/{owner}/secret/refs", tok)[0] == 404
        assert status(hub, "DELETE", path, tok)[0] in (401, 404)
        listed = hub.request("GET", f"/api/repos?owner={owner}", token=tok)[1]["repos"]
        assert [r["slug"] for r in listed] == []
    # indistinguishable from a repository that does not exist
    code, missing = status(hub, "GET", f"/api/repos/{owner}/nothing", xtok)
    code2, hidden = status(hub, "GET", path, xtok)
    assert code == code2 == 404
    assert missing["error"] == hidden["error"]  # type: ignore[index]
    # the admin sees it
    assert status(hub, "GET", path, hub.admin_token)[0] == 200


def test_collaborators_write_others_do_not(hub: Hub) -> None:
    owner, otok = user(hub)
    collab, ctok = user(hub)
    other, xtok = user(hub)
    hub.request("POST", "/api/repos", {"slug": "band", "private": True}, token=otok)
    base = f"/api/repos/{owner}/band"
    assert status(hub, "PUT", f"{base}/collaborators/{collab}", ctok)[0] == 404
    assert status(hub, "PUT", f"{base}/collaborators/{collab}", otok)[0] == 204
    assert status(hub, "PUT", f"{base}/collaborators/{collab}", otok)[0] == 204  # idempotent
    assert status(hub, "PUT", f"{base}/collaborators/nobody-here", otok)[0] == 404
    assert status(hub, "GET", base, ctok)[0] == 200
    assert status(hub, "GET", base, xtok)[0] == 404
    # a collaborator may write but not administer
    assert status(hub, "PUT", f"{base}/collaborators/{other}", ctok)[0] == 403
    assert status(hub, "DELETE", base, ctok)[0] == 403
    assert status(hub, "DELETE", f"{base}/collaborators/{collab}", otok)[0] == 204
    assert status(hub, "GET", base, ctok)[0] == 404


def test_write_access_rules_in_process(tmp_path: Path) -> None:
    """resolve_repo's answers for every kind of caller (the function HUBPROTO uses)."""
    from musehub.auth import Principal, resolve_repo
    from musehub.db import Collaborator, Database, Repo, User
    from musehub.errors import HubError

    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    db.upgrade()
    with db.session() as s:
        users = {n: User(username=n, is_admin=(n == "root")) for n in ("own", "col", "oth", "root")}
        s.add_all(users.values())
        s.flush()
        for private in (False, True):
            s.add(Repo(owner_id=users["own"].id, slug=f"r{int(private)}", private=private))
        s.flush()
        for r in s.query(Repo):
            s.add(Collaborator(repo_id=r.id, user_id=users["col"].id))
        ids = {n: u.id for n, u in users.items()}

    def p(name: str, scopes: tuple[str, ...] = ("read", "write")) -> Principal:
        return Principal(ids[name], name, name == "root" and "admin" in scopes, scopes, 0)

    def outcome(principal: Principal | None, slug: str, need: str) -> int:
        with db.session() as s:
            try:
                resolve_repo(s, principal, "own", slug, need)
                return 200
            except HubError as e:
                return e.status

    admin = p("root", ("read", "write", "admin"))
    table = {
        # caller: (public read, public write, private read, private write, private admin)
        "anon": (None, (200, 401, 404, 404, 404)),
        "own": (p("own"), (200, 200, 200, 200, 200)),
        "own-read": (p("own", ("read",)), (200, 403, 200, 403, 403)),
        "col": (p("col"), (200, 200, 200, 200, 403)),
        "oth": (p("oth"), (200, 403, 404, 404, 404)),
        "admin": (admin, (200, 200, 200, 200, 200)),
        "root-no-admin-scope": (p("root"), (200, 403, 404, 404, 404)),
    }
    for label, (principal, expected) in table.items():
        got = (
            outcome(principal, "r0", "read"),
            outcome(principal, "r0", "write"),
            outcome(principal, "r1", "read"),
            outcome(principal, "r1", "write"),
            outcome(principal, "r1", "admin"),
        )
        assert got == expected, label
    with db.session() as s, pytest.raises(HubError) as e:
        resolve_repo(s, None, "nobody", "r0")
    assert e.value.code == "repo_not_found"
