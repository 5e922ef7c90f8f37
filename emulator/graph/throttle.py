"""Graph throttling: the identity-and-access token bucket and the Outlook (mail) limits.

* Identity and access: one token bucket of resource units per (app id, tenant), refilled continuously at
  ``budget / 10`` units per second up to ``budget`` (``state.throttle.identity_budget``). Each request costs
  its resource units (see :func:`identity_cost`); when the bucket cannot pay, the answer is 429 with
  ``Retry-After`` = the seconds until it can.
* Outlook: at most ``mail_requests_per_10min`` requests per (app, mailbox) in any sliding 10 minutes, and at
  most ``mail_concurrency`` requests in flight per app (or per app + mailbox, ``mail_concurrency_scope``).
* RetryAfter rule (both): a caller that retries before its ``Retry-After`` elapsed is throttled again and told
  the remaining seconds, whatever the bucket holds by then.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable

from emulator.clock import CLOCK
from emulator.graph.http import GraphError

MAIL_WINDOW_SECONDS = 600.0


def identity_cost(base: int, query: dict[str, str]) -> int:
    """Documented modifiers: ``$select`` -1, ``$expand`` +1, ``$top`` < 20 -1; never below 1."""
    cost = base
    if "$select" in query:
        cost -= 1
    if "$expand" in query:
        cost += 1
    top = query.get("$top", "")
    if top.isdigit() and int(top) < 20:
        cost -= 1
    return max(1, cost)


def size_label(user_count: int) -> str:
    """Tenant size as in the throttle category name (S < 50 users, M 50-500, L > 500). [INFERRED] labels."""
    return "small" if user_count < 50 else "medium" if user_count <= 500 else "large"


class Throttle:
    def __init__(self, clock: Callable[[], float] = CLOCK.monotonic) -> None:
        self.clock = clock
        self.buckets: dict[tuple[str, str], tuple[float, float]] = {}  # key -> (units, at)
        self.identity_until: dict[tuple[str, str], float] = {}
        self.mail_windows: dict[tuple[str, str], deque[float]] = {}
        self.mail_until: dict[tuple[str, ...], float] = {}
        self.in_flight: Counter[tuple[str, ...]] = Counter()

    def reset(self) -> None:
        """Forget every budget (the control API calls this when budgets change, and on reset)."""
        self.buckets.clear()
        self.identity_until.clear()
        self.mail_windows.clear()
        self.mail_until.clear()
        # in-flight counts belong to requests still running; they release themselves

    # ------------------------------------------------------------------ identity and access
    def charge_identity(
        self, app_id: str, tenant_id: str, cost: int, budget: int, users: int
    ) -> dict[str, str]:
        """Pay ``cost`` units or raise the 429; returns the headers of the (successful) response."""
        now = self.clock()
        key = (app_id, tenant_id)
        budget = max(1, budget)
        rate = budget / 10.0
        units, at = self.buckets.get(key, (float(budget), now))
        units = min(float(budget), units + (now - at) * rate)
        self.buckets[key] = (units, now)
        headers = {"x-ms-resource-unit": str(cost)}
        until = self.identity_until.get(key, 0.0)
        if now < until:
            raise self._identity_429(app_id, tenant_id, headers, until - now, budget, units, cost, users)
        if units + 1e-9 < cost:  # tolerate float drift of the refill
            wait = max(1, math.ceil((cost - units) / rate))
            self.identity_until[key] = now + wait
            raise self._identity_429(app_id, tenant_id, headers, wait, budget, units, cost, users)
        units = max(0.0, units - cost)
        self.buckets[key] = (units, now)
        used = (budget - units) / budget
        if used > 0.8:
            headers["x-ms-throttle-limit-percentage"] = f"{min(used, 1.8):.1f}"
        return headers

    @staticmethod
    def _identity_429(
        app_id: str,
        tenant_id: str,
        headers: dict[str, str],
        wait: float,
        budget: int,
        units: float,
        cost: int,
        users: int,
    ) -> GraphError:
        used = min(1.8, (budget - units + cost) / budget)
        return GraphError(
            429,
            "TooManyRequests",
            f"Too many requests from Identifier:{app_id} under category:"
            f"throttle.aad.ags.appId.{size_label(users)}. Please try again later.",
            headers={
                **headers,
                "Retry-After": str(max(1, math.ceil(wait))),
                "x-ms-throttle-limit-percentage": f"{max(used, 0.8):.1f}",
                "x-ms-throttle-scope": f"Tenant_Application/ReadWrite/{app_id}/{tenant_id}",
                "x-ms-throttle-information": "ResourceUnitLimitExceeded",
            },
        )

    # ------------------------------------------------------------------ Outlook
    def enter_mail(
        self, app_id: str, mailbox_id: str, per_10min: int, concurrency: int, scope: str
    ) -> Callable[[], None]:
        """Admit one mail request or raise 429 ``ApplicationThrottled``; returns the release callable."""
        now = self.clock()
        rate_key = (app_id, mailbox_id)
        conc_key: tuple[str, ...] = (app_id,) if scope == "app" else (app_id, mailbox_id)
        for key, message in (
            (("rate", *rate_key), "Application is over its MailboxRequests limit."),
            (("concurrency", *conc_key), "Application is over its MailboxConcurrency limit."),
        ):
            until = self.mail_until.get(key, 0.0)
            if now < until:
                raise _mail_429(message, until - now)
        window = self.mail_windows.setdefault(rate_key, deque())
        while window and window[0] <= now - MAIL_WINDOW_SECONDS:
            window.popleft()
        if len(window) >= max(0, per_10min):
            wait = max(1, math.ceil(window[0] + MAIL_WINDOW_SECONDS - now)) if window else 1
            self.mail_until[("rate", *rate_key)] = now + wait
            raise _mail_429("Application is over its MailboxRequests limit.", wait)
        if self.in_flight[conc_key] >= max(0, concurrency):
            self.mail_until[("concurrency", *conc_key)] = now + 1
            raise _mail_429("Application is over its MailboxConcurrency limit.", 1)
        window.append(now)
        self.in_flight[conc_key] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.in_flight[conc_key] = max(0, self.in_flight[conc_key] - 1)

        return release


def _mail_429(message: str, wait: float) -> GraphError:
    return GraphError(
        429, "ApplicationThrottled", message, headers={"Retry-After": str(max(1, math.ceil(wait)))}
    )
