"""users.csv cells: what one Graph user object becomes in the file, and the same for a whole page at once.

:func:`cell` and :func:`user_row` define the output (one value, one user). :func:`page_rows` produces
exactly the rows ``[user_row(u) for u in page]`` would, but column by column: a page's values are taken out
with one ``itemgetter`` per user, and each column is checked with a few C-level passes (the set of its value
types, the set of its first characters) instead of a Python branch per cell. A column that holds only plain
text without a formula start, or only booleans, needs no per-cell work; anything else (numbers, a text
starting with ``=``, a missing property) takes :func:`cell` per value. At 100,000 users this takes the
cells from 0.23 s of CPU to 0.05 s (``docs/reports.md``, benchmark): CPU that the writing thread would
otherwise take from the thread fetching and decoding the next page.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import Any

from shared.report.listing import SIGN_IN_COLUMNS, SIGN_IN_FIELD, USER_FIELDS

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_FIRST = frozenset(_FORMULA_STARTS)
_TEXT_TYPES = frozenset({str, type(None)})
_FLAG_TYPES = frozenset({bool, type(None)})
_FLAG_CELLS = {True: "true", False: "false", None: ""}
_USER_VALUES = operator.itemgetter(*USER_FIELDS)
_FIRST_CHARACTER = operator.itemgetter(0)

#: A page's values by property name (None where a user lacks it), in page order.
Columns = Mapping[str, Sequence[Any]]


def cell(value: Any) -> str:
    """A CSV cell: booleans as ``true``/``false``, None as empty, and text that a spreadsheet would run as
    a formula (``= + - @``, tab, CR first) prefixed with ``'`` (OWASP "CSV injection")."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


def user_row(user: Mapping[str, Any]) -> list[str]:
    """The users.csv row of one Graph user object, in ``CSV_COLUMNS`` order (:func:`cell` per value)."""
    activity = user.get(SIGN_IN_FIELD)
    activity = activity if isinstance(activity, dict) else {}
    return [cell(user.get(name)) for name in USER_FIELDS] + [cell(activity.get(n)) for n in SIGN_IN_COLUMNS]


def user_columns(users: Sequence[Mapping[str, Any]]) -> dict[str, Sequence[Any]]:
    """The page's :data:`USER_FIELDS` values as columns (None where a user lacks a property)."""
    if not users:
        return {name: () for name in USER_FIELDS}
    try:
        values = list(map(_USER_VALUES, users))
    except KeyError:  # Graph answers null for an unset selected property; a missing key is the odd case
        values = [tuple(map(user.get, USER_FIELDS)) for user in users]
    return dict(zip(USER_FIELDS, zip(*values, strict=True), strict=True))


def column_cells(values: Sequence[Any]) -> Sequence[Any]:
    """:func:`cell` of each value, where None may stay None (``csv`` writes None as an empty field)."""
    kinds = set(map(type, values))
    if kinds <= _TEXT_TYPES:
        if _FORMULA_FIRST.isdisjoint(map(_FIRST_CHARACTER, filter(None, values))):
            return values
    elif kinds <= _FLAG_TYPES:
        return list(map(_FLAG_CELLS.__getitem__, values))
    return [cell(value) for value in values]


def page_cells(users: Sequence[Mapping[str, Any]], columns: Columns | None = None) -> list[Sequence[Any]]:
    """The users.csv cells of a page, column by column in ``CSV_COLUMNS`` order (None for an empty cell):
    ``zip(*page_cells(users))`` gives the rows ``[user_row(u) for u in users]`` would. ``columns``: the
    page's :func:`user_columns`, when the caller has them already."""
    by_name = columns if columns is not None else user_columns(users)
    cells = [column_cells(by_name[name]) for name in USER_FIELDS]
    if any(map(operator.contains, users, repeat(SIGN_IN_FIELD))):
        activities = [
            activity if isinstance(activity, dict) else {}
            for activity in map(operator.methodcaller("get", SIGN_IN_FIELD), users)
        ]
        cells += [column_cells([activity.get(name) for activity in activities]) for name in SIGN_IN_COLUMNS]
    else:  # not selected (no licence): the columns stay, empty
        empty = ("",) * len(users)
        cells += [empty] * len(SIGN_IN_COLUMNS)
    return cells


def page_rows(users: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """:func:`page_cells` as rows."""
    return list(zip(*page_cells(users), strict=True))
