"""``POST /v1.0/$batch``: up to 20 sub-requests, each dispatched through the same ASGI app (same handlers,
same authentication with the outer token, same per-request throttling), honouring ``dependsOn``.

Graph runs the sub-requests of a batch in parallel and answers them in any order (json-batching: "Responses
to the batched requests might appear in a different order"); it sends at most 4 of them to Outlook at once
(throttling-limits, Outlook service limits), so each mail item meets the mailbox limits on its own and can
get its own 429 ``MailboxConcurrency``. Here the order is a shuffle seeded by ``--seed`` and the batch's
sequence number since the last reset: the same run of batches answers in the same order every time. Items
start in that order, each once its dependencies are done; a request whose dependency did not succeed is not
run and gets 424 ``FailedDependency``. The batch itself answers 200 whatever the sub-statuses.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message

from emulator.graph.auth import authenticate
from emulator.graph.http import GraphError, json_response, read_json, render_error
from emulator.graph.store import graph_store
from emulator.state import EmulatorState

MAX_REQUESTS = 20
#: Sub-requests of one batch that Graph sends to Outlook at the same time.
OUTLOOK_PARALLEL = 4
_OUTLOOK_URL = re.compile(
    r"^/?(?:users/[^/?]+|me)/(?:messages|mailfolders|sendmail)(?:[/?]|$)", re.IGNORECASE
)
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
KEPT_HEADERS = {
    "content-type": "Content-Type",
    "retry-after": "Retry-After",
    "location": "Location",
    "preference-applied": "Preference-Applied",
    "odata-version": "OData-Version",
    "cache-control": "Cache-Control",
    "www-authenticate": "WWW-Authenticate",
    "x-ms-resource-unit": "x-ms-resource-unit",
    "x-ms-throttle-limit-percentage": "x-ms-throttle-limit-percentage",
    "x-ms-throttle-scope": "x-ms-throttle-scope",
    "x-ms-throttle-information": "x-ms-throttle-information",
}


def _invalid(message: str = "Invalid batch payload format.") -> GraphError:
    return GraphError(400, "BadRequest", message)


def _validate(data: Any) -> list[dict[str, Any]]:
    if not isinstance(data, dict) or not isinstance(data.get("requests"), list) or not data["requests"]:
        raise _invalid()
    requests = data["requests"]
    if len(requests) > MAX_REQUESTS:
        raise _invalid(f"Number of requests in batch exceeds {MAX_REQUESTS}.")
    seen: set[str] = set()
    for item in requests:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            raise _invalid()
        if not isinstance(item.get("method"), str) or item["method"].upper() not in METHODS:
            raise _invalid()
        if not isinstance(item.get("url"), str) or not item["url"].strip():
            raise _invalid()
        if item["id"] in seen:
            raise _invalid(f"Batch request contains more than one request with id '{item['id']}'.")
        seen.add(item["id"])
        if urlsplit(item["url"]).scheme or item["url"].lstrip("/").split("?")[0].lower() == "$batch":
            raise _invalid(
                f"Invalid request URL '{item['url']}': batch URLs are relative to the version "
                "and cannot be a nested $batch."
            )
        headers = item.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise _invalid()
        if "body" in item and not any(k.lower() == "content-type" for k in headers):
            raise _invalid(f"Request '{item['id']}' has a body but no Content-Type header.")
    for item in requests:
        deps = item.get("dependsOn", [])
        if not isinstance(deps, list) or not all(
            isinstance(d, str) and d in seen and d != item["id"] for d in deps
        ):
            raise _invalid(f"Request '{item['id']}' depends on a request that is not in the batch.")
    _order(requests)  # rejects cycles
    return requests


def _order(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Input order, each request after its dependencies."""
    by_id = {r["id"]: r for r in requests}
    done: list[dict[str, Any]] = []
    state: dict[str, int] = {}

    def visit(r: dict[str, Any]) -> None:
        if state.get(r["id"]) == 2:
            return
        if state.get(r["id"]) == 1:
            raise _invalid("The dependsOn chains of the batch form a cycle.")
        state[r["id"]] = 1
        for d in r.get("dependsOn", []):
            visit(by_id[d])
        state[r["id"]] = 2
        done.append(r)

    for r in requests:
        visit(r)
    return done


async def _dispatch(app: ASGIApp, outer: Request, item: dict[str, Any]) -> dict[str, Any]:
    url = item["url"] if item["url"].startswith("/") else "/" + item["url"]
    parts = urlsplit(url)
    headers: list[tuple[bytes, bytes]] = [
        (k.lower().encode("latin-1"), v.encode("latin-1"))
        for k, v in item.get("headers", {}).items()
        if k.lower() not in ("authorization", "content-length")
    ]
    auth = outer.headers.get("authorization")
    if auth is not None:
        headers.append((b"authorization", auth.encode("latin-1")))
    body = b""
    if "body" in item:
        raw = item["body"]
        body = raw.encode("utf-8") if isinstance(raw, str) else json.dumps(raw).encode("utf-8")
    headers.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": item["method"].upper(),
        "scheme": "https",
        "server": outer.scope.get("server"),
        "client": outer.scope.get("client"),
        "root_path": "",
        "path": "/v1.0" + unquote(parts.path),
        "raw_path": ("/v1.0" + parts.path).encode(),
        "query_string": parts.query.encode("latin-1"),
        "headers": headers,
        "state": {},
    }
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    status, out_headers, chunks = 500, {}, []

    async def send(message: Message) -> None:
        nonlocal status, out_headers
        if message["type"] == "http.response.start":
            status = message["status"]
            out_headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in message.get("headers", [])
            }
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    try:
        await app(scope, receive, send)
    except Exception:
        status, out_headers, chunks = (
            500,
            {"content-type": "application/json"},
            [
                json.dumps(
                    {"error": {"code": "InternalServerError", "message": "The sub-request failed."}}
                ).encode()
            ],
        )
    result: dict[str, Any] = {
        "id": item["id"],
        "status": status,
        "headers": {KEPT_HEADERS[k]: v for k, v in out_headers.items() if k in KEPT_HEADERS},
    }
    payload = b"".join(chunks)
    if payload:
        ctype = out_headers.get("content-type", "")
        result["body"] = json.loads(payload) if "json" in ctype else payload.decode("utf-8", "replace")
    return result


def _failed_dependency(item_id: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "status": 424,
        "headers": {"Content-Type": "application/json"},
        "body": {
            "error": {
                "code": "FailedDependency",
                "message": "The request was not executed because a request it depends on failed.",
            }
        },
    }


def batch_endpoint(state: EmulatorState, app_ref: Callable[[], ASGIApp]) -> Callable[[Request], Any]:
    async def batch(request: Request) -> Response:
        try:
            principal = authenticate(state, request)
            request.state.client_id = principal.app_id
            requests = _validate(await read_json(request))
        except GraphError as err:
            return render_error(request.scope, err)
        store = graph_store(state)
        store.batch_count += 1
        order = list(requests)
        random.Random(f"{state.config.seed}:batch:{store.batch_count}").shuffle(order)
        outlook = asyncio.Semaphore(OUTLOOK_PARALLEL)
        done = {r["id"]: asyncio.Event() for r in requests}
        results: dict[str, dict[str, Any]] = {}

        async def run(item: dict[str, Any]) -> None:
            try:
                deps = item.get("dependsOn", [])
                for dep in deps:
                    await done[dep].wait()
                if any(not 200 <= results[d]["status"] < 300 for d in deps):
                    results[item["id"]] = _failed_dependency(item["id"])
                elif _OUTLOOK_URL.match(item["url"]):
                    async with outlook:
                        results[item["id"]] = await _dispatch(app_ref(), request, item)
                else:
                    results[item["id"]] = await _dispatch(app_ref(), request, item)
            finally:
                done[item["id"]].set()

        await asyncio.gather(*(run(item) for item in order))
        return json_response({"responses": [results[r["id"]] for r in order]})

    return batch
