"""Mail ingestion (docs/change-notifications.md): Graph's webhooks, the work queue, the subscriptions timer
and the operators' view.

* ``POST /api/graph/notifications`` and ``POST /api/graph/lifecycle``: anonymous at the host (Graph sends
  no token); the validation handshake is echoed at once, posts are authenticated by their ``clientState``
  and queued on ``%MAIL_NOTIFICATION_QUEUE%``: 202 (:func:`shared.edge.webhook`).
* ``mail_notification_worker``: the queue function (:class:`shared.notifications.Worker`); a failure raises,
  so the host delivers the message again, then moves it to ``<queue>-poison``.
* ``mail_subscriptions_timer`` (every 5 minutes, UTC): subscriptions for the in-scope mailboxes and users,
  renewal, recreation, catch-up requests; in ``MAIL_INGESTION_MODE=poll`` delta alone.
* ``GET /subscriptions`` (page) and ``GET /api/subscriptions`` (JSON): for services and people holding the
  operators' app role ``Reports.Run``.

With ``MAIL_INGESTION_MODE=off`` (the default) the webhooks still answer handshakes but every post's items
are refused (no subscription exists), the timer does nothing and the worker finds nothing to do.
"""

import logging

import azure.functions as func

from shared.app import Runtime
from shared.edge import Call, api, background, page, webhook
from shared.identity import APPLICATIONS, PEOPLE, Access, AppRole
from shared.notifications import subscriptions_json, subscriptions_page
from shared.web import JsonBody, Page, Redirect, new_blueprint

logger = logging.getLogger(__name__)

bp = new_blueprint()

SCHEDULE = "0 */5 * * * *"
#: The operators: services and people holding the operator role.
OPERATORS = Access(kinds=APPLICATIONS | PEOPLE, app_role=AppRole.REPORTS_RUN, person_role=AppRole.REPORTS_RUN)


@bp.function_name("graph_notifications")
@bp.route(route="api/graph/notifications", methods=[func.HttpMethod.POST])
@webhook
def graph_notifications(runtime: Runtime, body: bytes) -> None:
    """Graph's change notifications: checked and queued (202)."""
    runtime.notifications().intake().accept(body, lifecycle=False)


@bp.function_name("graph_lifecycle")
@bp.route(route="api/graph/lifecycle", methods=[func.HttpMethod.POST])
@webhook
def graph_lifecycle(runtime: Runtime, body: bytes) -> None:
    """Graph's lifecycle notifications (reauthorizationRequired, subscriptionRemoved, missed): queued."""
    runtime.notifications().intake().accept(body, lifecycle=True)


@bp.function_name("mail_notification_worker")
@bp.queue_trigger(arg_name="msg", queue_name="%MAIL_NOTIFICATION_QUEUE%", connection="AzureWebJobsStorage")
def mail_notification_worker(msg: func.QueueMessage) -> None:
    """Do one work message (notifications or a catch-up); raises for a retry."""
    body, message_id = msg.get_body(), msg.id or ""
    counts = background(lambda runtime: runtime.notifications().worker().handle(body, request_id=message_id))
    logger.info("Mail notification work done (attempt %d): %s", msg.dequeue_count or 1, counts)


@bp.function_name("mail_subscriptions_timer")
@bp.timer_trigger(schedule=SCHEDULE, arg_name="timer", run_on_startup=True, use_monitor=False)
def mail_subscriptions_timer(timer: func.TimerRequest) -> None:
    """Keep each tenant's subscriptions and catch-ups going (nothing with ``MAIL_INGESTION_MODE=off``)."""
    background(_keep)


def _keep(runtime: Runtime) -> None:
    services = runtime.notifications()
    if services.settings().mail_ingestion_mode == "off":
        return
    failures = 0
    for tenant in runtime.tenants():
        try:
            services.tenant(tenant.tenant_id).keeper().run()
        except Exception:
            failures += 1
            logger.exception("The subscriptions timer failed for a tenant")
    if failures:
        raise RuntimeError(f"The subscriptions timer failed for {failures} tenant(s)")


@bp.function_name("subscriptions_list")
@bp.route(route="api/subscriptions", methods=[func.HttpMethod.GET])
@api(OPERATORS)
def list_subscriptions(call: Call) -> JsonBody:
    """The caller's tenant's watched targets: ``{"mode", "value": [...]}``."""
    services = call.runtime.notifications()
    return subscriptions_json(
        services.table(), call.services.tenant.tenant_id, services.settings().mail_ingestion_mode
    )


@bp.function_name("page_subscriptions")
@bp.route(route="subscriptions", methods=[func.HttpMethod.GET])
@page(Access(kinds=PEOPLE, person_role=AppRole.REPORTS_RUN))
def subscriptions(call: Call) -> Page | Redirect:
    """The subscriptions page, for signed-in operators."""
    services = call.runtime.notifications()
    return subscriptions_page(
        services.table(), call.services.tenant.tenant_id, services.settings().mail_ingestion_mode
    )
