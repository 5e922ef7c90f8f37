"""The report's totals, accumulated one user at a time in memory that does not grow with the tenant
(a few counters and one counter per department name; department names are few, and the top N plus
"other" are kept in the summary).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Mapping
from typing import Any

NO_DEPARTMENT = "(none)"
OTHER = "other"


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
        self.users += 1
        if user.get("accountEnabled") is False:
            self.disabled += 1
        else:
            self.enabled += 1
        if user.get("userType") == "Guest":
            self.guests += 1
        else:
            self.members += 1
        stamp = user.get("createdDateTime")
        if stamp.__class__ is str and len(stamp) == 20 and stamp < self._week_ago:
            created = None  # Graph's "YYYY-MM-DDTHH:MM:SSZ" sorts as text: older than 7 days, no parse needed
        else:
            created = parse_graph_time(stamp)
        if created is not None:
            age = self.now - created
            if dt.timedelta(0) <= age <= dt.timedelta(hours=24):
                self.created_last_24h += 1
            if dt.timedelta(0) <= age <= dt.timedelta(days=7):
                self.created_last_7d += 1
        department = user.get("department")
        name = department.strip() if isinstance(department, str) and department.strip() else NO_DEPARTMENT
        self.departments[name] += 1

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
