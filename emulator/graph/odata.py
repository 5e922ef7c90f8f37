"""A small recursive-descent parser of the OData ``$filter`` subset Graph serves (compiled by ``filters``).

Why not a library: ``odata-query`` (the maintained OData parser on the package index) rejects syntax that
Graph documents and accepts — ``endsWith(mail,'…')`` (function names are case-insensitive in Graph) and
``not(…)`` with parentheses — and it pins ``python-dateutil<3`` (the venv has 4.x). The subset here is small:

    expr    := and ('or' and)*
    and     := unary ('and' unary)*
    unary   := 'not' unary | '(' expr ')' | call | compare
    call    := name '(' path ',' literal ')'                  startswith / endswith / contains …
    compare := path (op literal | 'in' '(' literal (',' literal)* ')')
             | path '/' 'any' '(' var ':' (var op literal | call-on-var) ')'
    op      := eq | ne | gt | ge | lt | le       (keywords and function names case-insensitive)

Literals: 'string' (with '' escapes), true/false, null, integers, DateTimeOffset (2024-01-01T00:00:00Z),
dates (2024-01-01) and GUIDs. Comparing a property with an incompatible literal is an error, as in Graph.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

UTC = dt.UTC
COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")
OPERATOR_KIND = {
    "eq": "Equal",
    "ne": "NotEqual",
    "gt": "GreaterThan",
    "ge": "GreaterThanOrEqual",
    "lt": "LessThan",
    "le": "LessThanOrEqual",
}
EDM = {
    "string": "Edm.String",
    "bool": "Edm.Boolean",
    "datetime": "Edm.DateTimeOffset",
    "date": "Edm.Date",
    "int": "Edm.Int32",
    "guid": "Edm.Guid",
    "enum": "Edm.String",
    "null": "null",
}


class FilterSyntaxError(ValueError):
    """The expression is not well formed (Graph: ``Invalid filter clause``)."""


# ------------------------------------------------------------------------------------------------ AST
@dataclass(frozen=True)
class Prop:
    path: tuple[str, ...]

    @property
    def text(self) -> str:
        return "/".join(self.path)


@dataclass(frozen=True)
class Lit:
    kind: str  # string | bool | null | int | datetime | date | guid
    value: Any


@dataclass(frozen=True)
class Compare:
    op: str
    prop: Prop
    value: Lit


@dataclass(frozen=True)
class InList:
    prop: Prop
    values: tuple[Lit, ...]


@dataclass(frozen=True)
class Call:
    name: str  # lower-cased
    prop: Prop
    value: Lit


@dataclass(frozen=True)
class AnyOf:
    prop: Prop
    var: str
    body: Compare | Call | InList


@dataclass(frozen=True)
class BoolOp:
    op: str  # and | or
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    operand: Node


Node = Compare | InList | Call | AnyOf | BoolOp | Not

# ------------------------------------------------------------------------------------------- lexer
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<guid>[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})(?![\w-])
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?(?:Z|[+-]\d{2}:\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})(?![\w:])
  | (?P<number>-?\d+)(?![\w.])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[(),/:])
""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise FilterSyntaxError(
                f"Syntax error: character '{text[pos]}' is not valid at position {pos} in '{text}'."
            )
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, m.group(), pos))
        pos = m.end()
    return tokens


def _literal(tok: Token) -> Lit:
    if tok.kind == "string":
        return Lit("string", tok.text[1:-1].replace("''", "'"))
    if tok.kind == "number":
        return Lit("int", int(tok.text))
    if tok.kind == "guid":
        return Lit("guid", tok.text.lower())
    if tok.kind == "datetime":
        try:
            return Lit("datetime", dt.datetime.fromisoformat(tok.text.replace("Z", "+00:00")).astimezone(UTC))
        except ValueError as exc:
            raise FilterSyntaxError(f"The DateTimeOffset text '{tok.text}' is not valid.") from exc
    if tok.kind == "date":
        try:
            return Lit("date", dt.datetime.fromisoformat(tok.text).replace(tzinfo=UTC))
        except ValueError as exc:
            raise FilterSyntaxError(f"The Date text '{tok.text}' is not valid.") from exc
    if tok.kind == "name" and tok.text.lower() in ("true", "false"):
        return Lit("bool", tok.text.lower() == "true")
    if tok.kind == "name" and tok.text.lower() == "null":
        return Lit("null", None)
    raise FilterSyntaxError(f"Expression expected at position {tok.pos}.")


# ------------------------------------------------------------------------------------------ parser
class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self, offset: int = 0) -> Token | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def take(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise FilterSyntaxError(f"Expression expected at position {len(self.text)} in '{self.text}'.")
        self.i += 1
        return tok

    def expect(self, text: str) -> None:
        tok = self.take()
        if tok.text.lower() != text:
            raise FilterSyntaxError(
                f"')' or ',' expected at position {tok.pos} in '{self.text}'."
                if text in "),:"
                else f"'{text}' expected at position {tok.pos}."
            )

    def is_word(self, tok: Token | None, *words: str) -> bool:
        return tok is not None and tok.kind == "name" and tok.text.lower() in words

    def parse(self) -> Node:
        if not self.tokens:
            raise FilterSyntaxError("The $filter expression is empty.")
        node = self.expr()
        tok = self.peek()
        if tok is not None:
            raise FilterSyntaxError(f"Syntax error at position {tok.pos} in '{self.text}'.")
        return node

    def expr(self) -> Node:
        node = self.conj()
        while self.is_word(self.peek(), "or"):
            self.take()
            node = BoolOp("or", node, self.conj())
        return node

    def conj(self) -> Node:
        node = self.unary()
        while self.is_word(self.peek(), "and"):
            self.take()
            node = BoolOp("and", node, self.unary())
        return node

    def unary(self) -> Node:
        tok = self.peek()
        if self.is_word(tok, "not"):
            self.take()
            return Not(self.unary())
        if tok is not None and tok.text == "(":
            self.take()
            node = self.expr()
            self.expect(")")
            return node
        nxt = self.peek(1)
        if tok is not None and tok.kind == "name" and nxt is not None and nxt.text == "(":
            return self.call()
        return self.compare()

    def path(self) -> Prop:
        tok = self.take()
        if tok.kind != "name" or tok.text.lower() in ("true", "false", "null"):
            raise FilterSyntaxError(f"Syntax error at position {tok.pos} in '{self.text}'.")
        parts = [tok.text]
        while self.peek() is not None and self.peek().text == "/":  # type: ignore[union-attr]
            nxt = self.peek(1)
            after = self.peek(2)
            if nxt is not None and after is not None and after.text == "(":
                break  # a lambda: handled by compare()
            self.take()
            name = self.take()
            if name.kind != "name":
                raise FilterSyntaxError(f"Syntax error at position {name.pos} in '{self.text}'.")
            parts.append(name.text)
        return Prop(tuple(parts))

    def literal(self) -> Lit:
        return _literal(self.take())

    def call(self) -> Call:
        name = self.take().text.lower()
        self.expect("(")
        prop = self.path()
        self.expect(",")
        value = self.literal()
        self.expect(")")
        return Call(name, prop, value)

    def compare(self) -> Node:
        prop = self.path()
        tok = self.take()
        if tok.text == "/":
            lam = self.take()
            if not self.is_word(lam, "any"):
                raise FilterSyntaxError(f"Syntax error at position {lam.pos} in '{self.text}'.")
            self.expect("(")
            var = self.take()
            if var.kind != "name":
                raise FilterSyntaxError(f"Syntax error at position {var.pos} in '{self.text}'.")
            self.expect(":")
            body = self.unary()
            self.expect(")")
            if not isinstance(body, (Compare, Call, InList)) or body.prop.path != (var.text,):
                raise FilterSyntaxError(f"Syntax error in the lambda at position {var.pos} in '{self.text}'.")
            return AnyOf(prop, var.text, body)
        word = tok.text.lower() if tok.kind == "name" else ""
        if word in COMPARISONS:
            return Compare(word, prop, self.literal())
        if word == "in":
            self.expect("(")
            values = [self.literal()]
            while self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
                self.take()
                values.append(self.literal())
            self.expect(")")
            return InList(prop, tuple(values))
        raise FilterSyntaxError(f"Syntax error at position {tok.pos} in '{self.text}'.")


def parse_filter(text: str) -> Node:
    return _Parser(text).parse()


def properties_in_order(node: Node) -> list[str]:
    """Property paths in the order they appear (for Outlook's $filter/$orderby rule)."""
    if isinstance(node, BoolOp):
        return properties_in_order(node.left) + properties_in_order(node.right)
    if isinstance(node, Not):
        return properties_in_order(node.operand)
    return [node.prop.text]
