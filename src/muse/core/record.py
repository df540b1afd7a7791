"""The one record policy of the `muse` package: two small base classes instead of dataclasses.

Creating a dataclass execs generated code; measured here, ten small dataclasses cost about
26 ms more to define than the same classes written out (38.9 against 13.0 ms for a process
that only defines them, dataclasses' own import included), paid at every command's start-up.
So records in ``muse`` derive from :class:`Record` (mutable: repr and equality over
``_fields``) or :class:`Frozen` (immutable values: repr, equality, hashing, pickling over
``__slots__``) and write their ``__init__``. ``musehub`` starts once per process and uses
plain dataclasses. A NamedTuple is used only where the value is meant to be a tuple.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Frozen", "FrozenInstanceError", "Record"]


class Record:
    """A mutable record: repr and equality over ``_fields`` (like ``@dataclass``)."""

    _fields: tuple[str, ...] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f) for f in self._fields)

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{type(self).__qualname__}({inner})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._values() == other._values()  # type: ignore[attr-defined]
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like a dataclass without frozen


class FrozenInstanceError(AttributeError):
    """Assigning to a field of an immutable value (a Signature, a Commit, PackLimits)."""


class Frozen:
    """An immutable value over ``__slots__`` (like ``@dataclass(frozen=True)``); ``__init__``
    sets fields with ``object.__setattr__``."""

    __slots__: tuple[str, ...] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f) for f in self.__slots__)

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self.__slots__)
        return f"{type(self).__qualname__}({inner})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._values() == other._values()  # type: ignore[attr-defined]
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __getstate__(self) -> tuple[Any, ...]:
        return self._values()

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for f, v in zip(self.__slots__, state, strict=True):
            object.__setattr__(self, f, v)
