"""How a directory entity (user, group) is exposed: its properties and default projection, its filterable,
sortable and searchable properties, and the errors Graph words for them; plus ``$search`` on directory
objects (``"property:term"`` clauses, tokenized prefix match, ``AND``/``OR``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from emulator.graph.filters import Compiler, Field, FilterPolicy
from emulator.graph.http import GraphError
from emulator.graph.odata import FilterSyntaxError, parse_filter
from emulator.graph.query import parse_select


@dataclass
class EntitySchema:
    type_name: str  # microsoft.graph.user
    resource: str  # User (as named in directory error messages)
    entity_set: str  # users
    properties: dict[str, Callable[[Any], Any]]  # canonical name -> JSON value
    default_select: list[str]
    filters: dict[str, Field]
    sort_basic: frozenset[str]
    sort_advanced: frozenset[str]
    sort_values: dict[str, Callable[[Any], Any]]
    search_fields: dict[str, Callable[[Any], Any]]
    basic: frozenset[str] | None = None  # readable with User.ReadBasic.All only
    not_in_collections: frozenset[str] = frozenset()  # $select of these on a list answers 501
    lookup: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lookup = {name.lower(): name for name in self.properties}

    def unknown(self, name: str) -> GraphError:
        return GraphError(
            400, "Request_BadRequest", f"Could not find a property named '{name}' on type '{self.type_name}'."
        )

    def select(self, value: str | None) -> list[str] | None:
        return parse_select(value, self.lookup, self.unknown)

    def project(self, obj: Any, select: Sequence[str] | None, basic_only: bool = False) -> dict[str, Any]:
        names = select or self.default_select
        props = self.properties
        if basic_only and self.basic is not None:
            allowed = self.basic
            return {n: props[n](obj) if n in allowed else None for n in names}
        return {n: props[n](obj) for n in names}

    def context_url(self, origin: str, select: Sequence[str] | None, entity: bool = False) -> str:
        sel = f"({','.join(select)})" if select else ""
        return f"{origin}/v1.0/$metadata#{self.entity_set}{sel}" + ("/$entity" if entity else "")


class DirectoryFilterPolicy(FilterPolicy):
    OPERATOR_NAMES: ClassVar[dict[str, str]] = {
        "ne": "NotEqualsMatch",
        "contains": "Contains",
        "gt": "GreaterThan",
        "lt": "LessThan",
        "any": "Any",
    }

    def __init__(self, schema: EntitySchema) -> None:
        self.schema = schema

    def unknown_property(self, name: str) -> Exception:
        canonical = self.schema.lookup.get(name.lower())
        if canonical is not None:  # a real property, just not filterable
            return GraphError(
                400,
                "Request_UnsupportedQuery",
                f"Unsupported or invalid query filter clause "
                f"specified for property '{canonical}' of resource "
                f"'{self.schema.resource}'.",
            )
        return self.schema.unknown(name)

    def unsupported(self, field: str, op: str) -> Exception:
        if op in ("contains", "gt", "lt") or op not in (
            "eq",
            "in",
            "startswith",
            "endswith",
            "ge",
            "le",
            "ne",
            "null",
            "any",
        ):
            name = self.OPERATOR_NAMES.get(op, op)
            return GraphError(
                400, "Request_UnsupportedQuery", f"Unsupported property filter clause operator '{name}'."
            )
        return GraphError(
            400,
            "Request_UnsupportedQuery",
            f"Unsupported or invalid query filter clause "
            f"specified for property '{field}' of resource "
            f"'{self.schema.resource}'.",
        )

    def incompatible(self, message: str) -> Exception:
        return GraphError(400, "BadRequest", message)


def compile_directory_filter(
    schema: EntitySchema, text: str
) -> tuple[Callable[[Any], bool], list[str], list[str]]:
    try:
        node = parse_filter(text)
    except FilterSyntaxError as exc:
        raise GraphError(400, "BadRequest", "Invalid filter clause") from exc
    compiler = Compiler(schema.filters, DirectoryFilterPolicy(schema))
    return compiler.compile(node), compiler.advanced, compiler.used


def require_advanced(features: list[str]) -> GraphError:
    first = features[0]
    if first == "ne":
        return GraphError(
            400, "Request_UnsupportedQuery", "Unsupported property filter clause operator 'NotEqualsMatch'."
        )
    return GraphError(400, "Request_UnsupportedQuery", "Unsupported Query.")


# ------------------------------------------------------------------------------------------- $search
# A clause is a double-quoted phrase in which a backslash escapes the next character ("Use the $search query
# parameter": "If it contains double quotes or backslash, it should be escaped with a backslash").
_CLAUSE = re.compile(r'\s*(?:"(?P<clause>(?:[^"\\]|\\.)*)"|(?P<op>AND|OR)(?=\s|"))\s*')
_ESCAPE = re.compile(r"\\(.)")
_WORD = re.compile(r"[\w]+", re.UNICODE)


def compile_search(schema: EntitySchema, text: str) -> Callable[[Any], bool]:
    """``"prop:term" [AND|OR "prop:term"]…`` — tokenized prefix matching, AND binding tighter than OR."""
    pos, groups, current, expect_clause = 0, [], [], True
    while pos < len(text):
        m = _CLAUSE.match(text, pos)
        if m is None or (m.group("clause") is None) == expect_clause:
            bad = text[pos:].lstrip()
            at = len(text) - len(bad)
            raise GraphError(
                400,
                "BadRequest",
                f"Syntax error: character '{bad[:1] or text[-1:]}' is not valid "
                f"at position {at} in '{text}'.",
            )
        if m.group("clause") is not None:
            prop, sep, term = _unescape_clause(m.group("clause"), text, m.start("clause")).partition(":")
            getter = schema.search_fields.get(prop.strip().lower()) if sep else None
            if getter is None or not term.strip():
                raise GraphError(400, "Request_UnsupportedQuery", "This query is not supported.")
            current.append((getter, [w.casefold() for w in _WORD.findall(term)] or [term.strip().casefold()]))
        elif m.group("op") == "OR":
            groups.append(current)
            current = []
        expect_clause = m.group("clause") is None
        pos = m.end()
    if expect_clause or not current:
        raise GraphError(400, "BadRequest", f"Syntax error: the $search expression '{text}' is incomplete.")
    groups.append(current)

    def clause_matches(obj: Any, getter: Callable[[Any], Any], words: list[str]) -> bool:
        value = getter(obj)
        if not isinstance(value, str):
            return False
        folded = value.casefold()
        tokens = _WORD.findall(folded)
        return folded.startswith(" ".join(words)) or all(any(t.startswith(w) for t in tokens) for w in words)

    return lambda obj: any(all(clause_matches(obj, g, w) for g, w in group) for group in groups)


def _unescape_clause(clause: str, text: str, offset: int) -> str:
    """The clause with ``\\"`` and ``\\\\`` unescaped; a backslash before anything else is a syntax error
    **[INFERRED]** (the documented rule names only those two)."""
    for escape in _ESCAPE.finditer(clause):
        if escape.group(1) not in '"\\':
            at = offset + escape.start()
            raise GraphError(
                400, "BadRequest", f"Syntax error: character '\\' is not valid at position {at} in '{text}'."
            )
    return _ESCAPE.sub(r"\1", clause)
