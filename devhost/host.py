"""Assemble the host from indexed functions: routes, timers, disabled functions.

* ``host.json`` ``"functions": [...]`` loads only the listed functions.
* App setting ``AzureWebJobs.<name>.Disabled`` = ``true``/``1`` disables a
  function: its route answers 404 and its timer does not fire.
* A function whose route or schedule is invalid is reported as errored and
  left out; the others run, as in the real host.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from pathlib import Path

from devhost.discovery import FunctionSpec
from devhost.invoke import Invoker
from devhost.queue_options import QueueOptions
from devhost.queue_plan import plan_queues
from devhost.queues import QueueScheduler
from devhost.routing import RouteError, Router
from devhost.schedule_status import StatusStore
from devhost.server import HostState
from devhost.settings import HostConfig
from devhost.timers import TimerScheduler, plan_timers

__all__ = ["banner_lines", "build_state"]

_log = logging.getLogger("devhost")
_METHOD_ORDER = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def build_state(
    specs: list[FunctionSpec],
    *,
    host_config: HostConfig,
    environ: Mapping[str, str],
    app_dir: Path,
    host_id: str,
    store: StatusStore,
    tz: dt.tzinfo,
    thread_count: int,
    body_limit: int,
    schedule_timers: bool,
    graceful_timeout: float,
    queue_options: QueueOptions | None = None,
) -> HostState:
    if host_config.functions is not None:
        allowed = {name.lower() for name in host_config.functions}
        specs = [spec for spec in specs if spec.name.lower() in allowed]
    disabled = frozenset(spec.name for spec in specs if _is_disabled(spec.name, environ))
    errors = {spec.name: spec.error for spec in specs if spec.error is not None}
    router: Router[FunctionSpec] = Router(host_config.route_prefix)
    for spec in specs:
        if spec.http is None or spec.name in disabled or spec.name in errors:
            continue
        if not router.route_prefix and spec.http.route.lower().split("/")[0] == "admin":
            errors[spec.name] = "the route conflicts with the host's built-in /admin routes"
            continue
        try:
            router.add(spec.http.route, spec.http.methods, spec)
        except RouteError as error:
            errors[spec.name] = str(error)
    runnable = [s for s in specs if s.name not in disabled and s.name not in errors]
    timers, timer_errors = plan_timers(runnable, environ)
    errors.update(timer_errors)
    queues, queue_errors = plan_queues(runnable, environ)
    errors.update(queue_errors)
    invoker = Invoker(
        thread_count=thread_count,
        function_directory=str(app_dir),
        function_timeout=host_config.function_timeout,
    )
    scheduler = TimerScheduler(
        timers,
        invoker=invoker,
        store=store,
        tz=tz,
        schedule_enabled=schedule_timers,
        shutdown_timeout=graceful_timeout,
    )
    queue_scheduler = QueueScheduler(
        queues,
        options=queue_options or QueueOptions(),
        invoker=invoker,
        shutdown_timeout=graceful_timeout,
    )
    return HostState(
        host_id=host_id,
        functions={spec.name: spec for spec in specs},
        router=router,
        invoker=invoker,
        scheduler=scheduler,
        queues=queue_scheduler,
        errors=errors,
        disabled=disabled,
        body_limit=body_limit,
    )


def banner_lines(state: HostState, base_url: str, *, timers_enabled: bool) -> list[str]:
    """Core Tools' listing: ``name: [GET] http://localhost:7071/api/route``."""
    lines = ["", "Functions:", ""]
    now = state.scheduler.now()
    prefix = state.router.route_prefix
    for spec in state.functions.values():
        if spec.name in state.errors:
            line = f"{spec.name}: ERROR {state.errors[spec.name]}"
        elif spec.name in state.disabled:
            line = f"{spec.name}: disabled (AzureWebJobs.{spec.name}.Disabled)"
        elif spec.http is not None:
            methods = ",".join(m for m in _METHOD_ORDER if m in spec.http.methods)
            template = "/".join(part for part in (prefix, spec.http.route) if part)
            line = f"{spec.name}: [{methods}] {base_url}/{template}"
        elif spec.name in state.scheduler.timers:
            timer = state.scheduler.timers[spec.name]
            if timers_enabled:
                when = f"next {timer.schedule.next_after(now).isoformat()}"
            else:
                when = "not scheduled (--no-timers)"
            line = f"{spec.name}: timerTrigger '{timer.schedule.expression}', {when}"
        elif spec.name in state.queues.queues:
            queue = state.queues.queues[spec.name]
            line = f"{spec.name}: queueTrigger '{queue.queue_name}' ({queue.connection.description})"
        else:
            line = f"{spec.name}: {spec.trigger_type} (not supported by devhost)"
        lines.extend([f"        {line}", ""])
    return lines


def _is_disabled(name: str, environ: Mapping[str, str]) -> bool:
    value = environ.get(f"AzureWebJobs.{name}.Disabled", "")
    return value.strip().lower() in ("true", "1")
