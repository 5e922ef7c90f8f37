"""HTTP route templates with the Functions host's (ASP.NET Core's) syntax.

Supported: literal segments (matched case-insensitively), ``{name}``,
``{name?}`` (optional), ``{name=default}``, ``{*rest}``/``{**rest}`` (catch-all,
also matches nothing), complex segments such as ``{name}.{ext}``, and the
inline constraints ``int long bool datetime decimal double float guid alpha
minlength(n) maxlength(n) length(n) length(a,b) min(n) max(n) range(a,b)
regex(expr) required``, chained as in ``{id:int:min(1)}``.

Matching is on the raw path split on ``/``; each value is then percent-decoded
except ``%2F``, which stays encoded as in ASP.NET Core, so a value never gains a
``/`` that the client did not send as one (a catch-all value holds the path's
own ``/``, and ``%2F`` as ``%2F``). A trailing slash is ignored. When several templates match, the most
specific wins (literal, then complex, then constrained, then plain parameter,
then catch-all, segment by segment); ties keep declaration order.

A path that matches a template whose methods exclude the request's method does
not match at all, so the host answers 404, not 405, like the real host.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Generic, TypeVar
from urllib.parse import unquote

__all__ = ["RouteError", "RouteMatch", "RouteTemplate", "Router"]

T = TypeVar("T")

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")
_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")
_GUID = re.compile(
    r"^(?:[0-9a-f]{32}"
    r"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}"
    r"|\([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\))$",
    re.IGNORECASE,
)
_ALPHA = re.compile(r"^[a-z]*$", re.IGNORECASE)
_PARAMETER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class RouteError(ValueError):
    """A route template cannot be parsed (the host refuses such a function)."""


Check = Callable[[str], bool]


@dataclass(frozen=True)
class _Parameter:
    name: str
    checks: tuple[Check, ...] = ()
    optional: bool = False
    default: str | None = None
    catch_all: bool = False

    def accepts(self, value: str) -> bool:
        return all(check(value) for check in self.checks)


@dataclass(frozen=True)
class _Segment:
    parts: tuple[str | _Parameter, ...]

    @property
    def parameter(self) -> _Parameter | None:
        if len(self.parts) == 1 and isinstance(self.parts[0], _Parameter):
            return self.parts[0]
        return None

    @property
    def rank(self) -> int:
        parameter = self.parameter
        if parameter is None:
            return 1 if all(isinstance(p, str) for p in self.parts) else 2
        if parameter.catch_all:
            return 5
        return 3 if parameter.checks else 4

    def can_be_absent(self) -> bool:
        parameter = self.parameter
        return parameter is not None and (
            parameter.optional or parameter.catch_all or parameter.default is not None
        )


@dataclass(frozen=True)
class RouteMatch(Generic[T]):
    target: T
    route_params: dict[str, str]
    template: str


class RouteTemplate:
    """One parsed template; ``match`` returns route values or None."""

    def __init__(self, template: str) -> None:
        self.template = template.strip("/")
        self.segments = tuple(_parse_segment(s, template) for s in _split(self.template))
        names = [p.name.lower() for s in self.segments for p in s.parts if isinstance(p, _Parameter)]
        if len(names) != len(set(names)):
            raise RouteError(f"route '{template}': a parameter name is used twice")
        for index, segment in enumerate(self.segments):
            parameter = segment.parameter
            if parameter and parameter.catch_all and index != len(self.segments) - 1:
                raise RouteError(f"route '{template}': a catch-all must be the last segment")
        self.precedence = tuple(segment.rank for segment in self.segments)

    def match(self, raw_segments: list[str]) -> dict[str, str] | None:
        values: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            parameter = segment.parameter
            if parameter is not None and parameter.catch_all:
                rest = "/".join(raw_segments[index:])
                if rest:
                    # The path's own '/' separate the segments; an encoded one
                    # stays '%2F', as Kestrel leaves it (aspnet/Mvc#6388).
                    value = _decode(rest)
                    if not parameter.accepts(value):
                        return None
                    values[parameter.name] = value
                elif parameter.default is not None:
                    values[parameter.name] = parameter.default
                return values
            if index >= len(raw_segments):
                if not all(s.can_be_absent() for s in self.segments[index:]):
                    return None
                for later in self.segments[index:]:
                    absent = later.parameter
                    if absent is not None and absent.default is not None:
                        values[absent.name] = absent.default
                return values
            if not _match_segment(segment, _decode(raw_segments[index]), values):
                return None
        return values if len(raw_segments) == len(self.segments) else None


class Router(Generic[T]):
    """Maps (method, raw path) to a target, with an optional route prefix."""

    def __init__(self, route_prefix: str) -> None:
        self.route_prefix = route_prefix.strip("/")
        self._routes: list[tuple[RouteTemplate, frozenset[str], T]] = []

    def add(self, route: str, methods: Iterable[str], target: T) -> str:
        """Register a route; returns the full template including the prefix."""
        full = "/".join(part for part in (self.route_prefix, route.strip("/")) if part)
        template = RouteTemplate(full)
        self._routes.append((template, frozenset(m.upper() for m in methods), target))
        self._routes.sort(key=lambda entry: entry[0].precedence)  # stable
        return template.template

    def resolve(self, method: str, raw_path: str) -> RouteMatch[T] | None:
        segments = _split(raw_path.strip("/"))
        for template, methods, target in self._routes:
            if method.upper() not in methods:
                continue
            values = template.match(segments)
            if values is not None:
                return RouteMatch(target, values, template.template)
        return None


def _split(path: str) -> list[str]:
    return path.split("/") if path else []


def _decode(raw: str) -> str:
    """Percent-decode a raw path (or part of one) except ``%2F``, which stays as sent."""
    return unquote(re.sub("%(2[Ff])", r"%25\1", raw))


def _match_segment(segment: _Segment, text: str, values: dict[str, str]) -> bool:
    parameter = segment.parameter
    if parameter is not None:
        if text == "" or not parameter.accepts(text):
            return False
        values[parameter.name] = text
        return True
    if all(isinstance(part, str) for part in segment.parts):
        return text.lower() == "".join(str(p) for p in segment.parts).lower()
    # Greedy groups leave the shortest match to the last parameter, as ASP.NET
    # does by matching complex segments from right to left.
    pattern = "".join(
        re.escape(part) if isinstance(part, str) else f"(?P<{part.name}>.+)" for part in segment.parts
    )
    found = re.fullmatch(pattern, text, re.IGNORECASE | re.DOTALL)
    if found is None:
        return False
    for part in segment.parts:
        if isinstance(part, _Parameter):
            if not part.accepts(found[part.name]):
                return False
            values[part.name] = found[part.name]
    return True


def _parse_segment(text: str, template: str) -> _Segment:
    parts: list[str | _Parameter] = []
    literal = ""
    index = 0
    while index < len(text):
        char = text[index]
        if text.startswith("{{", index) or text.startswith("}}", index):
            literal += char
            index += 2
        elif char == "{":
            end = _closing_brace(text, index, template)
            if literal:
                parts.append(literal)
                literal = ""
            body = text[index + 1 : end].replace("{{", "{").replace("}}", "}")
            parts.append(_parse_parameter(body, template))
            index = end + 1
        elif char == "}":
            raise RouteError(f"route '{template}': unmatched '}}'")
        else:
            literal += char
            index += 1
    if literal:
        parts.append(literal)
    if any(isinstance(a, _Parameter) and isinstance(b, _Parameter) for a, b in itertools.pairwise(parts)):
        raise RouteError(f"route '{template}': two parameters need a literal between them")
    if not parts:
        raise RouteError(f"route '{template}': empty segment")
    segment = _Segment(tuple(parts))
    for part in parts:
        if isinstance(part, _Parameter) and segment.parameter is None and (part.catch_all or part.optional):
            raise RouteError(f"route '{template}': '{part.name}' cannot be optional or catch-all here")
    return segment


def _closing_brace(text: str, start: int, template: str) -> int:
    index = start + 1
    while index < len(text):
        if text.startswith("{{", index) or text.startswith("}}", index):
            index += 2
        elif text[index] == "}":
            return index
        else:
            index += 1
    raise RouteError(f"route '{template}': unmatched '{{'")


def _parse_parameter(body: str, template: str) -> _Parameter:
    catch_all = body.startswith("*")
    body = body.lstrip("*")
    name_end = len(body)
    for marker in (":", "=", "?"):
        position = body.find(marker)
        if position != -1:
            name_end = min(name_end, position)
    name, rest = body[:name_end], body[name_end:]
    if not _PARAMETER_NAME.match(name):
        raise RouteError(f"route '{template}': '{name}' is not a valid parameter name")
    checks: list[Check] = []
    while rest.startswith(":"):
        constraint, rest = _take_constraint(rest[1:], template)
        checks.append(_constraint(constraint, template))
    optional = default = None
    if rest == "?":
        optional = True
    elif rest.startswith("="):
        default = rest[1:]
    elif rest:
        raise RouteError(f"route '{template}': cannot parse '{{{body}}}'")
    return _Parameter(name, tuple(checks), bool(optional), default, catch_all)


def _take_constraint(text: str, template: str) -> tuple[str, str]:
    """Split ``name(args)`` off the front of ``text``; args may contain ':'."""
    stops = [p for p in (text.find(":"), text.find("="), text.find("?")) if p != -1]
    stop = min(stops, default=len(text))
    paren = text.find("(")
    if paren == -1 or paren > stop:
        return text[:stop], text[stop:]
    # The arguments end at the first ')' that ends the text or precedes ':=?'.
    for index in range(paren + 1, len(text)):
        if text[index] == ")" and (index + 1 == len(text) or text[index + 1] in ":=?"):
            return text[: index + 1], text[index + 1 :]
    raise RouteError(f"route '{template}': unclosed '(' in constraint '{text}'")


def _constraint(text: str, template: str) -> Check:
    name, _, args_text = text.partition("(")
    args = [a.strip() for a in args_text[:-1].split(",")] if args_text else []
    name = name.lower()
    try:
        if name == "regex" and args_text:
            expression = re.compile(args_text[:-1], re.IGNORECASE)
            return lambda v: expression.search(v) is not None
        factory = _CONSTRAINTS[name]
        return factory(args)
    except (KeyError, ValueError, TypeError, re.error) as error:
        raise RouteError(f"route '{template}': unsupported constraint '{text}'") from error


def _integer_in(bounds: tuple[int, int]) -> Check:
    return lambda v: bool(_INTEGER.match(v)) and bounds[0] <= int(v) <= bounds[1]


def _is_decimal(value: str) -> bool:
    if not _NUMBER.match(value):
        return False
    try:
        Decimal(value.strip())
    except InvalidOperation:
        return False
    return True


def _is_datetime(value: str) -> bool:
    try:
        dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return False
    return True


def _no_args(check: Check) -> Callable[[list[str]], Check]:
    def factory(args: list[str]) -> Check:
        if args:
            raise ValueError("takes no arguments")
        return check

    return factory


def _length(args: list[str]) -> Check:
    if len(args) == 1:
        exact = int(args[0])
        return lambda v: len(v) == exact
    low, high = int(args[0]), int(args[1])
    return lambda v: low <= len(v) <= high


def _range(args: list[str]) -> Check:
    low, high = int(args[0]), int(args[1])
    return lambda v: bool(_INTEGER.match(v)) and low <= int(v) <= high


def _min_length(args: list[str]) -> Check:
    (limit,) = map(int, args)
    return lambda v: len(v) >= limit


def _max_length(args: list[str]) -> Check:
    (limit,) = map(int, args)
    return lambda v: len(v) <= limit


def _min(args: list[str]) -> Check:
    (limit,) = map(int, args)
    return lambda v: bool(_INTEGER.match(v)) and int(v) >= limit


def _max(args: list[str]) -> Check:
    (limit,) = map(int, args)
    return lambda v: bool(_INTEGER.match(v)) and int(v) <= limit


_CONSTRAINTS: dict[str, Callable[[list[str]], Check]] = {
    "int": _no_args(_integer_in(_INT32)),
    "long": _no_args(_integer_in(_INT64)),
    "bool": _no_args(lambda v: v.strip().lower() in ("true", "false")),
    "datetime": _no_args(_is_datetime),
    "decimal": _no_args(_is_decimal),
    "double": _no_args(_is_decimal),
    "float": _no_args(_is_decimal),
    "guid": _no_args(lambda v: bool(_GUID.match(v))),
    "alpha": _no_args(lambda v: bool(_ALPHA.match(v))),
    "required": _no_args(lambda v: v != ""),
    "minlength": _min_length,
    "maxlength": _max_length,
    "length": _length,
    "min": _min,
    "max": _max,
    "range": _range,
}
