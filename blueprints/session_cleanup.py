"""Timer ``session_cleanup``: deletes expired sessions and sign-in flows (Table Storage has no TTL).

Every 30 minutes (NCRONTAB ``0 */30 * * * *``, UTC), monitored (``use_monitor``: a run missed while the app
was down runs at start, marked past due). Expired rows are also deleted when met, so the timer only
bounds how long abandoned ones stay. A storage failure is logged and left to the next run: nothing is
lost by waiting. (No ``from __future__ import annotations``: the worker reads the real classes.)
"""

import logging

import azure.functions as func

from shared.app import Runtime
from shared.core import GraphFunctionsError
from shared.edge import background
from shared.web import new_blueprint

logger = logging.getLogger(__name__)

SCHEDULE = "0 */30 * * * *"

bp = new_blueprint()


@bp.function_name("session_cleanup")
@bp.timer_trigger(schedule=SCHEDULE, arg_name="timer", run_on_startup=False, use_monitor=True)
def session_cleanup(timer: func.TimerRequest) -> None:
    """Purge expired rows of ``SESSION_TABLE`` and ``AUTH_FLOW_TABLE``; logs the counts (no ids)."""
    background(lambda runtime: _purge(runtime, past_due=timer.past_due))


def _purge(runtime: Runtime, *, past_due: bool) -> None:
    for name, purge in (("sessions", runtime.sessions), ("sign-in flows", runtime.auth_flows)):
        try:
            deleted = purge().purge_expired()
        except GraphFunctionsError as error:
            logger.warning("Cleanup of expired %s failed (%s): %s", name, error.code, error.message)
            continue
        logger.info("Cleanup deleted %d expired %s%s", deleted, name, " (past due)" if past_due else "")
