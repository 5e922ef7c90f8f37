"""Fixture function app for tests/devhost: one function for each thing devhost must do.

Timer functions append what they received as a JSON line to
``$DEVHOST_FIXTURE_OUT/<function>.jsonl`` so tests can read it back.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

_BARRIER_PARTIES = int(os.environ.get("FIXTURE_BARRIER_PARTIES", "4"))
_BARRIER_TIMEOUT = 10.0
_sync_barrier = threading.Barrier(_BARRIER_PARTIES)
_async_barrier = asyncio.Barrier(_BARRIER_PARTIES)
_record_lock = threading.Lock()


def _out_dir() -> Path:
    return Path(os.environ["DEVHOST_FIXTURE_OUT"])


def _record(function: str, **fields: Any) -> None:
    line = json.dumps({"function": function, "at": time.time(), **fields})
    with _record_lock, (_out_dir() / f"{function}.jsonl").open("a") as out:
        out.write(line + "\n")


def _json(document: object, status_code: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(document), status_code=status_code, mimetype="application/json")


# --- HTTP ---------------------------------------------------------------------


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("ok")


@app.route(route="users/{id:int}", methods=["GET"])
def get_user(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"id": int(req.route_params["id"]), "route": "by-id"})


@app.route(route="users/me", methods=["GET"])
def get_me(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"route": "me"})


@app.route(route="items/{id:guid}", methods=["GET", "DELETE"])
def item(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"id": req.route_params["id"], "method": req.method})


@app.route(route="names/{name:alpha}/{suffix?}", methods=["GET"])
def names(req: func.HttpRequest) -> func.HttpResponse:
    return _json(dict(req.route_params))


@app.route(route="files/{*path}", methods=["GET"])
def files(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"path": req.route_params.get("path")})


@app.route(route="echo", methods=["POST", "PUT"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    return _json(
        {
            "method": req.method,
            "url": req.url,
            "params": dict(req.params),
            "route_params": dict(req.route_params),
            "body": req.get_body().decode("utf-8"),
            "content_type": req.headers.get("Content-Type"),
            "x_multi": req.headers.get("x-multi"),
        }
    )


@app.route(methods=["GET"])
def default_route(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("default route")


@app.function_name("Renamed")
@app.route(route="renamed", methods=["GET"])
def renamed_implementation(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("renamed")


@app.route(route="cookies", methods=["GET"])
def cookies(req: func.HttpRequest) -> func.HttpResponse:
    response = func.HttpResponse("cookies", headers={"X-Fixture": "yes"})
    response.headers.add("Set-Cookie", "first=1; Path=/; HttpOnly")
    response.headers.add("Set-Cookie", "second=2; Path=/; Secure")
    return response


@app.route(route="text", methods=["GET"])
def text(req: func.HttpRequest) -> str:
    return "plain string"


@app.route(route="nothing", methods=["GET"])
def nothing(req: func.HttpRequest) -> None:
    return None


@app.route(route="hello/async", methods=["GET"])
async def hello_async(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0)
    return func.HttpResponse("async hello")


@app.route(route="barrier/sync", methods=["GET"])
def sync_barrier(req: func.HttpRequest) -> func.HttpResponse:
    """Returns 200 only if enough calls are in flight at once to lift the barrier."""
    try:
        _sync_barrier.wait(timeout=_BARRIER_TIMEOUT)
    except threading.BrokenBarrierError:
        _sync_barrier.reset()
        return func.HttpResponse("barrier broken", status_code=504)
    return func.HttpResponse("released")


@app.route(route="barrier/async", methods=["GET"])
async def async_barrier(req: func.HttpRequest) -> func.HttpResponse:
    try:
        async with asyncio.timeout(_BARRIER_TIMEOUT):
            await _async_barrier.wait()
    except TimeoutError:
        await _async_barrier.reset()
        return func.HttpResponse("barrier broken", status_code=504)
    return func.HttpResponse("released")


@app.route(route="boom", methods=["GET"])
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("fixture failure")


@app.route(route="bad-return", methods=["GET"])
def bad_return(req: func.HttpRequest) -> Any:
    return {"not": "an HttpResponse"}


@app.route(route="slow", methods=["GET"])
def slow(req: func.HttpRequest) -> func.HttpResponse:
    """Blocks until the test creates the 'release' file (at most 20 s)."""
    out = _out_dir()
    (out / "slow.started").touch()
    deadline = time.monotonic() + 20
    while not (out / "slow.release").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return func.HttpResponse("slow finished")


@app.route(route="hang/async", methods=["GET"])
async def hang_async(req: func.HttpRequest) -> func.HttpResponse:
    """Answers only after 20 s, unless functionTimeout cancels it first."""
    try:
        await asyncio.sleep(20)
    except asyncio.CancelledError:
        (_out_dir() / "hang_async.cancelled").touch()
        raise
    return func.HttpResponse("hang finished")


@app.route(route="context", methods=["GET"])
def with_context(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return _json(
        {
            "function_name": context.function_name,
            "invocation_id": context.invocation_id,
            "function_directory": context.function_directory,
            "trace_parent": context.trace_context.trace_parent,
        }
    )


@app.route(route="settings", methods=["GET"])
def settings(req: func.HttpRequest) -> func.HttpResponse:
    return _json(
        {
            "greeting": os.environ.get("FIXTURE_GREETING"),
            "environment": os.environ.get("AZURE_FUNCTIONS_ENVIRONMENT"),
            "cwd": os.getcwd(),
        }
    )


@app.route(route="disabled", methods=["GET"])
def disabled_function(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("should not run: disabled in the settings")


# --- Timers -------------------------------------------------------------------


def _record_timer(name: str, timer: func.TimerRequest) -> None:
    _record(
        name,
        past_due=timer.past_due,
        schedule_status=getattr(timer, "schedule_status", None),
    )


@app.timer_trigger(schedule="* * * * * *", arg_name="timer")
def every_second(timer: func.TimerRequest) -> None:
    _record_timer("every_second", timer)


@app.timer_trigger(schedule="00:00:01", arg_name="tick")
def timespan_timer(tick: func.TimerRequest) -> None:
    _record_timer("timespan_timer", tick)


@app.timer_trigger(schedule="%FIXTURE_TIMER_SCHEDULE%", arg_name="mytimer")
def from_setting(mytimer: func.TimerRequest) -> None:
    _record_timer("from_setting", mytimer)


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", run_on_startup=True)
def on_startup(timer: func.TimerRequest) -> None:
    _record_timer("on_startup", timer)


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer")
def yearly(timer: func.TimerRequest) -> None:
    _record_timer("yearly", timer)


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer")
async def async_yearly(timer: func.TimerRequest) -> None:
    await asyncio.sleep(0)
    _record_timer("async_yearly", timer)


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer")
def hanging_timer(timer: func.TimerRequest) -> None:
    """Records its start, then blocks for up to 20 s (functionTimeout abandons it first)."""
    _record_timer("hanging_timer", timer)
    time.sleep(20)


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer")
def failing_timer(timer: func.TimerRequest) -> None:
    _record_timer("failing_timer", timer)
    raise RuntimeError("fixture timer failure")
