"""Graph's control routes, mounted under ``/_emulator`` on every origin (see docs/graph.md).

* ``POST /users`` — create a user; ``PATCH /users/{id}`` — change one (delta sees it);
  ``DELETE /users/{id}[?permanent=true]`` — remove one (delta reports ``@removed``).
* ``POST /users/{id}/messages`` — put a message in a mailbox.
* ``POST /groups`` — create a group (with members); ``POST /groups/{id}/members`` — add a user or a group.
* ``GET /graph/mailbox-scopes``, ``PUT|DELETE /graph/mailbox-scopes/{appId}`` — an app's mailbox scope.
* ``GET|PUT /graph/settings`` — default message order, mail service time, sendMail delay, application
  access policies.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import unicodedata
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from emulator.clock import CLOCK
from emulator.directory.model import UTC, Message, Recipient, User
from emulator.graph.notify_events import record_mail_change, record_user_change
from emulator.graph.sendmail import insert_message
from emulator.graph.store import graph_store
from emulator.state import EmulatorState
from emulator.tenants.registry import keys_here, scoped_key

PATCHABLE = {
    "accountEnabled": bool,
    "displayName": str,
    "givenName": (str, type(None)),
    "surname": (str, type(None)),
    "department": (str, type(None)),
    "jobTitle": (str, type(None)),
    "mail": (str, type(None)),
    "officeLocation": (str, type(None)),
    "mobilePhone": (str, type(None)),
    "preferredLanguage": (str, type(None)),
    "userType": str,
    "mailboxEnabled": bool,
    "password": str,
    "userPrincipalName": str,
    "businessPhones": list,
}
ATTRS = {
    "accountEnabled": "account_enabled",
    "displayName": "display_name",
    "givenName": "given_name",
    "surname": "surname",
    "department": "department",
    "jobTitle": "job_title",
    "mail": "mail",
    "officeLocation": "office_location",
    "mobilePhone": "mobile_phone",
    "preferredLanguage": "preferred_language",
    "userType": "user_type",
    "mailboxEnabled": "has_mailbox",
    "password": "password",
}


#: The Graph properties a control-API field changes (delta's return=minimal reports exactly these).
GRAPH_PROPERTIES_OF: dict[str, tuple[str, ...]] = {
    "userPrincipalName": ("userPrincipalName", "mailNickname"),
    "mail": ("mail", "proxyAddresses"),
    "mailboxEnabled": ("proxyAddresses",),
    "password": (),
}


class BadInput(ValueError):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _error(exc: BadInput) -> JSONResponse:
    code = {400: "BadRequest", 404: "NotFound", 409: "Conflict"}.get(exc.status, "BadRequest")
    return JSONResponse({"error": {"code": code, "message": str(exc)}}, status_code=exc.status)


async def _body(request: Request) -> dict[str, Any]:
    from emulator.control import json_body

    try:
        return await json_body(request)
    except ValueError as exc:
        raise BadInput(str(exc)) from exc


def _check(body: dict[str, Any], key: str) -> None:
    if key not in PATCHABLE and key not in ("createdDateTime",):
        raise BadInput(f"unknown property '{key}'")
    if key in PATCHABLE and not isinstance(body[key], PATCHABLE[key]):
        raise BadInput(f"'{key}' has the wrong type")
    if key == "userType" and body[key] not in ("Member", "Guest"):
        raise BadInput("userType is 'Member' or 'Guest'")
    if key == "userPrincipalName" and "@" not in body[key]:
        raise BadInput("userPrincipalName must contain '@'")


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", ".", ascii_text).strip(".") or "user"


def _user(state: EmulatorState, key: str) -> User:
    user = state.directory.user(key)
    if user is None:
        raise BadInput(f"no user '{key}'", 404)
    return user


def _apply(state: EmulatorState, user: User, body: dict[str, Any]) -> None:
    for key, value in body.items():
        if key == "userPrincipalName":
            other = state.directory.user(value)
            if other is not None and other is not user:
                raise BadInput(f"userPrincipalName '{value}' is taken", 409)
            state.directory.rename_user(user, value)
        elif key == "businessPhones":
            user.business_phones = tuple(str(p) for p in value)
        elif key == "createdDateTime":
            try:
                user.created = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)
            except ValueError as exc:
                raise BadInput("createdDateTime is an ISO 8601 date-time") from exc
        else:
            setattr(user, ATTRS[key], value)
        if key == "password":
            user.refresh_epoch += 1
        if key == "mailboxEnabled" and not value:
            state.mailboxes.pop(user.id, None)
    state.directory.touch(user.id)
    changed = graph_store(state).property_seq.setdefault(user.id, {})
    for key in body:
        for prop in GRAPH_PROPERTIES_OF.get(key, (key,)):
            changed[prop] = state.directory.change_seq


def control_routes(state: EmulatorState) -> list[BaseRoute]:
    graph_store(state)  # registers the reset hook and the throttle reset

    async def create_user(request: Request) -> Response:
        try:
            body = await _body(request)
            for key in body:
                _check(body, key)
            name = body.get("displayName")
            if not isinstance(name, str) or not name.strip():
                raise BadInput("displayName is required")
            directory = state.directory
            guest = body.get("userType") == "Guest"
            upn = body.get("userPrincipalName") or f"{_slug(name)}@{directory.domain}"
            if directory.user(upn) is not None:
                raise BadInput(f"userPrincipalName '{upn}' is taken", 409)
            mailbox = body.get("mailboxEnabled", not guest)
            password = body.get("password") or "Pw!" + secrets.token_urlsafe(12)
            user = User(
                id=str(uuid.uuid4()),
                user_principal_name=upn,
                display_name=name.strip(),
                given_name=None,
                surname=None,
                mail=upn if mailbox and not guest else None,
                job_title=None,
                department=None,
                account_enabled=True,
                user_type="Guest" if guest else "Member",
                created=CLOCK.now().replace(microsecond=0),
                password=password,
                has_mailbox=mailbox,
            )
            _apply(state, user, {k: v for k, v in body.items() if k not in ("userPrincipalName", "password")})
            directory.add_user(user)
            graph_store(state).created_seq[user.id] = directory.change_seq
            record_user_change(state, user.id)
        except BadInput as exc:
            return _error(exc)
        return JSONResponse(
            {**user.to_graph(), "password": password, "mailboxEnabled": user.has_mailbox}, status_code=201
        )

    async def patch_user(request: Request) -> Response:
        try:
            body = await _body(request)
            user = _user(state, request.path_params["uid"])
            for key in body:
                _check(body, key)
            _apply(state, user, body)
        except BadInput as exc:
            return _error(exc)
        record_user_change(state, user.id)
        return JSONResponse({**user.to_graph(), "mailboxEnabled": user.has_mailbox})

    async def delete_user(request: Request) -> Response:
        try:
            user = _user(state, request.path_params["uid"])
        except BadInput as exc:
            return _error(exc)
        permanent = request.query_params.get("permanent", "false").lower() == "true"
        state.directory.remove_user(user.id)
        state.mailboxes.pop(user.id, None)
        graph_store(state).removed_reason[user.id] = "deleted" if permanent else "changed"
        record_user_change(state, user.id, permanent_delete=permanent)
        return Response(status_code=204)

    async def add_message(request: Request) -> Response:
        try:
            body = await _body(request)
            user = _user(state, request.path_params["uid"])
            box = state.mailbox(user)
            if box is None:
                raise BadInput(f"user '{user.user_principal_name}' has no mailbox", 409)
            folder = box.folder(str(body.get("folder", "inbox")))
            if folder is None:
                raise BadInput(f"no folder '{body.get('folder')}'", 404)
            ctype = str(body.get("contentType", "html")).lower()
            if ctype not in ("html", "text"):
                raise BadInput("contentType is 'html' or 'text'")
            sender = body.get("from") or {}
            if not isinstance(sender, dict) or not isinstance(sender.get("address", ""), str):
                raise BadInput("from is {name, address}")
            received = CLOCK.now().replace(microsecond=0)
            if body.get("receivedDateTime"):
                received = dt.datetime.fromisoformat(str(body["receivedDateTime"]).replace("Z", "+00:00"))
                received = received.astimezone(UTC)
            importance = str(body.get("importance", "normal")).lower()
            if importance not in ("low", "normal", "high"):
                raise BadInput("importance is low, normal or high")
            to = [
                Recipient(str(r.get("name", r.get("address", ""))), str(r.get("address", "")))
                for r in body.get("to", [])
                if isinstance(r, dict)
            ] or [Recipient(user.display_name, user.mail or user.user_principal_name)]
            message = Message(
                id="AAMkAG" + uuid.uuid4().hex + "BGAAA=",
                folder_id=folder.id,
                subject=str(body.get("subject", "")),
                body_content_type=ctype,
                body=str(body.get("body", "")),
                sender=Recipient(
                    str(sender.get("name", "External Sender")),
                    str(sender.get("address", "sender@external.example")),
                ),
                to=to,
                cc=[],
                received=received,
                has_attachments=bool(body.get("hasAttachments", False)),
                importance=importance,
                is_read=bool(body.get("isRead", False)),
                internet_message_id=f"<{uuid.uuid4().hex}@external.example>",
                conversation_id="AAQkAG" + uuid.uuid4().hex,
            )
        except BadInput as exc:
            return _error(exc)
        except ValueError as exc:
            return _error(BadInput(str(exc)))
        insert_message(box, message)
        record_mail_change(state, user.id, message, "created")
        return JSONResponse({"id": message.id, "folderId": folder.id}, status_code=201)

    def scope_json(app_id: str) -> dict[str, Any]:
        s = graph_store(state).settings
        key = scoped_key(state, app_id)  # per organisation (X-Emulator-Tenant)
        return {
            "appId": app_id,
            "users": sorted(s.mail_access.get(key, set())),
            "groups": sorted(s.mail_scope_groups.get(key, set())),
        }

    async def list_mailbox_scopes(request: Request) -> Response:
        s = graph_store(state).settings
        return JSONResponse(
            {"value": [scope_json(a) for a in keys_here(state, {*s.mail_access, *s.mail_scope_groups})]}
        )

    async def put_mailbox_scope(request: Request) -> Response:
        app_id = request.path_params["app_id"]
        try:
            body = await _body(request)
            if set(body) - {"users", "groups"} or not body:
                raise BadInput("a mailbox scope is {users?: [id | upn], groups?: [group id]}")
            users, groups = body.get("users", []), body.get("groups", [])
            if not isinstance(users, list) or not isinstance(groups, list):
                raise BadInput("users and groups are lists")
            user_ids = {_user(state, str(u)).id for u in users}
            for gid in groups:
                if state.directory.group(str(gid)) is None:
                    raise BadInput(f"no group '{gid}'", 404)
        except BadInput as exc:
            return _error(exc)
        s = graph_store(state).settings
        s.mail_access[scoped_key(state, app_id)] = user_ids
        s.mail_scope_groups[scoped_key(state, app_id)] = {str(g) for g in groups}
        return JSONResponse(scope_json(app_id))

    async def delete_mailbox_scope(request: Request) -> Response:
        s = graph_store(state).settings
        s.mail_access.pop(scoped_key(state, request.path_params["app_id"]), None)
        s.mail_scope_groups.pop(scoped_key(state, request.path_params["app_id"]), None)
        return Response(status_code=204)

    async def settings(request: Request) -> Response:
        store = graph_store(state)
        if request.method == "PUT":
            try:
                body = await _body(request)
                s = store.settings
                if "mailDefaultOrder" in body:
                    if body["mailDefaultOrder"] not in ("asc", "desc"):
                        raise BadInput("mailDefaultOrder is 'asc' or 'desc'")
                    s.mail_default_order = body["mailDefaultOrder"]
                if "mailLatencyMs" in body:
                    value = body["mailLatencyMs"]
                    if not isinstance(value, int) or not 0 <= value <= 60_000:
                        raise BadInput("mailLatencyMs is an integer in [0, 60000]")
                    s.mail_latency_ms = value
                if "sendMailDelayMs" in body:
                    value = body["sendMailDelayMs"]
                    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 60_000:
                        raise BadInput("sendMailDelayMs is an integer in [0, 60000]")
                    s.send_mail_delay_ms = value
                if "premiumLicense" in body:
                    if not isinstance(body["premiumLicense"], bool):
                        raise BadInput("premiumLicense is a boolean")
                    s.premium_license = body["premiumLicense"]
                for app_id, mailboxes in (body.get("mailAccessPolicies") or {}).items():
                    if mailboxes is None:
                        s.mail_access.pop(app_id, None)
                        continue
                    if not isinstance(mailboxes, list):
                        raise BadInput("mailAccessPolicies maps an app id to a list of users (or null)")
                    s.mail_access[app_id] = {_user(state, str(m)).id for m in mailboxes}
            except BadInput as exc:
                return _error(exc)
        return JSONResponse(store.settings.public())

    async def expire_delta(request: Request) -> Response:
        graph_store(state).delta_epoch += 1
        return Response(status_code=204)

    from emulator.graph.control_groups import group_control_routes
    from emulator.graph.notify_control import notify_control_routes

    return [
        *group_control_routes(state),
        *notify_control_routes(state),
        Route("/users", create_user, methods=["POST"]),
        Route("/users/{uid}", patch_user, methods=["PATCH"]),
        Route("/users/{uid}", delete_user, methods=["DELETE"]),
        Route("/users/{uid}/messages", add_message, methods=["POST"]),
        Route("/graph/mailbox-scopes", list_mailbox_scopes, methods=["GET"]),
        Route("/graph/mailbox-scopes/{app_id}", put_mailbox_scope, methods=["PUT"]),
        Route("/graph/mailbox-scopes/{app_id}", delete_mailbox_scope, methods=["DELETE"]),
        Route("/graph/settings", settings, methods=["GET", "PUT"]),
        Route("/graph/delta/expire", expire_delta, methods=["POST"]),
    ]
