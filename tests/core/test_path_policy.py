"""The one path policy (muse.core.paths): what it refuses, that its fast paths give the
per-name verdicts exactly, and that the client's checkout applies it (the hub side is
tests/hub/test_bounds_paths.py)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from muse.core.checkout import UnsafePath, checkout_tree
from muse.core.objects import BLOB, MODE_FILE, MODE_TREE, TREE, encode_tree, object_id
from muse.core.pack.codec import PackError
from muse.core.paths import dir_problem, is_muse_dir_name, name_problem, names_section_problem
from muse.core.repo import Repository
from muse.wire.verify import PathPolicy, StructureChecker

REFUSED = [
    ".muse",
    ".MUSE",
    ".mUsE",
    ".muse.",
    ".muse ",
    ".muse . .",
    "MUSE~1",
    "muse~2",
    ".muse::$INDEX_ALLOCATION",
    ".muse:$DATA",
    ".mu\u200cse",
    ".\u200dmuse",
    "\ufeff.muse",
    ".muse\u206a",
    "．ｍｕｓｅ",
    ".muſe",  # long s: casefolds to s
    ".muse\\config",
    "a\\b",
    "\\\\server\\share",
    "C:",
    "c:x",
    "Z:\\evil",
    "CON",
    "con.txt",
    "Nul",
    "nul.tar.gz",
    "AUX .c",
    "PRN:stream",
    "COM1",
    "com9.log",
    "LPT1",
    "conin$",
    "CONOUT$.x",
    "com\u00b9",  # superscript one: COM1 after NFKC
    "n" * 256,
    "é" * 128,  # 256 bytes
]
ALLOWED = [
    "config",
    "icons",
    "common",
    "console.log",
    "cone.png",
    "museum",
    "muse",
    ".museignore",
    ".muse_notes",
    "muse~",
    "muse~x",
    "ab:c",
    "10:30 take.wav",
    "com",
    "com0",
    "com10",
    "lpt",
    "auxiliary",
    "null",
    "x.con",
    "n" * 255,
    "é" * 127,
]


@pytest.mark.parametrize("name", REFUSED)
def test_refused_names(name: str) -> None:
    assert name_problem(name) is not None
    sec = name.encode() + b"\0"
    assert names_section_problem(sec, 1)[1] is not None


@pytest.mark.parametrize("name", ALLOWED)
def test_allowed_names(name: str) -> None:
    assert name_problem(name) is None
    assert names_section_problem(name.encode() + b"\0", 1) == (len(name.encode()), None)


def test_muse_spellings_are_the_muse_directory() -> None:
    for name in REFUSED[:16]:
        assert is_muse_dir_name(name), name
    assert not is_muse_dir_name(".museignore") and not is_muse_dir_name("museum")


@pytest.mark.parametrize(
    "pair",
    [
        ("A", "a"),
        ("README", "readme"),
        ("é", "e\u0301"),
        ("ab", "a\u200cb"),
        ("x", "x."),
        ("x", "x "),
        ("Straße", "STRASSE"),
    ],
)
def test_collisions(pair: tuple[str, str]) -> None:
    names = sorted(pair, key=lambda n: n.encode())
    assert dir_problem(names) is not None
    sec = b"".join(n.encode() + b"\0" for n in names)
    assert names_section_problem(sec, 2)[1] is not None


_alphabet = st.sampled_from(list("abcACmusenoltpxr.~:$ \\-_1\u00e9\u0301\u200c\uff4d"))
_names = st.lists(st.text(_alphabet, min_size=1, max_size=8), min_size=1, max_size=12)


def _clean(names: list[str]) -> list[str]:
    ok = {n for n in names if n not in (".", "..") and "/" not in n}
    return sorted(ok, key=lambda n: n.encode())


@settings(max_examples=400, deadline=None)
@given(_names)
def test_the_whole_buffer_check_agrees_with_the_per_name_rules(names: list[str]) -> None:
    names = _clean(names)
    if not names:
        return
    sec = b"".join(n.encode() + b"\0" for n in names)
    longest, problem = names_section_problem(sec, len(names))
    assert (problem is None) == (dir_problem(names) is None), names
    assert longest == max(len(n.encode()) for n in names)


@settings(max_examples=200, deadline=None)
@given(st.lists(_names, min_size=2, max_size=6))
def test_the_receivers_incremental_check_agrees_with_the_full_one(
    versions: list[list[str]],
) -> None:
    """Consecutive trees (versions of one directory) are checked against the previous one;
    the verdict of every tree must be the full check's."""
    policy = PathPolicy()
    base = [f"f{i:03d}" for i in range(30)]
    blob = object_id(BLOB, b"")
    for extra in versions:
        names = _clean(base + extra)
        body = encode_tree([(n, MODE_FILE, blob) for n in names])
        oid = object_id(TREE, body)
        policy.add(TREE, oid, body)
        assert (oid in policy.problems) == (dir_problem(names) is not None), names


@settings(max_examples=200, deadline=None)
@given(st.lists(_names, min_size=2, max_size=6))
def test_the_window_the_structure_checker_found_gives_the_same_verdicts(
    versions: list[list[str]],
) -> None:
    """The receiver passes PathPolicy the names the structure checker found shared with the
    previous tree (compared once, not twice): every verdict must be the policy's own."""
    own, shared = PathPolicy(), PathPolicy()
    structure = StructureChecker()
    base = [f"f{i:03d}" for i in range(30)]
    blob = object_id(BLOB, b"")
    windows = 0
    for extra in versions:
        names = _clean(base + extra)
        body = encode_tree([(n, MODE_FILE, blob) for n in names])
        oid = object_id(TREE, body)
        try:
            structure.check(TREE, body)
        except PackError:
            return  # a tree the hub refuses before any path check
        windows += structure.window is not None
        own.add(TREE, oid, body)
        shared.add(TREE, oid, body, window=structure.window)
        assert (oid in shared.problems) == (oid in own.problems), names
        assert shared.problems.get(oid) == own.problems.get(oid), names
    assert windows >= len(versions) - 1  # every tree after the first was compared


def test_a_commit_whose_tree_is_refused_fails_the_walk() -> None:
    policy = PathPolicy()
    blob = object_id(BLOB, b"")
    body = encode_tree([("MUSE~1", MODE_TREE, object_id(TREE, encode_tree([])))])
    tree = object_id(TREE, body)
    policy.add(TREE, tree, body)
    with pytest.raises(PackError, match="MUSE~1") as e:
        policy.check({})  # type: ignore[arg-type]
    assert e.value.code == "unsafe_path"
    assert blob  # (unused otherwise)


# ------------------------------------------------------------------------- the client side


@pytest.fixture
def repo(tmp_path) -> Repository:  # type: ignore[no-untyped-def]
    return Repository.init(str(tmp_path / "w"))


@pytest.mark.parametrize("name", [".MUSE", "MUSE~1", ".muse::$INDEX_ALLOCATION", "ａ\\b", "CON"])
def test_checkout_refuses_what_the_hub_refuses(repo: Repository, name: str) -> None:
    blob = repo.store.put(BLOB, b"x")
    sub = repo.store.put(TREE, encode_tree([("hooks", MODE_FILE, blob)]))
    tree = repo.store.put(TREE, encode_tree([("ok", MODE_FILE, blob), (name, MODE_TREE, sub)]))
    with pytest.raises(UnsafePath, match="refusing to check out"):
        checkout_tree(repo, tree)
    assert os.listdir(repo.root) == [".muse"]


def test_checkout_checks_a_shared_subtree_at_its_deepest_place(repo: Repository) -> None:
    """One tree id under a short name and under long ones: the long path is measured too."""
    blob = repo.store.put(BLOB, b"x")
    deep = repo.store.put(TREE, encode_tree([("f", MODE_FILE, blob)]))
    for i in range(15):
        deep = repo.store.put(TREE, encode_tree([(f"{i:02d}" + "d" * 248, MODE_TREE, deep)]))
    longer = repo.store.put(TREE, encode_tree([("y" * 250, MODE_TREE, deep)]))
    longer = repo.store.put(TREE, encode_tree([("z" * 250, MODE_TREE, longer)]))
    root = repo.store.put(TREE, encode_tree([("a", MODE_TREE, deep), ("b", MODE_TREE, longer)]))
    with pytest.raises(UnsafePath, match="a path of"):
        checkout_tree(repo, root)
    assert os.listdir(repo.root) == [".muse"]


def test_commit_skips_and_reports_names_the_policy_refuses(repo: Repository) -> None:
    """What checkout and the hub refuse never gets into a commit: skipped and reported, like
    .muse, while the rest is committed (a name already tracked keeps being tracked)."""
    from muse.core.worktree import snapshot

    root = repo.root
    for rel in ("aux.c", "COM1.txt", "ok.txt", "d\\x/f", "c:x"):
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path) or root, exist_ok=True)
        with open(path, "w") as f:
            f.write("x\n")
    result, _ = snapshot(repo)
    assert sorted(result.skipped) == sorted(["aux.c", "COM1.txt", "d\\x", "c:x"])
    from muse.core.objects import decode_tree

    names = [e.name for e in decode_tree(result.trees[result.tree])]
    assert names == ["ok.txt"]
