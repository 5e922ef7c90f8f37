"""The ``/reports`` page for signed-in people: the latest daily user report (totals, the 30-day chart, the
changes, the CSV links) for people holding ``Reports.Read``, and for people holding ``Reports.Run`` a
"run now" form (``POST /reports/run``) that queues a run exactly as ``POST /api/reports/users`` does and
comes back to the page showing that run's status.

``/reports?date=D`` shows the report of D (the daily mail links there). The page reads storage only (no
Graph call, so no delegated token is needed). Before the first report it shows an empty state; storage
trouble is the framework's error page (503 ``storage_unavailable``); a person without the role gets the
framework's 403 page. The form is checked for its origin and its per-session CSRF token before anything is
queued.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any
from urllib.parse import urlencode

import azure.functions as func

from shared.app import Runtime
from shared.core import BadRequest, NotFound
from shared.edge import Call, page
from shared.identity import PEOPLE, Access, AppRole
from shared.report import ReportService, build_model, parse_report_date, render_page, schedule_zone
from shared.web import Page, Redirect, new_blueprint, require_csrf_token

logger = logging.getLogger(__name__)

bp = new_blueprint()

PAGE_PATH = "/reports"


def today(runtime: Runtime) -> dt.date:
    """Today in the report schedule's zone (``WEBSITE_TIME_ZONE``, a platform setting the timer and the
    API read too)."""
    return dt.datetime.now(schedule_zone(runtime.settings().report_time_zone)).date()


def run_date(text: str | None, runtime: Runtime) -> dt.date:
    """A report date a person may ask for: YYYY-MM-DD, not in the future. Raises BadRequest."""
    if not text:
        raise BadRequest("Choose the report date to run")
    date = parse_report_date(text)
    if date > today(runtime):
        raise BadRequest("date cannot be in the future")
    return date


def _run_panel(reports: ReportService, date: dt.date) -> dict[str, Any]:
    """What the page shows of the latest run of ``date`` (``unknown`` when there is none)."""
    try:
        status = reports.status(date)
    except NotFound:
        status = {}
    return {
        "reportDate": date.isoformat(),
        "state": str(status.get("state") or "unknown"),
        "forced": status.get("forced") is True,
        "users": int(status.get("users") or 0),
        "reason": status.get("reason") if isinstance(status.get("reason"), str) else None,
        "href": f"{PAGE_PATH}?{urlencode({'run': date.isoformat()})}",
        "report_href": f"{PAGE_PATH}?{urlencode({'date': date.isoformat()})}",
    }


@bp.function_name("page_reports")
@bp.route(route="reports", methods=[func.HttpMethod.GET])
@page(Access(kinds=PEOPLE, person_role=AppRole.REPORTS_READ))
def reports_page(call: Call) -> Page | Redirect:
    """The latest report, or ``?date=YYYY-MM-DD``'s (the daily mail links there; 404 page
    ``report_not_found`` when that date has none); ``?run=YYYY-MM-DD`` adds the status of that date's
    latest run."""
    request, reports = call.request, call.services.reports()
    unknown = sorted(set(request.params) - {"run", "date"})
    if unknown:
        raise BadRequest(f"Unknown query parameter: {unknown[0]}")
    run_text, date_text = request.params.get("run"), request.params.get("date")
    run = _run_panel(reports, parse_report_date(run_text)) if run_text is not None else None
    date = parse_report_date(date_text) if date_text is not None else None
    model = build_model(reports, date)
    context = {
        "title": "Daily user report",
        "active": "reports",
        "report": render_page(model),
        "run": run,
        "can_run": call.caller.has_role(AppRole.REPORTS_RUN),
        "today": today(call.runtime).isoformat(),
    }
    return Page("reports.html", context)


@bp.function_name("page_reports_run")
@bp.route(route="reports/run", methods=[func.HttpMethod.POST])
@page(Access(kinds=PEOPLE, person_role=AppRole.REPORTS_RUN), same_origin_first=True, sign_in_next=PAGE_PATH)
def run_now(call: Call) -> Page | Redirect:
    """Queue a run of the form's ``date`` (``force=true``: re-run a completed report, audited), then show
    its status on ``/reports``. Same service call as ``POST /api/reports/users``. The form is checked for
    its origin before anything else; a sign-in it needs returns to ``/reports`` (a form cannot be replayed
    after sign-in)."""
    request = call.request
    require_csrf_token(request, call.verify_csrf)
    date = run_date(request.form.get("date"), call.runtime)
    force_text = request.form.get("force") or "false"
    if force_text not in ("true", "false"):
        raise BadRequest("force must be true or false")
    force = force_text == "true"
    requested_by = f"person {call.caller.object_id}"
    accepted = call.services.reports().request_run(date, force=force, requested_by=requested_by)
    logger.info(
        "Report run of %s requested from the page by %s (forced %s): %s",
        date,
        requested_by,
        force,
        accepted.status.get("state"),
    )
    return Redirect(f"{PAGE_PATH}?{urlencode({'run': date.isoformat()})}")
