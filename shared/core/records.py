"""Immutable value types that cost almost nothing to define: :class:`Record`.

The worker imports every module of the app on each cold start, so defining a class is paid by the first
request of every new instance. A frozen dataclass generates five methods with ``exec`` (the 33-field
``Settings`` took 8 ms) and a ``typing.NamedTuple`` builds its constructor with ``eval`` and compiles each
string annotation (about a million instructions a class, a third of the app's import). A record's methods
are written once, here, and read the fields a subclass declares; defining one costs a plain class.

A record is declared like a dataclass (type checkers treat it as one, through ``dataclass_transform``)::

    class Page(Record):
        template: str
        status: int = 200

It is immutable (assignment raises ``AttributeError``), compares and hashes by type and field values,
prints its fields (``hidden=("secret",)`` leaves some out), and offers ``_replace(**changes)``,
``_asdict()``, ``_fields`` and ``_field_defaults`` as ``NamedTuple`` does. A ``__post_init__`` runs after
the fields are set (to validate, or to draw a default with ``object.__setattr__``). Records are not
sequences: they do not unpack or index.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar, Self, dataclass_transform


@dataclass_transform(frozen_default=True)
class Record:
    """Base of the app's immutable value types (module docstring)."""

    _fields: ClassVar[tuple[str, ...]] = ()
    _field_defaults: ClassVar[dict[str, Any]] = {}
    _hidden: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, *, hidden: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = [name for name in inspect.get_annotations(cls) if name not in cls._fields]
        defaults = dict(cls._field_defaults)
        for name in own:
            if name in cls.__dict__:
                defaults[name] = cls.__dict__[name]
                delattr(cls, name)  # the instance holds every field; a class default would shadow nothing
            elif defaults:
                raise TypeError(
                    f"{cls.__name__}: field '{name}' without a default follows one with a default"
                )
        cls._fields = (*cls._fields, *own)
        cls._field_defaults = defaults
        cls._hidden = cls._hidden | frozenset(hidden)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fields = self._fields
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__}() takes {len(fields)} arguments, {len(args)} given")
        values = dict(zip(fields, args, strict=False))
        for name, value in kwargs.items():
            if name not in fields or name in values:
                raise TypeError(f"{type(self).__name__}() got an unexpected or repeated argument '{name}'")
            values[name] = value
        defaults = self._field_defaults
        for name in fields:
            if name in values:
                object.__setattr__(self, name, values[name])
            elif name in defaults:
                object.__setattr__(self, name, defaults[name])
            else:
                raise TypeError(f"{type(self).__name__}() is missing the argument '{name}'")
        post_init = getattr(self, "__post_init__", None)
        if post_init is not None:
            post_init()

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: use _replace({name}=...)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={getattr(self, name)!r}" for name in self._fields if name not in self._hidden
        )
        return f"{type(self).__name__}({shown})"

    def _asdict(self) -> dict[str, Any]:
        """The fields and their values, in declaration order."""
        return {name: getattr(self, name) for name in self._fields}

    def _replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied (validated again by ``__post_init__``)."""
        return type(self)(**{**self._asdict(), **changes})
