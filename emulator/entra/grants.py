"""Consent (delegated grants, app role assignments) and the one-time artefacts: codes and refresh tokens."""

from __future__ import annotations

import time
from dataclasses import dataclass

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


def missing_consent(
    directory: Directory, client: Application, req: ScopeRequest, user: User
) -> dict[str, set[str]]:
    """Resource app id → delegated scopes the user (or an admin for everyone) has not consented to."""
    missing: dict[str, set[str]] = {}
    for rs in req.resources:
        want = required_scopes(client, rs)
        have = directory.consented_scopes(client.app_id, rs.app.app_id, user.id)
        gap = want - have
        if rs.default and not want and not have:
            gap = {UNCONFIGURED}
        if gap:
            missing.setdefault(rs.app.app_id, set()).update(gap)
    if req.oidc:
        have = directory.consented_scopes(client.app_id, GRAPH_APP_ID, user.id)
        gap = set(req.oidc) - have
        if gap:
            missing.setdefault(GRAPH_APP_ID, set()).update(gap)
    return missing


def wanted_consent(client: Application, req: ScopeRequest) -> dict[str, set[str]]:
    """Everything the request would have the user consent to (shown when ``prompt=consent``)."""
    wanted: dict[str, set[str]] = {}
    for rs in req.resources:
        wanted.setdefault(rs.app.app_id, set()).update(required_scopes(client, rs))
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
    """Create the grants and role assignments; returns the granted permissions, rendered as scopes."""
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
        granted += [plan.resource.render(s) for s in [*plan.scopes, *plan.roles]]
    return granted


# ------------------------------------------------------------------------------ codes & refresh tokens
def issue_code(state: EmulatorState, flow: Flow, user: User, sid: str) -> str:
    store = get_store(state)
    store.maybe_sweep()
    now = time.time()
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
    )
    return code


def issue_refresh_token(state: EmulatorState, client_id: str, user: User, scope: str, sid: str) -> str:
    store = get_store(state)
    store.maybe_sweep()
    now = time.time()
    token = new_id("1.A", 160)
    store.refresh_tokens[token] = RefreshGrant(
        client_id=client_id,
        user_id=user.id,
        scope=scope,
        sid=sid,
        epoch=user.refresh_epoch,
        issued_at=now,
        expires_at=now + refresh_token_lifetime(state),
    )
    return token
