"""The report's totals, accumulated page by page in memory that does not grow with the tenant
(a few counters and one counter per department name; department names are few, and the top N plus
"other" are kept in the summary).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

NO_DEPARTMENT = "(none)"
OTHER = "other"
_COUNTED = ("accountEnabled", "userType", "createdDateTime", "department")
_FLAG_TYPES = frozenset({bool, type(None)})
_STAMP_LENGTH = len("2024-05-01T08:00:00Z")


def _department_name(value: Any) -> str:
    return value.strip() if isinstance(value, str) and value.strip() else NO_DEPARTMENT


def parse_graph_time(value: Any) -> dt.datetime | None:
    """A Graph ``DateTimeOffset`` (``2024-05-01T08:00:00Z``), None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@dataclasses.dataclass
class Totals:
    """Counts over every user of the report. ``now`` anchors "created in the last 24 h / 7 days"."""

    now: dt.datetime
    users: int = 0
    enabled: int = 0
    disabled: int = 0
    members: int = 0
    guests: int = 0
    created_last_24h: int = 0
    created_last_7d: int = 0
    departments: Counter[str] = dataclasses.field(default_factory=Counter)
    _week_ago: str = dataclasses.field(init=False, repr=False, default="")

    def __post_init__(self) -> None:
        self._week_ago = (self.now - dt.timedelta(days=7)).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def add(self, user: Mapping[str, Any]) -> None:
        """Count one user (a Graph user object)."""
        self.add_page({name: (user.get(name),) for name in _COUNTED})

    def add_page(self, columns: Mapping[str, Sequence[Any]]) -> None:
        """Count a page of users from its columns (:func:`shared.report.cells.user_columns`): the same
        totals as :meth:`add` per user, counted with C-level passes (``list.count``, ``Counter``, ``max``)
        where the column's value types allow it."""
        enabled = columns["accountEnabled"]
        users = len(enabled)
        if set(map(type, enabled)) <= _FLAG_TYPES:
            disabled = enabled.count(False)
        else:  # count() compares with ==, and 0 == False: only a real False is "disabled"
            disabled = sum(1 for value in enabled if value is False)
        guests = columns["userType"].count("Guest")
        self.users += users
        self.disabled += disabled
        self.enabled += users - disabled
        self.guests += guests
        self.members += users - guests
        for stamp in self._maybe_recent(columns["createdDateTime"]):
            created = parse_graph_time(stamp)
            if created is None:
                continue
            age = self.now - created
            if dt.timedelta(0) <= age <= dt.timedelta(hours=24):
                self.created_last_24h += 1
            if dt.timedelta(0) <= age <= dt.timedelta(days=7):
                self.created_last_7d += 1
        departments = columns["department"]
        try:
            tallies = Counter(departments)
        except TypeError:  # an unhashable value (not a string): its name is NO_DEPARTMENT anyway
            tallies = Counter(map(_department_name, departments))
        for value, count in tallies.items():
            self.departments[_department_name(value)] += count

    def _maybe_recent(self, stamps: Sequence[Any]) -> Sequence[Any]:
        """The stamps that may be within the last 7 days. Graph's ``YYYY-MM-DDTHH:MM:SSZ`` sorts as text, so
        one older than a week needs no parsing; a page of only older ones is dismissed by one ``max``."""
        week_ago = self._week_ago
        if set(map(type, stamps)) == {str} and set(map(len, stamps)) == {_STAMP_LENGTH}:
            return () if max(stamps) < week_ago else [s for s in stamps if s >= week_ago]
        return [s for s in stamps if not (s.__class__ is str and len(s) == _STAMP_LENGTH and s < week_ago)]

    def top_departments(self, top: int) -> list[dict[str, Any]]:
        """The ``top`` largest departments (ties by name), then ``other`` with the rest (when any)."""
        ranked = sorted(self.departments.items(), key=lambda item: (-item[1], item[0]))
        head = [{"name": name, "users": count} for name, count in ranked[:top]]
        rest = sum(count for _, count in ranked[top:])
        if rest:
            head.append({"name": OTHER, "users": rest, "departments": len(ranked) - top})
        return head

    def to_json(self) -> dict[str, int]:
        return {
            "users": self.users,
            "enabled": self.enabled,
            "disabled": self.disabled,
            "members": self.members,
            "guests": self.guests,
            "createdLast24h": self.created_last_24h,
            "createdLast7d": self.created_last_7d,
        }
