"""The daily user report: the timer, the on-demand queue function and the reports API.

* ``report_timer``: ``%REPORT_SCHEDULE%`` (default ``0 0 6 * * *``, UTC unless ``WEBSITE_TIME_ZONE``),
  ``run_on_startup`` off, ``use_monitor`` on; a past-due firing produces the missed day's report, once.
* ``report_queue``: on-demand runs queued by ``POST /api/reports/users`` on ``%REPORT_QUEUE%``
  (``AzureWebJobsStorage``, base64 messages). It raises only for failures worth another delivery (Graph or
  storage trouble); after ``maxDequeueCount`` (host.json) the message lands in ``<queue>-poison``.
* ``POST /api/reports/users[?date=YYYY-MM-DD&force=true]`` (``Reports.Run``): 202 + ``Location`` of the
  status resource; 200 when that date's report is already complete and ``force`` is not set.
* ``GET /api/reports/users/latest``, ``/{date}`` (summary), ``/{date}/status`` (``Reports.Read``);
  ``/{date}/users.csv`` and ``/{date}/changes.csv``: 303 to a short-lived read-only SAS URL of the blob.

The reads accept services (app-only tokens holding ``Reports.Read``) and people signed in to the pages
whose ID token carries ``Reports.Read`` (session cookie; a bearer token wins over the cookie, see
:func:`shared.edge.identify`), so a person's browser follows the ``/reports`` page's CSV links with its
cookie. ``POST`` stays for services holding ``Reports.Run``: people with that role start runs from the
page's CSRF-checked form (:mod:`blueprints.report_pages`), never through a cookie-authenticated JSON POST.
Required Graph permissions of the app: ``User.Read.All`` (listing, delta),
``AuditLog.Read.All`` + an Entra ID P1/P2 licence for sign-in activity (optional), ``Mail.Send`` for the mail.
"""

from __future__ import annotations

import datetime as dt
import logging

import azure.functions as func

from shared.app import Runtime
from shared.core import BadRequest, TenantRefused
from shared.edge import Call, api, background
from shared.identity import APPLICATIONS, PEOPLE, Access, AppRole
from shared.report import RunRequest, RunResult, parse_report_date, schedule_zone, timer_report_date
from shared.tenants import fan_out, tenant_of_message
from shared.web import JsonBody, JsonResponse, new_blueprint

logger = logging.getLogger(__name__)

bp = new_blueprint()

_POST_PARAMETERS = frozenset({"date", "force"})


def _zone(runtime: Runtime) -> dt.tzinfo:
    # WEBSITE_TIME_ZONE is the platform's timer setting, read once into the settings: the host reads it too.
    return schedule_zone(runtime.settings().report_time_zone)


@bp.function_name("report_timer")
@bp.timer_trigger(arg_name="timer", schedule="%REPORT_SCHEDULE%", run_on_startup=False, use_monitor=True)
def report_timer(timer: func.TimerRequest) -> None:
    """Produce today's report (or, past due, the missed day's). Raises when the run failed, so the
    invocation is recorded as failed; the next trigger retries."""
    # The concrete TimerRequest (worker, devhost) has the monitor's status; the ABC does not declare it.
    schedule_status = getattr(timer, "schedule_status", None)
    background(
        lambda runtime: _run_timer(
            runtime, timer.past_due, schedule_status if isinstance(schedule_status, dict) else None
        )
    )


def _run_timer(runtime: Runtime, past_due: bool, schedule_status: dict[str, object] | None) -> None:
    zone = _zone(runtime)
    date = timer_report_date(past_due, schedule_status, dt.datetime.now(zone), zone)
    if past_due:
        logger.warning("Report timer is past due; producing the report of %s", date)
    if runtime.settings().is_multi_tenant:
        # One queue message per served tenant: each organisation's run is retried on its own, and one
        # organisation's outage delays no other's report.
        fanned = fan_out(
            runtime.tenants(),
            lambda tenant: (
                runtime.tenant(tenant).reports().request_run(date, force=False, requested_by="timer")
            ),
        )
        if fanned.failed:
            raise RuntimeError(f"The report runs of {len(fanned.failed)} tenants could not be queued")
        return
    result = runtime.tenant().reports().run(RunRequest(date=date, trigger="timer"))
    if result.outcome == "failed":
        raise RuntimeError(f"The report of {date} failed: {result.status.get('reason')}")


@bp.function_name("report_queue")
@bp.queue_trigger(arg_name="msg", queue_name="%REPORT_QUEUE%", connection="AzureWebJobsStorage")
def report_queue(msg: func.QueueMessage) -> None:
    """Run an on-demand report. A failed run raises, so the host delivers the message again (its
    ``dequeue_count`` grows) until ``maxDequeueCount``; then it goes to the poison queue."""
    body = msg.get_body()
    result = background(lambda runtime: _run_message(runtime, body))
    if result is None:
        return
    if result.outcome == "in-progress":
        # Another run holds the date's lease. It may be one that just died (its lease lapses within 15 s):
        # fail this delivery: it comes back after visibilityTimeout and finds the date done, or free.
        raise RuntimeError("Another run is producing this report; the message will be retried")
    if result.outcome == "failed":
        logger.error(
            "On-demand report run failed (attempt %d): %s", msg.dequeue_count, result.status.get("reason")
        )
        raise RuntimeError(f"The on-demand report failed: {result.status.get('reason')}")


def _run_message(runtime: Runtime, body: bytes) -> RunResult | None:
    """Run the message's report in its tenant (None: the tenant is no longer served; the message is
    dropped, not retried)."""
    tenant_id = tenant_of_message(body)
    tenant = None
    if tenant_id is not None:
        try:
            tenant = runtime.tenants().get(tenant_id)
        except TenantRefused as refused:
            logger.warning("Report run of tenant %s dropped: %s", tenant_id, refused.code)
            return None
    return runtime.tenant(tenant).reports().run_message(body)


#: Who may read reports: services and signed-in people (bearer wins); runs are queued by services only.
READERS = Access(kinds=APPLICATIONS | PEOPLE, app_role=AppRole.REPORTS_READ, person_role=AppRole.REPORTS_READ)
RUNNERS = Access(kinds=APPLICATIONS, app_role=AppRole.REPORTS_RUN)


def _date(call: Call) -> dt.date:
    return parse_report_date(call.request.route_params.get("date", ""))


def _no_parameters(call: Call, allowed: frozenset[str] = frozenset()) -> None:
    unknown = sorted(set(call.request.params) - allowed)
    if unknown:
        raise BadRequest(f"Unknown query parameter: {unknown[0]}")


@bp.function_name("reports_run")
@bp.route(route="api/reports/users", methods=[func.HttpMethod.POST])
@api(RUNNERS)
def start_run(call: Call) -> JsonResponse:
    """Queue a run: 202 + ``Location`` (the status resource), or 200 when already complete."""
    requested_by = f"application {call.caller.app_id}"
    _no_parameters(call, _POST_PARAMETERS)
    request = call.request
    force_text = (request.params.get("force") or "false").lower()
    if force_text not in ("true", "false"):
        raise BadRequest("force must be true or false")
    date_text = request.params.get("date")
    zone = _zone(call.runtime)
    date = parse_report_date(date_text) if date_text else dt.datetime.now(zone).date()
    if date > dt.datetime.now(zone).date():
        raise BadRequest("date cannot be in the future")
    accepted = call.services.reports().request_run(
        date, force=force_text == "true", requested_by=requested_by
    )
    location = f"/api/reports/users/{date.isoformat()}/status"
    return JsonResponse(accepted.status, status=accepted.status_code, headers={"Location": location})


@bp.function_name("reports_latest")
@bp.route(route="api/reports/users/latest", methods=[func.HttpMethod.GET])
@api(READERS)
def latest(call: Call) -> JsonBody:
    """The newest completed report's summary (404 ``report_not_found`` before the first one)."""
    _no_parameters(call)
    return call.services.reports().latest()


@bp.function_name("reports_summary")
@bp.route(route="api/reports/users/{date}", methods=[func.HttpMethod.GET])
@api(READERS)
def summary(call: Call) -> JsonBody:
    """The summary of ``date`` (400 malformed date, 404 ``report_not_found``)."""
    _no_parameters(call)
    return call.services.reports().summary(_date(call))


@bp.function_name("reports_status")
@bp.route(route="api/reports/users/{date}/status", methods=[func.HttpMethod.GET])
@api(READERS)
def status(call: Call) -> JsonBody:
    """State and progress of the latest run of ``date``: queued, running, completed or failed."""
    _no_parameters(call)
    return call.services.reports().status(_date(call))


@bp.function_name("reports_file")
@bp.route(route="api/reports/users/{date}/{file}", methods=[func.HttpMethod.GET])
@api(READERS)
def csv_file(call: Call) -> JsonResponse:
    """303 to a 5-minute read-only SAS URL of ``users.csv`` or ``changes.csv`` (404 otherwise)."""
    _no_parameters(call)
    date = _date(call)
    url = call.services.reports().csv_url(date, call.request.route_params.get("file", ""))
    return JsonResponse({"location": url}, status=303, headers={"Location": url})
