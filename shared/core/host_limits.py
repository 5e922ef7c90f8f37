"""The host's limits the settings are checked against: Azure's 230 s HTTP response limit and host.json's
``functionTimeout`` (:func:`check_retry_bounds`). Standard library only: imported when ``function_app`` is
indexed."""

from __future__ import annotations

import json
import re
from pathlib import Path

from shared.core.retry_policy import worst_case_call_seconds
from shared.core.settings_reader import WHERE

__all__ = ["HOST_JSON", "HTTP_RESPONSE_LIMIT_SECONDS", "check_retry_bounds", "function_timeout_seconds"]

#: Azure's front end ends any HTTP request after 230 s, whatever functionTimeout says ("Function app timeout
#: duration", Azure Functions scale and hosting docs).
HTTP_RESPONSE_LIMIT_SECONDS = 230.0
#: The app's host.json, read for ``functionTimeout`` (the Functions host runs from the app root).
HOST_JSON = Path(__file__).resolve().parents[2] / "host.json"
# host.json functionTimeout: a .NET TimeSpan, [d.]hh:mm[:ss[.fffffff]] or a bare number of days (as the
# host parses it: "00:01" is one minute); "-1" means unbounded (Premium, Dedicated).
_TIMESPAN = r"(?:(\d+)\.)?(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.\d{1,7})?)?|(\d+)"


def function_timeout_seconds(host_json: Path) -> float | None:
    """host.json's ``functionTimeout`` in seconds; None when the file or the value is absent, unbounded
    (``-1``) or unreadable (the 230 s HTTP limit then applies alone; it is below every plan's default)."""
    try:
        value = json.loads(host_json.read_text(encoding="utf-8")).get("functionTimeout")
    except (OSError, ValueError, AttributeError):
        return None
    match = re.fullmatch(_TIMESPAN, value.strip()) if isinstance(value, str) else None
    if match is None:
        return None
    days, hours, minutes, seconds, whole_days = (int(part or 0) for part in match.groups())
    return float((((days + whole_days) * 24 + hours) * 60 + minutes) * 60 + seconds)


def check_retry_bounds(timeout: float, budget: float, function_timeout: float | None) -> str | None:
    """The problem, if any, with GRAPH_TIMEOUT_SECONDS and GRAPH_RETRY_BUDGET_SECONDS together: the longest
    one Graph call can take (:func:`~shared.core.retry_policy.worst_case_call_seconds`, ``budget + 2 x
    timeout``) must stay under both Azure's 230 s HTTP response limit and host.json's ``functionTimeout``."""
    limit, name = HTTP_RESPONSE_LIMIT_SECONDS, "Azure's 230 s HTTP response limit"
    if function_timeout is not None and function_timeout < limit:
        limit, name = function_timeout, f"host.json functionTimeout ({function_timeout:g} s)"
    worst = worst_case_call_seconds(timeout, budget)
    if worst < limit:
        return None
    fixes = [f"keep GRAPH_RETRY_BUDGET_SECONDS + 2 x GRAPH_TIMEOUT_SECONDS under {limit:g}"]
    if limit - 2 * timeout > 0:
        fixes.append(f"with this timeout, a budget below {limit - 2 * timeout:g}")
    if (limit - budget) / 2 > 1:
        fixes.append(f"with this budget, a timeout below {(limit - budget) / 2:g}")
    return (
        f"GRAPH_RETRY_BUDGET_SECONDS ({budget:g}) + 2 x GRAPH_TIMEOUT_SECONDS ({timeout:g}) = {worst:g} s, "
        f"the longest one Graph call may take with its retries, reaches {name}, so callers could be cut off "
        f"before the app answers: {'; '.join(fixes)} ({WHERE})"
    )
