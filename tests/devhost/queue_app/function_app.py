"""Queue-triggered sample app for tests/devhost/test_queue*.py.

Each function appends what it received as a JSON line to ``$DEVHOST_FIXTURE_OUT/<function>.jsonl``.
host.json keeps tests short: batchSize 2 + newBatchThreshold 1 (at most 3 at once), polling at most every
500 ms, 1 s between retries, functionTimeout 3 s; maxDequeueCount is the host's default, 5.
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

app = func.FunctionApp()

_lock = threading.Lock()
_running = 0


def _record(function: str, **fields: Any) -> None:
    line = json.dumps({"function": function, "at": time.time(), **fields})
    with _lock, (Path(os.environ["DEVHOST_FIXTURE_OUT"]) / f"{function}.jsonl").open("a") as out:
        out.write(line + "\n")


def _describe(msg: func.QueueMessage) -> dict[str, Any]:
    return {
        "id": msg.id,
        "body": msg.get_body().decode("utf-8"),
        "dequeue_count": msg.dequeue_count,
        "pop_receipt": bool(msg.pop_receipt),
        "insertion_time": msg.insertion_time.isoformat() if msg.insertion_time else None,
        "expiration_time": msg.expiration_time.isoformat() if msg.expiration_time else None,
        "time_next_visible": msg.time_next_visible.isoformat() if msg.time_next_visible else None,
    }


@app.queue_trigger(arg_name="msg", queue_name="%FIXTURE_QUEUE%", connection="AzureWebJobsStorage")
def echo(msg: func.QueueMessage) -> None:
    _record("echo", **_describe(msg))


@app.queue_trigger(arg_name="msg", queue_name="always-fails", connection="AzureWebJobsStorage")
def always_fails(msg: func.QueueMessage) -> None:
    _record("always_fails", **_describe(msg))
    raise RuntimeError("fixture queue failure")


@app.queue_trigger(arg_name="msg", queue_name="slow-work", connection="AzureWebJobsStorage")
def slow(msg: func.QueueMessage) -> None:
    """Holds a message the seconds its body ends with ("job 3 0.2"); records how many ran at once."""
    global _running
    with _lock:
        _running += 1
        now_running = _running
    _record("slow", body=msg.get_body().decode("utf-8"), running=now_running)
    time.sleep(float(msg.get_body().split()[-1]))
    with _lock:
        _running -= 1


@app.queue_trigger(arg_name="text", queue_name="async-text", connection="AzureWebJobsStorage")
async def async_text(text: str) -> None:
    await asyncio.sleep(0)
    _record("async_text", body=text, type=type(text).__name__)


@app.queue_trigger(arg_name="msg", queue_name="hangs", connection="AzureWebJobsStorage")
async def hangs(msg: func.QueueMessage) -> None:
    """Runs past functionTimeout (3 s) on its first attempt only."""
    _record("hangs", **_describe(msg))
    if msg.dequeue_count == 1:
        await asyncio.sleep(30)


@app.queue_trigger(arg_name="msg", queue_name="%FIXTURE_MISSING_SETTING%", connection="AzureWebJobsStorage")
def unresolved(msg: func.QueueMessage) -> None:
    _record("unresolved", **_describe(msg))


@app.queue_trigger(arg_name="msg", queue_name="no-account", connection="FIXTURE_NO_SUCH_CONNECTION")
def no_account(msg: func.QueueMessage) -> None:
    _record("no_account", **_describe(msg))
