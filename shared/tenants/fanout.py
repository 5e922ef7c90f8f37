"""The daily report of every organisation (multi-tenant): the timer queues one run per served tenant
(the home tenant and each active organisation) on the report queue, and each message names its tenant, so
each organisation's run is its own queue message: processed in parallel by the host, retried on its own,
and one organisation's outage (Entra or Graph failing for it) never delays another's report.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from shared.core.errors import GraphFunctionsError
from shared.core.patterns import is_guid
from shared.core.records import Record
from shared.identity.tenancy import Tenant

logger = logging.getLogger(__name__)

#: Tenants queued at once by the timer.
WORKERS = 8


class FanOut(Record):
    """What the timer queued: the tenants whose run was queued (or already complete) and those whose run
    could not be queued (with the error code), and how long it took."""

    queued: tuple[str, ...]
    failed: tuple[tuple[str, str], ...]
    seconds: float


def fan_out(
    tenants: Iterable[Tenant], queue_run: Callable[[Tenant], object], *, workers: int = WORKERS
) -> FanOut:
    """Queue ``queue_run(tenant)`` for each of ``tenants``, ``workers`` at a time (each costs a few storage
    round trips); a failure is logged and counted, and the other tenants are still queued. Never raises for
    one tenant's failure."""
    started = time.perf_counter()

    def one(tenant: Tenant) -> tuple[str, str | None]:
        try:
            queue_run(tenant)
        except GraphFunctionsError as error:
            logger.error("Report run of tenant %s could not be queued: %s", tenant.tenant_id, error.code)
            return tenant.tenant_id, error.code
        return tenant.tenant_id, None

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="report-fan-out") as pool:
        outcomes = list(pool.map(one, list(tenants)))
    queued = [tid for tid, code in outcomes if code is None]
    failed = [(tid, code) for tid, code in outcomes if code is not None]
    result = FanOut(tuple(queued), tuple(failed), time.perf_counter() - started)
    logger.info("Report fan-out: %d queued, %d failed in %.2f s", len(queued), len(failed), result.seconds)
    return result


def tenant_of_message(body: bytes) -> str | None:
    """The tenant a report queue message is for (None: the home tenant's, as single-tenant messages)."""
    try:
        message = json.loads(body)
    except ValueError:
        return None  # the report service refuses the malformed message itself
    tenant = message.get("tenant") if isinstance(message, dict) else None
    return tenant.lower() if isinstance(tenant, str) and is_guid(tenant) else None
