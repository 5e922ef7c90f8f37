"""What ``POST/PATCH /v1.0/subscriptions`` accept: resources, change types, URLs, lifetimes, permissions,
certificates and quotas, with Graph's error codes and messages (sources: docs/notifications.md)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from emulator.clock import CLOCK
from emulator.graph.auth import USER_READ_ALL, require_me
from emulator.graph.http import Ctx, GraphError
from emulator.graph.mail import MESSAGE_LOOKUP
from emulator.graph.mailbox import in_mailbox_scope
from emulator.graph.notify_crypto import load_certificate
from emulator.graph.notify_store import NotifySettings, NotifyStore, Subscription

_USERS = re.compile(r"users", re.IGNORECASE)
_USER = re.compile(r"users/(?P<uid>[^/?']+)", re.IGNORECASE)
_GROUPS = re.compile(r"groups", re.IGNORECASE)
_GROUP = re.compile(r"groups/(?P<gid>[^/?']+)", re.IGNORECASE)
_MESSAGES = re.compile(r"(?:users/(?P<uid>[^/?']+)|me)/messages", re.IGNORECASE)
_FOLDER_MESSAGES = re.compile(
    r"(?:users/(?P<uid>[^/?']+)|me)/mailfolders(?:\('(?P<f1>[^'/]+)'\)|/(?P<f2>[^/?']+))/messages",
    re.IGNORECASE,
)
CHANGE_TYPES = ("created", "updated", "deleted")
TLS_VERSIONS = ("v1_0", "v1_1", "v1_2", "v1_3")
CREATE_FIELDS = frozenset(
    {
        "changeType",
        "notificationUrl",
        "lifecycleNotificationUrl",
        "resource",
        "expirationDateTime",
        "clientState",
        "includeResourceData",
        "encryptionCertificate",
        "encryptionCertificateId",
        "latestSupportedTlsVersion",
        "notificationUrlAppId",
        "notificationQueryOptions",
        "notificationContentType",
        "@odata.type",
    }
)
PATCH_FIELDS = frozenset(
    {
        "expirationDateTime",
        "notificationUrl",
        "encryptionCertificate",
        "encryptionCertificateId",
        "@odata.type",
    }
)
MAIL_SUBSCRIBE = frozenset({"Mail.ReadBasic", "Mail.ReadBasic.All", "Mail.Read", "Mail.ReadWrite"})
GROUP_SUBSCRIBE = frozenset(
    {"Group.Read.All", "Group.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
DIRECTORY_KINDS = frozenset({"users", "user", "groups", "group"})
FORBIDDEN_EXTENSION = "Operation: Create; Exception: [Status Code: Forbidden; Reason: Forbidden]"
NO_REST_MAILBOX = (
    "Operation: Create; Exception: [Status Code: NotFound; "
    "Reason: REST API is not yet supported for this mailbox.]"
)


def invalid(message: str, code: str = "InvalidRequest", status: int = 400) -> GraphError:
    return GraphError(status, code, message)


@dataclass
class Target:
    kind: str  # users | user | groups | group | messages
    user_id: str | None
    folder_id: str | None
    select: list[str] | None
    filter: str | None
    resource: str


def unknown_property(name: str) -> GraphError:
    return invalid(
        f"The property '{name}' does not exist on type 'microsoft.graph.subscription'. Make sure to only use "
        "property names that are defined by the type or mark the type as open type.",
        "BadRequest",
    )


def string_field(data: dict[str, Any], name: str, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise invalid(f"{name} is a required property for subscription creation.")  # [INFERRED] others
        return None
    if not isinstance(value, str):
        raise invalid(
            f"Cannot convert the value of '{name}' to the expected type 'Edm.String'.", "BadRequest"
        )
    return value


def https_url(value: str, name: str = "notification") -> str:
    """A subscriber URL: absolute ``https://`` (Graph calls nothing else)."""
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or 0 < parts.port < 65_536  # .port raises on a non-number
    except ValueError:
        raise invalid(f"Invalid {name} url='{value}'.") from None
    bad = parts.scheme.lower() != "https" or not parts.hostname or parts.username or parts.password
    if bad or not port_ok or any(c.isspace() for c in value):
        raise invalid(f"Invalid {name} url='{value}'.")
    return value


def change_types(value: str, kind: str) -> list[str]:
    wanted = [p.strip() for p in value.split(",")]
    out: list[str] = []
    for item in wanted:
        if item not in CHANGE_TYPES or (kind in DIRECTORY_KINDS and item == "created"):
            raise invalid(f"Invalid 'changeType' attribute: '{item}'.")
        if item not in out:
            out.append(item)
    return out


def parse_resource(ctx: Ctx, raw: str) -> Target:
    """Resolve ``resource`` to what it watches; unknown users and mailboxes answer as Graph does."""
    text = raw.strip().lstrip("/")
    path, _, query = text.partition("?")
    options = {k.lower(): v for k, v in parse_qsl(query, keep_blank_values=True)}
    directory = ctx.state.directory
    for collection, single, kind in ((_USERS, _USER, "user"), (_GROUPS, _GROUP, "group")):
        whole, one = collection.fullmatch(path), single.fullmatch(path)
        if whole is None and one is None:
            continue
        if options:
            raise invalid(f"Query options are not supported for resource '{path}'.")  # [INFERRED]
        if one is None:
            return Target(f"{kind}s", None, None, None, None, path)
        key = one.group(1)
        found = directory.user(key) if kind == "user" else directory.group(key)
        if found is None:
            raise GraphError(404, "ResourceNotFound", f"Resource '{key}' does not exist.")
        return Target(kind, found.id, None, None, None, path)
    match = _MESSAGES.fullmatch(path) or _FOLDER_MESSAGES.fullmatch(path)
    if match is None:
        raise invalid(f"Resource '{path}' is not supported for change notifications.")  # [INFERRED]
    uid = match.group("uid")
    if uid is None:
        require_me(ctx.principal)
        uid = ctx.principal.user_id or ""
    user = directory.user(uid)
    box = ctx.state.mailbox(user) if user is not None else None
    if user is None or box is None:
        raise GraphError(404, "ExtensionError", NO_REST_MAILBOX)
    folder_id = None
    groups = match.groupdict()
    name = groups.get("f1") or groups.get("f2")
    if name is not None:
        folder = box.folder(name)
        if folder is None:
            raise GraphError(404, "ExtensionError", "The specified object was not found in the store.")
        folder_id = folder.id
    for option in options:
        if option not in ("$select", "$filter"):
            raise invalid(f"The query option '{option}' is not supported for change notifications.")
    select = None
    if "$select" in options:
        select = []
        for part in options["$select"].split(","):
            prop = MESSAGE_LOOKUP.get(part.strip().lower())
            if prop is None:
                raise invalid(f"Could not find a property named '{part.strip()}' on type 'message'.")
            if prop not in select:
                select.append(prop)
    return Target("messages", user.id, folder_id, select, options.get("$filter"), path)


def check_access(ctx: Ctx, target: Target) -> None:
    """The permission the resource needs (any one of), and for app-only mail the mailbox scope.

    Raises:
        GraphError: 403 ``Authorization_RequestDenied`` (users) or ``ExtensionError`` (mail).
    """
    principal = ctx.principal
    if target.kind in ("groups", "group"):
        if not principal.has_any(GROUP_SUBSCRIBE):
            raise GraphError(
                403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
            )
        return
    if target.kind in ("users", "user"):
        if not principal.has_any(USER_READ_ALL):
            raise GraphError(
                403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
            )
        return
    owner = ctx.state.directory.user(target.user_id or "")
    if owner is None or not principal.has_any(MAIL_SUBSCRIBE):
        raise GraphError(403, "ExtensionError", FORBIDDEN_EXTENSION)
    if principal.delegated and owner.id != principal.user_id:
        raise GraphError(403, "ExtensionError", FORBIDDEN_EXTENSION)  # *.Shared cannot subscribe
    if not principal.delegated and not in_mailbox_scope(ctx, owner):
        raise GraphError(403, "ExtensionError", FORBIDDEN_EXTENSION)


def rich_rules(target: Target, data: dict[str, Any]) -> tuple[bool, str | None, str | None]:
    """``includeResourceData`` and its certificate: (include, certificate, certificate id)."""
    include = data.get("includeResourceData", False)
    if include is None:
        include = False
    if not isinstance(include, bool):
        raise invalid("Cannot convert the value of 'includeResourceData' to 'Edm.Boolean'.", "BadRequest")
    cert, cert_id = string_field(data, "encryptionCertificate"), string_field(data, "encryptionCertificateId")
    if not include:
        return False, cert, cert_id
    if target.kind != "messages":
        raise invalid(f"Rich notifications are not supported for resource '{target.resource}'.")
    if not target.select:
        raise invalid("A $select query option is required on the resource of a rich Outlook subscription.")
    if {"body", "uniqueBody"} & set(target.select):
        raise invalid("$select=Body,UniqueBody is not supported for rich Outlook notifications.")
    if not cert or not cert_id:
        raise invalid(
            "Subscriptions with includeResourceData need encryptionCertificate and encryptionCertificateId."
        )
    certificate(cert, cert_id)
    return True, cert, cert_id


def certificate(cert: str, cert_id: str) -> None:
    if len(cert_id) > 128:
        raise invalid("encryptionCertificateId must be at most 128 characters.")
    try:
        load_certificate(cert)
    except ValueError as exc:
        raise invalid(f"The encryptionCertificate is not valid: {exc}.") from exc


def max_minutes(settings: NotifySettings, kind: str, rich: bool) -> int:
    if kind == "messages":
        return settings.outlook_rich_max_minutes if rich else settings.outlook_max_minutes
    return settings.directory_max_minutes


def expiration(value: Any, settings: NotifySettings, kind: str, rich: bool) -> float:
    """The expiry as tenant Unix time: under 45 min from now is raised to now + 45 min; past the
    resource's ceiling is refused with the message Graph uses."""
    if value is None:
        raise invalid("expirationDateTime is a required property for subscription creation")
    if not isinstance(value, str):
        raise invalid(
            "Cannot convert the value of 'expirationDateTime' to 'Edm.DateTimeOffset'.", "BadRequest"
        )
    try:
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise invalid(f"The value '{value}' is not a valid DateTimeOffset.", "BadRequest") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    now = CLOCK.time()
    stamp = when.timestamp()
    ceiling = max_minutes(settings, kind, rich)
    if stamp > now + ceiling * 60:
        code = "ExtensionError" if kind == "messages" else "InvalidRequest"
        raise invalid(f"Subscription expiration can only be {ceiling} minutes in the future.", code)
    return max(stamp, now + settings.minimum_minutes * 60)


def quota(store: NotifyStore, ctx: Ctx, target: Target, change: list[str]) -> None:
    """409 for a duplicate (same app, changeType and resource), 403 over a quota."""
    s = store.settings
    live = [sub for sub in store.subscriptions.values() if sub.expiration > CLOCK.time()]
    app, tenant = ctx.principal.app_id, ctx.principal.tenant_id
    if s.duplicate_subscriptions == "conflict":
        for sub in live:
            if (
                sub.app_id == app
                and sub.kind == target.kind
                and sub.target == target.user_id
                and sub.folder == target.folder_id
                and sorted(sub.change_types) == sorted(change)
            ):
                raise invalid(
                    f"Subscription Id {sub.id} already exists for the requested combination", "Conflict", 409
                )
    if target.kind == "messages":
        if sum(1 for sub in live if sub.target == target.user_id and sub.is_outlook) >= s.mailbox_quota:
            raise invalid(
                f"The maximum number of {s.mailbox_quota} subscriptions per mailbox has been reached.",
                "ExtensionError",
                403,
            )
        return
    directory = [sub for sub in live if not sub.is_outlook]
    limits = (
        (
            [x for x in directory if x.app_id == app and x.tenant_id == tenant],
            s.directory_app_tenant_quota,
            "app and tenant",
        ),
        ([x for x in directory if x.tenant_id == tenant], s.directory_tenant_quota, "tenant"),
        ([x for x in directory if x.app_id == app], s.directory_app_quota, "application"),
    )
    for subs, limit, scope in limits:
        if len(subs) >= limit:
            raise invalid(
                f"Subscription quota exceeded: the limit of {limit} subscriptions per {scope} "
                "has been reached.",
                "Forbidden",
                403,
            )


def throttle_writes(store: NotifyStore, ctx: Ctx) -> None:
    """Writes per app+tenant in a sliding 20 s (throttling-subscription-services include)."""
    key = (ctx.principal.app_id, ctx.principal.tenant_id)
    now = CLOCK.time()
    window = [t for t in store.writes.get(key, []) if t > now - 20]
    if len(window) >= store.settings.writes_per_20s:
        retry = max(1, int(window[0] + 20 - now) + 1)
        raise GraphError(
            429, "TooManyRequests", "Please retry again later.", headers={"Retry-After": str(retry)}
        )
    window.append(now)
    store.writes[key] = window


def visible(ctx: Ctx, sub: Subscription) -> bool:
    """Whether the caller may see ``sub``: the same app, and for delegated calls the same user."""
    if sub.app_id != ctx.principal.app_id or sub.tenant_id != ctx.principal.tenant_id:
        return False
    return not ctx.principal.delegated or sub.delegated_user == ctx.principal.user_id
