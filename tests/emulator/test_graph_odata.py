"""The ``$filter`` parser and compiler, and the page-token codec (no server)."""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.graph.filters import Compiler, Field, FilterPolicy
from emulator.graph.odata import (
    AnyOf,
    BoolOp,
    Call,
    Compare,
    FilterSyntaxError,
    InList,
    Not,
    parse_filter,
    properties_in_order,
    tokenize,
)
from emulator.graph.query import decode_token, encode_token

UTC = dt.UTC


@dataclass
class Item:
    name: str | None
    enabled: bool
    created: dt.datetime
    tags: list[str]


class RefusedError(Exception):
    pass


class Policy(FilterPolicy):
    def unknown_property(self, name: str) -> Exception:
        return RefusedError(f"unknown {name}")

    def unsupported(self, field: str, op: str) -> Exception:
        return RefusedError(f"unsupported {field} {op}")

    def incompatible(self, message: str) -> Exception:
        return RefusedError(message)


FIELDS = {
    "name": Field(
        "name",
        "string",
        lambda i: i.name,
        frozenset({"eq", "ne", "ge", "le", "in", "startswith", "endswith", "null"}),
    ),
    "enabled": Field("enabled", "bool", lambda i: i.enabled, frozenset({"eq", "ne", "in"})),
    "created": Field(
        "created", "datetime", lambda i: i.created, frozenset({"eq", "ne", "ge", "le", "gt", "lt"})
    ),
    "tags": Field("tags", "strings", lambda i: i.tags, frozenset({"any", "eq", "startswith"})),
}
ITEMS = [
    Item("Adèle", True, dt.datetime(2020, 1, 1, tzinfo=UTC), ["Unified"]),
    Item("bob", False, dt.datetime(2021, 6, 1, tzinfo=UTC), []),
    Item("O'Brien", True, dt.datetime(2022, 3, 1, tzinfo=UTC), ["x", "Dynamic"]),
    Item(None, True, dt.datetime(2023, 1, 1, tzinfo=UTC), []),
]


def run(text: str) -> tuple[list[str | None], list[str]]:
    compiler = Compiler(FIELDS, Policy())
    pred = compiler.compile(parse_filter(text))
    return [i.name for i in ITEMS if pred(i)], compiler.advanced


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("name eq 'bob'", ["bob"]),
        ("NAME EQ 'BOB'", ["bob"]),  # keywords, properties and string comparison are case-insensitive
        ("name eq 'O''Brien'", ["O'Brien"]),
        ("startswith(name,'ad')", ["Adèle"]),
        ("startsWith(name, 'AD')", ["Adèle"]),
        ("endsWith(name,'EN')", ["O'Brien"]),
        ("name in ('bob', 'adèle')", ["Adèle", "bob"]),
        ("enabled eq false", ["bob"]),
        ("enabled eq true and startswith(name,'o')", ["O'Brien"]),
        ("name eq 'bob' or name eq 'Adèle'", ["Adèle", "bob"]),
        ("not(enabled eq true)", ["bob"]),
        ("NOT startswith(name,'b')", ["Adèle", "O'Brien", None]),
        ("created ge 2021-06-01T00:00:00Z", ["bob", "O'Brien", None]),
        ("created lt 2021-01-01", ["Adèle"]),
        ("created ge 2021-01-01T00:00:00+02:00 and created le 2022-12-31T23:59:59Z", ["bob", "O'Brien"]),
        ("name eq null", [None]),
        ("name ne null and name ne 'bob'", ["Adèle", "O'Brien"]),
        ("tags/any(t:t eq 'unified')", ["Adèle"]),
        ("tags/any(t:startswith(t,'dyn'))", ["O'Brien"]),
        ("(name eq 'bob' or name eq 'x') and enabled eq false", ["bob"]),
    ],
)
def test_filter_semantics(text: str, names: list[str | None]) -> None:
    assert run(text)[0] == names


def test_and_binds_tighter_than_or() -> None:
    assert run("name eq 'bob' or name eq 'Adèle' and enabled eq false")[0] == ["bob"]


@pytest.mark.parametrize(
    ("text", "features"),
    [
        ("name ne 'x'", ["ne"]),
        ("not(name eq 'x')", ["not"]),
        ("endswith(name,'x')", ["endswith"]),
        ("name eq null", ["null"]),
        ("name eq 'x' and startswith(name,'y')", []),
    ],
)
def test_advanced_features_are_recorded(text: str, features: list[str]) -> None:
    assert run(text)[1] == features


@pytest.mark.parametrize(
    "text",
    [
        "",
        "name eq",
        "name eq 'x' and",
        "eq 'x'",
        "'x' eq name",
        "name eq 'unterminated",
        "name = 'x'",
        "startswith(name)",
        "name eq 'x')",
        "(name eq 'x'",
        "name in 'x'",
        "name eq 'x' xor name eq 'y'",
        "tags/all(t:t eq 'x')",
        "tags/any(t:other eq 'x')",
        "name eq 'a' ;",
        "name eq 2021-13-45",
    ],
)
def test_malformed_filters_are_syntax_errors(text: str) -> None:
    with pytest.raises(FilterSyntaxError):
        Compiler(FIELDS, Policy()).compile(parse_filter(text))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope eq 'x'", "unknown nope"),
        ("contains(name,'x')", "unsupported name contains"),
        ("enabled ge true", "unsupported enabled ge"),
        ("name gt 'x'", "unsupported name gt"),
        (
            "enabled eq 'true'",
            "A binary operator with incompatible types was detected. Found operand types "
            "'Edm.Boolean' and 'Edm.String' for operator kind 'Equal'.",
        ),
        (
            "created ge '2020-01-01'",
            "A binary operator with incompatible types was detected. Found operand types "
            "'Edm.DateTimeOffset' and 'Edm.String' for operator kind 'GreaterThanOrEqual'.",
        ),
        (
            "name eq 5d6a1b6e-1111-2222-3333-444455556666",
            "A binary operator with incompatible types was detected. "
            "Found operand types 'Edm.String' and 'Edm.Guid' for "
            "operator kind 'Equal'.",
        ),
        ("startswith(enabled,'t')", "unsupported enabled startswith"),
    ],
)
def test_semantic_errors(text: str, message: str) -> None:
    with pytest.raises(RefusedError) as info:
        Compiler(FIELDS, Policy()).compile(parse_filter(text))
    assert str(info.value) == message


def test_ast_shape_and_property_order() -> None:
    node = parse_filter(
        "receivedDateTime ge 2024-01-01T00:00:00Z and (isRead eq false or not "
        "from/emailAddress/address in ('a@b.c')) and tags/any(t:t eq 'x')"
    )
    assert isinstance(node, BoolOp)
    assert properties_in_order(node) == ["receivedDateTime", "isRead", "from/emailAddress/address", "tags"]
    assert isinstance(parse_filter("a eq 1"), Compare)
    assert isinstance(parse_filter("a in (1, 2)"), InList)
    assert isinstance(parse_filter("startswith(a,'x')"), Call)
    assert isinstance(parse_filter("not a eq 1"), Not)
    assert isinstance(parse_filter("a/any(x:x eq 1)"), AnyOf)


def test_syntax_error_message_names_the_character() -> None:
    with pytest.raises(FilterSyntaxError, match=r"character '\$' is not valid at position 8"):
        tokenize("name eq $x")


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30))
def test_string_literals_round_trip(value: str) -> None:
    literal = "'" + value.replace("'", "''") + "'"
    node = parse_filter(f"name eq {literal}")
    assert isinstance(node, Compare) and node.value.value == value


@given(st.text(max_size=60))
def test_parser_never_crashes(text: str) -> None:
    with contextlib.suppress(FilterSyntaxError, RefusedError):
        Compiler(FIELDS, Policy()).compile(parse_filter(text))


# --- filters generated from the grammar (emulator.graph.odata's docstring) ---------------------------------
# Random text almost never gets past the tokenizer, so the compiler and the compiled predicates are fuzzed
# with sentences of the grammar itself: real and unknown properties, every operator, every literal kind,
# nested and/or/not, in-lists, functions and any() lambdas, in any casing the grammar allows.
def _keyword(word: str) -> st.SearchStrategy[str]:
    return st.sampled_from([word, word.upper(), word.capitalize()])


_LITERALS = st.one_of(
    st.text(max_size=6).map(lambda v: "'" + v.replace("'", "''") + "'"),
    st.sampled_from(["true", "false", "null", "TRUE"]),
    st.integers(-(10**6), 10**6).map(str),
    st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2100, 1, 1)).map(
        lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")
    ),
    st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2100, 1, 1)).map(str),
    st.uuids().map(str),
)
_PATHS = st.sampled_from([*FIELDS, "colour", "manager/name"])
_OPS = st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le"]).flatmap(_keyword)
_FUNCTIONS = st.sampled_from(["startswith", "endswith", "contains"]).flatmap(_keyword)


def _sentences() -> st.SearchStrategy[str]:
    compare = st.builds(lambda p, o, v: f"{p} {o} {v}", _PATHS, _OPS, _LITERALS)
    in_list = st.builds(
        lambda p, kw, vs: f"{p} {kw} ({', '.join(vs)})",
        _PATHS,
        _keyword("in"),
        st.lists(_LITERALS, min_size=1, max_size=3),
    )
    call = st.builds(lambda f, p, v: f"{f}({p},{v})", _FUNCTIONS, _PATHS, _LITERALS)
    lambda_ = st.builds(
        lambda p, kw, o, v, f: f"{p}/{kw}(t:t {o} {v})" if f is None else f"{p}/{kw}(t:{f}(t,{v}))",
        _PATHS,
        _keyword("any"),
        _OPS,
        _LITERALS,
        st.none() | _FUNCTIONS,
    )
    string = st.text(max_size=4).map(lambda v: "'" + v.replace("'", "''") + "'")
    when = st.datetimes(min_value=dt.datetime(2019, 1, 1), max_value=dt.datetime(2024, 1, 1)).map(
        lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    # ... and, mostly, sentences each property takes, so most reach the compiled predicate.
    typed = st.one_of(
        st.builds(
            lambda o, v: f"name {o} {v}", st.sampled_from(["eq", "ne", "ge", "le"]), string | st.just("null")
        ),
        st.builds(lambda f, v: f"{f}(name,{v})", st.sampled_from(["startswith", "endsWith"]), string),
        st.builds(lambda vs: f"name in ({', '.join(vs)})", st.lists(string, min_size=1, max_size=3)),
        st.builds(
            lambda o, v: f"enabled {o} {v}", st.sampled_from(["eq", "ne"]), st.sampled_from(["true", "false"])
        ),
        st.builds(
            lambda o, v: f"created {o} {v}", st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le"]), when
        ),
        st.builds(lambda v: f"tags/any(t:t eq {v})", string | st.sampled_from(["'Unified'", "'x'"])),
        st.builds(lambda v: f"tags/any(t:startswith(t,{v}))", string),
    )
    atom = st.one_of(typed, typed, typed, compare, in_list, call, lambda_)
    return st.recursive(
        atom,
        lambda inner: st.one_of(
            st.builds(lambda a, kw, b: f"{a} {kw} {b}", inner, _keyword("and") | _keyword("or"), inner),
            st.builds(lambda kw, a: f"{kw} {a}", _keyword("not"), inner),
            st.builds(lambda kw, a: f"{kw}({a})", _keyword("not"), inner),
            inner.map(lambda a: f"({a})"),
        ),
        max_leaves=6,
    )


@given(_sentences())
def test_grammar_sentences_parse_and_compiled_filters_run(text: str) -> None:
    node = parse_filter(text)  # a sentence of the grammar always parses
    try:
        predicate = Compiler(FIELDS, Policy()).compile(node)
    except RefusedError:
        return  # unknown property, or an operator or literal the property does not take (as in Graph)
    assert all(isinstance(predicate(item), bool) for item in ITEMS)


@given(
    st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=8), st.none()), max_size=4)
)
def test_page_tokens_round_trip_and_resist_tampering(payload: dict[str, object]) -> None:
    secret = b"k" * 32
    token = encode_token(secret, payload)
    assert decode_token(secret, token) == payload
    assert decode_token(b"other" * 8, token) is None
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert decode_token(secret, flipped) in (None, payload)  # the last char may be padding bits only
    assert decode_token(secret, "not a token!") is None
    assert decode_token(secret, token[:10]) is None
