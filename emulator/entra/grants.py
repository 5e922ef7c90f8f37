"""Consent (delegated grants, app role assignments) and the one-time artefacts: codes and refresh tokens."""

from __future__ import annotations

from dataclasses import dataclass

from emulator.clock import CLOCK
from emulator.config import GRAPH_APP_ID
from emulator.directory.model import Application, AppRoleAssignment, Directory, User
from emulator.entra.context import auth_code_lifetime, refresh_token_lifetime
from emulator.entra.scopes import ResourceScopes, ScopeRequest
from emulator.entra.store import AuthCode, Flow, RefreshGrant, get_store, new_id
from emulator.state import EmulatorState

#: Marker in a "missing" set: ``/.default`` was asked for a resource the app neither lists in its required
#: permissions nor holds any consent for (nothing to show on a consent page).
UNCONFIGURED = ".default"


def required_scopes(client: Application, rs: ResourceScopes) -> set[str]:
    """Delegated scopes a request names for one resource (``/.default``: the app's static permissions)."""
    if rs.default:
        return set(client.required_permissions.get(rs.app.app_id, {}).get("scopes", ()))
    return set(rs.names)


def all_required_scopes(directory: Directory, client: Application) -> dict[str, set[str]]:
    """Every delegated permission of the app registration, per resource ("for all APIs in the list")."""
    return {
        resource_id: set(perms.get("scopes", ()))
        for resource_id, perms in client.required_permissions.items()
        if perms.get("scopes") and directory.app(resource_id) is not None
    }


def missing_consent(
    directory: Directory, client: Application, req: ScopeRequest, user: User
) -> dict[str, set[str]]:
    """Resource app id → delegated scopes the user (or an admin for everyone) has not consented to.

    ``/.default`` prompts only when no delegated permission at all is granted between the client and that
    resource for the user; the prompt then asks for every permission the registration requires, for all
    its APIs (scopes-oidc, ".default when the user has already given consent"). Named scopes prompt for
    those not yet granted (incremental consent).
    """
    missing: dict[str, set[str]] = {}
    for rs in req.resources:
        have = directory.consented_scopes(client.app_id, rs.app.app_id, user.id)
        if rs.default:
            if have:
                continue
            if not required_scopes(client, rs):
                missing.setdefault(rs.app.app_id, set()).add(UNCONFIGURED)
                continue
            for resource_id, names in all_required_scopes(directory, client).items():
                gap = names - directory.consented_scopes(client.app_id, resource_id, user.id)
                if gap:
                    missing.setdefault(resource_id, set()).update(gap)
            continue
        gap = set(rs.names) - have
        if gap:
            missing.setdefault(rs.app.app_id, set()).update(gap)
    if req.oidc:
        have = directory.consented_scopes(client.app_id, GRAPH_APP_ID, user.id)
        gap = set(req.oidc) - have
        if gap:
            missing.setdefault(GRAPH_APP_ID, set()).update(gap)
    return missing


def wanted_consent(directory: Directory, client: Application, req: ScopeRequest) -> dict[str, set[str]]:
    """Everything the request would have the user consent to (shown when ``prompt=consent``): for
    ``/.default`` every permission the registration requires, for all its APIs."""
    wanted: dict[str, set[str]] = {}
    for rs in req.resources:
        if rs.default:
            for resource_id, names in all_required_scopes(directory, client).items():
                wanted.setdefault(resource_id, set()).update(names)
        else:
            wanted.setdefault(rs.app.app_id, set()).update(rs.names)
    if req.oidc:
        wanted.setdefault(GRAPH_APP_ID, set()).update(req.oidc)
    return {k: v for k, v in wanted.items() if v}


def grant_user_consent(
    directory: Directory, client: Application, scopes: dict[str, set[str]], user: User, *, organization: bool
) -> None:
    """Record consent: for the user only (``Principal``) or, by an admin, for everyone (``AllPrincipals``)."""
    for resource_id, names in scopes.items():
        names = {n for n in names if n != UNCONFIGURED}
        if names:
            directory.grant_delegated(client.app_id, resource_id, names, None if organization else user.id)


@dataclass
class AdminGrant:
    resource: ResourceScopes
    scopes: list[str]  # delegated, granted for all principals
    roles: list[str]  # application permissions, assigned to the client's service principal


def admin_consent_plan(client: Application, req: ScopeRequest | None) -> list[AdminGrant]:
    """What an admin consents to: per ``/.default`` the app's required permissions (delegated and application)
    for that resource, per named scope that scope. ``req`` None (v1 endpoint): every required permission."""
    plans: list[AdminGrant] = []
    if req is None:
        return plans
    for rs in req.resources:
        if rs.default:
            perms = client.required_permissions.get(rs.app.app_id, {})
            plans.append(AdminGrant(rs, sorted(perms.get("scopes", ())), sorted(perms.get("roles", ()))))
        else:
            plans.append(AdminGrant(rs, list(rs.names), []))
    return plans


def admin_consent_all(directory: Directory, client: Application) -> list[AdminGrant]:
    """The v1 admin-consent endpoint's plan: every resource in the app's required permissions."""
    plans = []
    for resource_id, perms in client.required_permissions.items():
        resource = directory.app(resource_id)
        if resource is not None:
            rs = ResourceScopes(
                resource, resource.identifier_uris[0] if resource.identifier_uris else None, default=True
            )
            plans.append(AdminGrant(rs, sorted(perms.get("scopes", ())), sorted(perms.get("roles", ()))))
    return plans


def apply_admin_consent(directory: Directory, client: Application, plans: list[AdminGrant]) -> list[str]:
    """Create the grants and role assignments; returns the granted permissions as the v2 admin-consent
    response lists them: each once (a delegated and an application permission of the same name are one
    entry), prefixed with the resource's identifier (``https://graph.microsoft.com/Mail.Send``)."""
    granted: list[str] = []
    for plan in plans:
        resource_id = plan.resource.app.app_id
        if plan.scopes:
            directory.grant_delegated(client.app_id, resource_id, set(plan.scopes), None)
        valid_roles = {r.value for r in plan.resource.app.app_roles}
        for role in plan.roles:
            if role not in valid_roles:
                continue
            if role not in directory.roles_of(client.sp_id, resource_id):
                directory.app_role_assignments.append(AppRoleAssignment(client.sp_id, resource_id, role))
        for name in sorted({*plan.scopes, *(r for r in plan.roles if r in valid_roles)}):
            rendered = plan.resource.render_prefixed(name)
            if rendered not in granted:
                granted.append(rendered)
    return granted


# ------------------------------------------------------------------------------ codes & refresh tokens
def issue_code(state: EmulatorState, flow: Flow, user: User, sid: str) -> str:
    store = get_store(state)
    store.maybe_sweep()
    now = CLOCK.time()
    session = store.sessions.get(sid)
    code = new_id("1.A", 96)
    store.codes[code] = AuthCode(
        client_id=flow.client_id,
        redirect_uri=flow.redirect_uri,
        user_id=user.id,
        scope=flow.scope,
        nonce=flow.nonce,
        code_challenge=flow.code_challenge,
        code_challenge_method=flow.code_challenge_method,
        tenant_kind=flow.tenant_kind,
        sid=sid,
        epoch=user.refresh_epoch,
        issued_at=now,
        expires_at=now + auth_code_lifetime(state),
        claims=flow.claims,
        mfa=session.mfa if session else False,
        auth_time=session.created if session else now,
    )
    return code


def issue_refresh_token(
    state: EmulatorState,
    client_id: str,
    user: User,
    scope: str,
    sid: str,
    *,
    mfa: bool = False,
    auth_time: float = 0.0,
) -> str:
    store = get_store(state)
    store.maybe_sweep()
    now = CLOCK.time()
    token = new_id("1.A", 160)
    store.refresh_tokens[token] = RefreshGrant(
        client_id=client_id,
        user_id=user.id,
        scope=scope,
        sid=sid,
        epoch=user.refresh_epoch,
        issued_at=now,
        expires_at=now + refresh_token_lifetime(state),
        mfa=mfa,
        auth_time=auth_time or now,
    )
    return token
