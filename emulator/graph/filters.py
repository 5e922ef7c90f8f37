"""Compiling a parsed ``$filter`` against an entity's filterable properties into a predicate.

Each service describes its properties (:class:`Field`: type, getter, allowed operators) and how it words
its refusals (:class:`FilterPolicy`); the compiler checks operators and literal types the way Graph's OData
layer does and records the features that need an advanced query (``ne``, ``not``, ``endswith``, ``null``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emulator.graph.odata import (
    EDM,
    OPERATOR_KIND,
    AnyOf,
    BoolOp,
    Call,
    Compare,
    InList,
    Lit,
    Node,
    Not,
    Prop,
)


@dataclass(frozen=True)
class Field:
    """A filterable property: its type, how to read it, and the operators allowed on it."""

    name: str
    type: str  # string | bool | datetime | enum | strings (a collection of strings)
    get: Callable[[Any], Any]
    ops: frozenset[str]  # eq ne gt ge lt le in startswith endswith null any …


class FilterPolicy:
    """How a service reports what the compiler finds; each method raises the service's error."""

    def unknown_property(self, name: str) -> Exception:  # pragma: no cover - overridden
        raise NotImplementedError

    def unsupported(self, field: str, op: str) -> Exception:  # pragma: no cover - overridden
        raise NotImplementedError

    def incompatible(self, message: str) -> Exception:  # pragma: no cover - overridden
        raise NotImplementedError


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


_ACCEPTS = {
    "string": {"string"},
    "enum": {"string"},
    "bool": {"bool"},
    "datetime": {"datetime", "date"},
    "strings": {"string"},
}


class Compiler:
    """Turns a parsed filter into a predicate, recording the features that need an advanced query."""

    def __init__(self, fields: dict[str, Field], policy: FilterPolicy) -> None:
        self.fields = {k.lower(): v for k, v in fields.items()}
        self.policy = policy
        self.advanced: list[str] = []  # ne, not, endswith, null — in order of appearance
        self.used: list[str] = []

    def field(self, prop: Prop) -> Field:
        f = self.fields.get(prop.text.lower())
        if f is None:
            raise self.policy.unknown_property(prop.text)
        self.used.append(f.name)
        return f

    def check(self, f: Field, op: str, lit: Lit | None = None) -> None:
        if op not in f.ops:
            raise self.policy.unsupported(f.name, op)
        if lit is None or lit.kind == "null":
            return
        if lit.kind not in _ACCEPTS.get(f.type, set()):
            if op in ("startswith", "endswith", "contains"):
                raise self.policy.incompatible(
                    f"No function signature for the function with name '{op}' matches the specified "
                    f"arguments. The function signatures considered are: {op}(Edm.String Nullable=true, "
                    "Edm.String Nullable=true)."
                )
            raise self.policy.incompatible(
                "A binary operator with incompatible types was detected. Found operand types "
                f"'{EDM.get(f.type, 'Edm.String')}' and '{EDM[lit.kind]}' for operator kind "
                f"'{OPERATOR_KIND.get(op, 'Equal')}'."
            )

    def compile(self, node: Node) -> Callable[[Any], bool]:
        if isinstance(node, BoolOp):
            left, right = self.compile(node.left), self.compile(node.right)
            if node.op == "and":
                return lambda o: left(o) and right(o)
            return lambda o: left(o) or right(o)
        if isinstance(node, Not):
            self.advanced.append("not")
            inner = self.compile(node.operand)
            return lambda o: not inner(o)
        if isinstance(node, AnyOf):
            f = self.field(node.prop)
            self.check(f, "any")
            elem = Field(f.name, "string", lambda v: v, f.ops)
            sub = Compiler({node.var: elem}, self.policy)
            test = sub.compile(node.body)
            self.advanced.extend(sub.advanced)
            get = f.get
            return lambda o: any(test(v) for v in (get(o) or ()))
        f = self.field(node.prop)
        get = f.get
        if isinstance(node, InList):
            for lit in node.values:
                self.check(f, "in", lit)
            wanted = {_fold(v.value) for v in node.values}
            return lambda o: _fold(get(o)) in wanted
        if isinstance(node, Call):
            self.check(f, node.name, node.value)
            if node.name == "endswith":
                self.advanced.append("endswith")
            needle = _fold(node.value.value)
            if node.name == "startswith":
                return lambda o: isinstance(v := get(o), str) and v.casefold().startswith(needle)
            if node.name == "endswith":
                return lambda o: isinstance(v := get(o), str) and v.casefold().endswith(needle)
            return lambda o: isinstance(v := get(o), str) and needle in v.casefold()
        return self._compare(f, node)

    def _compare(self, f: Field, node: Compare) -> Callable[[Any], bool]:
        op, lit, get = node.op, node.value, f.get
        if lit.kind == "null":
            if op not in ("eq", "ne"):
                raise self.policy.incompatible(
                    f"A binary operator with incompatible types was detected. Found operand types "
                    f"'{EDM.get(f.type, 'Edm.String')}' and 'null' for operator kind '{OPERATOR_KIND[op]}'."
                )
            self.check(f, "null")
            self.advanced.append("null" if op == "eq" else "ne")
            return (lambda o: get(o) is None) if op == "eq" else (lambda o: get(o) is not None)
        self.check(f, op, lit)
        if op == "ne":
            self.advanced.append("ne")
        target = _fold(lit.value)
        if op == "eq":
            return lambda o: _fold(get(o)) == target
        if op == "ne":
            return lambda o: _fold(get(o)) != target
        cmp = {
            "gt": lambda a: a > target,
            "ge": lambda a: a >= target,
            "lt": lambda a: a < target,
            "le": lambda a: a <= target,
        }[op]
        return lambda o: (v := _fold(get(o))) is not None and cmp(v)
