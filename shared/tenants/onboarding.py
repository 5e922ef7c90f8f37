"""Onboarding an organisation by its administrator's admin consent (multi-tenant, ``ENTRA_TENANCY=multi``).

The recipe (shared/reference/multi-tenant-and-obo.md A.3: "sign the admin in first", never trust the
callback's ``tenant``):

1. ``POST /onboard`` (:meth:`Onboarding.start`): the administrator signs in through ``/organizations``
   (auth-code flow with PKCE, sealed into this browser's flow cookie, kind ``onboard-sign-in``).
2. ``/onboard/callback`` with the code (:meth:`Onboarding.callback`): the code is redeemed; the ID token's
   ``tid`` is the organisation, proven by the sign-in. A new one-time ``state`` is sealed into the flow
   cookie together with that ``tid`` (kind ``onboard-consent``) and the browser goes to THAT tenant's
   ``/{tid}/v2.0/adminconsent`` for ``{GRAPH_ENDPOINT}/.default``.
3. ``/onboard/callback`` with Entra's answer: the state must open this browser's cookie; an ``error``
   ends on a page that says what happened (declined, not an administrator, another failure); a
   ``tenant`` parameter that differs from the bound ``tid`` is refused (the bound ``tid`` is the only one
   ever used). Then the app PROVES the consent: it drops whatever it held for that tenant, gets an
   app-only token in the bound tenant and reads its ``roles``. Every role of :data:`REQUIRED_ROLES`
   present: the organisation is recorded ``active`` (re-onboarding keeps its mailbox group). Some
   missing: a "partial grant" page naming them, nothing recorded as served.

Nothing here trusts the query beyond the sealed state: the tenant, the administrator and the permissions
all come from Entra's own answers (the ID token, the token endpoint).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import urlencode

from shared.core.errors import (
    AppNotProvisioned,
    AuthFlowUnknown,
    BadRequest,
    GraphFunctionsError,
)
from shared.core.patterns import is_guid
from shared.graph.token_source import TokenSource
from shared.storage.tables import Now, utcnow
from shared.tenants.registry import Organisation, TenantRegistry
from shared.web.cookies import FLOW_COOKIE, FLOW_COOKIE_SECONDS, clear_cookie, cookie_value, set_cookie
from shared.web.pages import Page, PageRequest, Redirect

logger = logging.getLogger(__name__)

ONBOARD_PATH = "/onboard"
ONBOARD_CALLBACK_PATH = "/onboard/callback"
#: The application permissions (Graph app roles) an organisation must grant for the app to work there:
#: list users, read mailboxes, check mailbox-group membership. ``Mail.Send`` (the report's mail) is optional.
REQUIRED_ROLES = ("User.Read.All", "Mail.Read", "GroupMember.Read.All")
_SIGN_IN = "onboard-sign-in"
_CONSENT = "onboard-consent"
_ERROR = "[a-z_]{1,64}"
_AADSTS = "AADSTS([0-9]{1,9})(?![0-9])"
#: AADSTS codes of an account that may not consent for the organisation (admin consent required,
#: admin consent workflow) and of a person outside the tenant (shared/reference A.4).
_NOT_ADMIN = frozenset({"90094", "90095", "90099"})
_DECLINED = frozenset({"65004"})
_OTHER_DIRECTORY = frozenset({"50020"})


class SignedInClaims(Protocol):
    @property
    def claims(self) -> Mapping[str, Any]: ...


class AuthCodeClient(Protocol):
    """People's sign-in at ``/organizations`` (:class:`shared.signin.SignInClient`)."""

    def begin(
        self, *, redirect_uri: str, scopes: Sequence[str] = ..., prompt: str | None = ...
    ) -> dict[str, Any]: ...

    def finish(self, flow: Mapping[str, Any], auth_response: Mapping[str, str]) -> SignedInClaims: ...


class TakenFlowLike(Protocol):
    @property
    def flow(self) -> dict[str, Any]: ...

    @property
    def extra(self) -> dict[str, Any]: ...


class SealedFlows(Protocol):
    """Flows sealed into the browser's flow cookie (:class:`shared.signin.FlowStore`)."""

    def put(self, flow: Mapping[str, Any], *, extra: Mapping[str, Any] | None = None) -> str: ...

    def take(self, state: str | None, cookie: str | None) -> TakenFlowLike: ...


class Onboarding:
    """The onboarding steps (module docstring). One per process; holds no per-browser state."""

    def __init__(
        self,
        *,
        sign_in: Callable[[], AuthCodeClient],
        flows: Callable[[], SealedFlows],
        registry: TenantRegistry,
        home_tenant_id: str,
        authority_host: str,
        client_id: str,
        graph_endpoint: str,
        tokens_for: Callable[[str], TokenSource],
        forget: Callable[[str], object],
        rebuild: Callable[[str], object] | None = None,
        now: Now = utcnow,
    ) -> None:
        """``tokens_for(tid)``: the app's token source in a tenant; ``forget(tid)``: drop what the process
        holds for a tenant (its services, its cached tokens); ``rebuild(tid)``: drop its services only, so
        they are built again with what was recorded (default: ``forget``)."""
        self._sign_in = sign_in
        self._flows = flows
        self._registry = registry
        self._home = home_tenant_id.lower()
        self._host = authority_host
        self._client_id = client_id
        self._graph = graph_endpoint
        self._tokens_for = tokens_for
        self._forget = forget
        self._rebuild = rebuild or forget
        self._now = now

    def start(self, origin: str, mailbox_group: str = "") -> Redirect:
        """Step 1: send the administrator to sign in through ``/organizations``.

        ``mailbox_group``: the organisation's choice of whose mailboxes the app may read: a group's object
        id (its members, transitively), ``*`` (every mailbox) or empty (keep the previous choice; none on
        a first onboarding: no mailbox is readable). It takes effect only once the consent is proven.

        Raises:
            BadRequest: ``invalid_parameter``, ``mailbox_group`` is none of these.
        """
        group = mailbox_group.strip().lower()
        if group not in ("", "*") and not is_guid(group):
            raise BadRequest(
                "The mailbox group must be a group's object id (a GUID), * for every mailbox, or empty"
            )
        client = self._sign_in()
        flow = client.begin(redirect_uri=origin + ONBOARD_CALLBACK_PATH, prompt="select_account")
        sealed = self._flows().put(flow, extra={"kind": _SIGN_IN, "group": group})
        cookie = set_cookie(FLOW_COOKIE, sealed, origin=origin, max_age=FLOW_COOKIE_SECONDS)
        return Redirect(str(flow["auth_uri"]), status=303, cookies=(cookie,))

    def callback(self, request: PageRequest, origin: str) -> Page | Redirect:
        """Steps 2 and 3 (which one: the kind sealed with the state in this browser's flow cookie).

        Raises:
            AuthFlowUnknown, AuthFlowMismatch: the state is malformed, expired or not this browser's (400).
            SignInFailed: the sign-in's code redemption failed (400).
            CredentialUnavailable, StorageUnavailable: Entra or Table Storage unavailable (503).
        """
        params = {key: str(value) for key, value in request.params.items()}
        taken = self._flows().take(params.get("state"), cookie_value(request.http, FLOW_COOKIE, origin))
        extra = taken.extra or {}
        kind = extra.get("kind")
        if kind == _SIGN_IN:
            return self._after_sign_in(taken.flow, params, origin, str(extra.get("group") or ""))
        if kind == _CONSENT:
            return self._after_consent(extra, params, origin)
        raise AuthFlowUnknown("This response does not belong to an onboarding started here")

    # -- step 2 -----------------------------------------------------------------------------------------

    def _after_sign_in(
        self, flow: dict[str, Any], params: dict[str, str], origin: str, group: str
    ) -> Page | Redirect:
        cleared = (clear_cookie(FLOW_COOKIE, origin=origin),)
        if "error" in params:
            # A member of an organisation without the app meets "admin approval required" already at this
            # sign-in (user consent off): the same outcomes as at the consent step.
            outcome, detail = _consent_error(params)
            if outcome == "failed":
                return _page("signin_failed", detail, cookies=cleared, status=400)
            return _page(outcome, detail, cookies=cleared, status=403)
        claims = self._sign_in().finish(flow, params).claims
        tid = str(claims.get("tid") or "").lower()
        if not is_guid(tid):
            return _page(
                "signin_failed", "Microsoft Entra ID named no organisation", cookies=cleared, status=400
            )
        if tid == self._home:
            return _page("home", "", cookies=cleared)
        state = secrets.token_urlsafe(32)
        binding = {
            "kind": _CONSENT,
            "tid": tid,
            "oid": str(claims.get("oid") or ""),
            "upn": str(claims.get("preferred_username") or ""),
            "group": group,
        }
        sealed = self._flows().put({"state": state}, extra=binding)
        query = urlencode(
            {
                "client_id": self._client_id,
                "scope": f"{self._graph}/.default",
                "redirect_uri": origin + ONBOARD_CALLBACK_PATH,
                "state": state,
            }
        )
        cookie = set_cookie(FLOW_COOKIE, sealed, origin=origin, max_age=FLOW_COOKIE_SECONDS)
        logger.info("Onboarding: administrator of %s signed in; sent to admin consent", tid)
        return Redirect(f"{self._host}/{tid}/v2.0/adminconsent?{query}", status=303, cookies=(cookie,))

    # -- step 3 -----------------------------------------------------------------------------------------

    def _after_consent(self, binding: Mapping[str, Any], params: dict[str, str], origin: str) -> Page:
        cleared = (clear_cookie(FLOW_COOKIE, origin=origin),)
        tid = str(binding.get("tid") or "")
        if not is_guid(tid):
            raise AuthFlowUnknown("This onboarding was not bound to an organisation")
        if "error" in params:
            outcome, detail = _consent_error(params)
            logger.info("Onboarding of %s ended with %s", tid, outcome)
            return _page(outcome, detail, cookies=cleared, status=403 if outcome != "failed" else 400)
        answered = params.get("tenant", "").lower()
        if params.get("admin_consent", "").lower() != "true" or (answered and answered != tid):
            # Anyone can craft this redirect: a tenant other than the one the sign-in proved is refused.
            logger.warning("Onboarding of %s: the consent answer named another tenant or was incomplete", tid)
            raise BadRequest(
                "The consent answer names another organisation than the one you signed in to, or is "
                "incomplete. Start again at /onboard.",
                code="onboarding_mismatch",
            )
        self._forget(tid)  # whatever was held (tokens, a failure, services) predates this consent
        try:
            roles = _roles_of(self._tokens_for(tid).get_token(f"{self._graph}/.default"), tid)
        except AppNotProvisioned:
            return _page(
                "not_consented",
                "Microsoft Entra ID has no consent of this app in your organisation.",
                cookies=cleared,
                status=403,
            )
        missing = [role for role in REQUIRED_ROLES if role not in roles]
        if missing:
            logger.info("Onboarding of %s: partial grant, missing %s", tid, missing)
            return _page("partial", ", ".join(missing), cookies=cleared, status=403, granted=sorted(roles))
        upn = str(binding.get("upn") or "")
        previous = self._registry.get(tid)
        org = Organisation(
            tenant_id=tid,
            name=_name_of(upn, tid),
            onboarded_by=upn,
            onboarded_by_oid=str(binding.get("oid") or ""),
            onboarded_at=self._now(),
            permissions=tuple(sorted(roles)),
            status="active",
            status_reason=f"onboarded by {upn}",
            changed_at=self._now(),
            mailbox_scope=_chosen_scope(str(binding.get("group") or ""), previous),
        )
        self._registry.record(org)
        self._rebuild(tid)  # services built again with the recorded choices; the proven token is kept
        logger.info("Onboarding: organisation %s is active", tid)
        return _page(
            "onboarded",
            org.name,
            cookies=cleared,
            granted=list(org.permissions),
            scope=org.mailbox_scope or "",
        )


def _chosen_scope(group: str, previous: Organisation | None) -> str | None:
    """The organisation's mailbox scope after onboarding: the group chosen now, else the previous
    choice, else none (default deny)."""
    if group == "*" or is_guid(group):
        return group
    return previous.mailbox_scope if previous is not None else None


def _roles_of(token: str, tid: str) -> frozenset[str]:
    """The ``roles`` of an app-only token the token endpoint just issued to this app over TLS (read, not
    verified: it is the app's own token, never a caller's). A token of another tenant is refused."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as exc:
        raise GraphFunctionsError("The app-only token of the organisation is unreadable") from exc
    if str(claims.get("tid", "")).lower() != tid:
        raise GraphFunctionsError("The app-only token names another organisation")
    roles = claims.get("roles") or []
    return (
        frozenset(role for role in roles if isinstance(role, str)) if isinstance(roles, list) else frozenset()
    )


def _name_of(upn: str, tid: str) -> str:
    """The organisation's name as its administrator's domain (reading ``/organization`` would need one
    more permission, Organization.Read.All, that the app does not otherwise use)."""
    domain = upn.rpartition("@")[2].lower()
    return domain if re.fullmatch(r"[a-z0-9.-]{1,253}", domain) else tid


def _aadsts(params: Mapping[str, str]) -> str:
    found = re.match(_AADSTS, params.get("error_description", ""))
    return found.group(1) if found else ""


def _error_detail(params: Mapping[str, str]) -> str:
    error = params.get("error", "")
    code = _aadsts(params)
    shown = error if re.fullmatch(_ERROR, error) else "unknown error"
    return f"{shown} (AADSTS{code})" if code else shown


def _consent_error(params: Mapping[str, str]) -> tuple[str, str]:
    """(outcome, detail) of an admin-consent error answer. Only a well-formed ``error`` and the numeric
    AADSTS code are shown, never ``error_description`` (anyone can craft this URL)."""
    error, code = params.get("error", ""), _aadsts(params)
    if code in _NOT_ADMIN:
        return "not_admin", _error_detail(params)
    if code in _OTHER_DIRECTORY:
        return "other_directory", _error_detail(params)
    if code in _DECLINED or error in ("access_denied", "consent_required", "permission_denied"):
        return "declined", _error_detail(params)
    return "failed", _error_detail(params)


def _page(
    outcome: str,
    detail: str,
    *,
    cookies: Sequence[str] = (),
    status: int = 200,
    granted: Sequence[str] = (),
    scope: str = "",
) -> Page:
    return Page(
        "onboard.html",
        {
            "title": "Onboard your organisation",
            "outcome": outcome,
            "detail": detail,
            "granted": list(granted),
            "required": list(REQUIRED_ROLES),
            "mailbox_scope": scope,
        },
        status=status,
        cookies=tuple(cookies),
    )


def start_page() -> Page:
    """The ``/onboard`` page before anything happened."""
    return _page("start", "")
