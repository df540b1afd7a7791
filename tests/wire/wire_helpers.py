"""A tiny in-memory object store and history builder for the negotiate/verify tests."""

from __future__ import annotations

from muse.core import objects as O

Files = dict[str, bytes]


class MemStore:
    """ObjectReader over a dict; counts reads so tests can check the work done."""

    def __init__(self) -> None:
        self.objects: dict[bytes, tuple[int, bytes]] = {}
        self.reads = 0

    def put(self, kind: int, body: bytes) -> bytes:
        oid = O.object_id(kind, body)
        self.objects[oid] = (kind, body)
        return oid

    def get(self, oid: bytes) -> tuple[int, bytes] | None:
        self.reads += 1
        return self.objects.get(oid)

    def has(self, oid: bytes) -> bool:
        return oid in self.objects

    def write_tree(self, files: Files) -> bytes:
        """Store the nested trees of {path: content} and return the root tree id."""
        here: dict[str, tuple[int, bytes]] = {}
        subdirs: dict[str, Files] = {}
        for path, content in files.items():
            head, sep, rest = path.partition("/")
            if sep:
                subdirs.setdefault(head, {})[rest] = content
            else:
                here[head] = (O.MODE_FILE, self.put(O.BLOB, content))
        for name, sub in subdirs.items():
            here[name] = (O.MODE_TREE, self.write_tree(sub))
        return self.put(O.TREE, O.encode_tree([(n, m, i) for n, (m, i) in here.items()]))

    def commit(self, files: Files, parents: list[bytes], when: int, msg: str = "c") -> bytes:
        sig = O.Signature("T", "t@example.invalid", when)
        tree = self.write_tree(files)
        return self.put(O.COMMIT, O.Commit(tree, tuple(parents), sig, sig, msg).encode())

    def reachable(self, tips: list[bytes]) -> set[bytes]:
        """Brute force: every object reachable from tips."""
        seen: set[bytes] = set()
        stack = list(tips)
        while stack:
            oid = stack.pop()
            if oid in seen or oid not in self.objects:
                continue
            seen.add(oid)
            kind, body = self.objects[oid]
            if kind == O.COMMIT:
                tree, parents = O.commit_refs(body)
                stack.append(tree)
                stack.extend(parents)
            elif kind == O.TREE:
                stack.extend(e.id for e in O.decode_tree(body))
        return seen
