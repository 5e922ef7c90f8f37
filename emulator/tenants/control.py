"""Control routes for organisations, mounted under ``/_emulator`` (reference: emulator/docs/multi-tenant.md).

* ``GET /tenants``, ``POST /tenants`` ``{"name"?, "displayName"?, "users"?, "userConsent"?}`` (201: ids and
  credentials), ``GET|PATCH|DELETE /tenants/{tenant}`` (``{"userConsent": bool}``).
* ``GET|PUT|PATCH|DELETE /tenants/{tenant}/service-principals/{appId}``: read, consent out of band (the
  portal's "Grant admin consent"; ``{"roles"?: {resourceAppId: [names]}}`` for a partial grant), enable or
  disable (``{"enabled": bool}``), delete. ``POST …/revoke`` ``{"applicationPermissions"?, "delegated"?}``
  removes grants and keeps the service principal.

``{tenant}`` is an organisation's tenant id or domain. Every other control route (users, groups, mailbox
scopes, messages…) acts on an organisation when the request carries ``X-Emulator-Tenant``.
"""

from __future__ import annotations

import itertools
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulator.directory.model import Application, AppRoleAssignment, User
from emulator.entra.grants import AdminGrant, admin_consent_all, apply_admin_consent
from emulator.state import EmulatorState
from emulator.tenants.principals import (
    OrganizationDirectory,
    materialize,
    register_client,
    remove_service_principal,
)
from emulator.tenants.registry import TenantSlot, by_segment, serving
from emulator.tenants.seeding import create_organization, delete_organization


def _error(code: str, message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _person(user: User | None) -> dict[str, str] | None:
    if user is None:
        return None
    return {"id": user.id, "username": user.user_principal_name, "password": user.password}


def describe(state: EmulatorState, slot: TenantSlot, *, credentials: bool = False) -> dict[str, Any]:
    d = slot.directory
    body: dict[str, Any] = {
        "tenantId": slot.tenant_id,
        "domain": d.domain,
        "displayName": d.display_name,
        "origin": slot.origin,
        "authority": f"{state.config.authority_host}/{slot.tenant_id}",
        "users": len(d.users),
        "groups": len(d.groups),
        "mailReadersGroupId": slot.mail_readers,
        "userConsent": not isinstance(d, OrganizationDirectory) or d.user_consent,
        "servicePrincipals": sorted(
            a.app_id
            for a in d.apps.values()
            if not a.is_first_party_resource and isinstance(d, OrganizationDirectory)
        ),
    }
    if credentials:
        body["admin"], body["member"] = _person(slot.admin), _person(slot.member)
    return body


def principal(slot: TenantSlot, app: Application) -> dict[str, Any]:
    d = slot.directory
    return {
        "appId": app.app_id,
        "servicePrincipalId": app.sp_id,
        "enabled": app.enabled,
        "appRoleAssignments": [
            {"resourceAppId": a.resource_app_id, "role": a.role}
            for a in d.app_role_assignments
            if a.principal_id == app.sp_id
        ],
        "oauth2PermissionGrants": [
            {
                "resourceAppId": g.resource_app_id,
                "consentType": g.consent_type,
                "principalId": g.principal_id,
                "scope": " ".join(sorted(g.scopes)),
            }
            for g in d.delegated_grants
            if g.client_app_id == app.app_id
        ],
    }


async def _body(request: Request) -> dict[str, Any]:
    from emulator.control import json_body  # lazily: emulator.control collects this module

    return await json_body(request)


def _consent_plans(directory: OrganizationDirectory, app: Application, roles: Any) -> list[AdminGrant]:
    """Every permission the registration requires; ``roles`` (resource app id -> names) narrows the
    application permissions of the resources it names (a partial grant)."""
    plans = admin_consent_all(directory, app)
    if roles is None:
        return plans
    if not isinstance(roles, dict) or not all(
        isinstance(v, list) and all(isinstance(n, str) for n in v) for v in roles.values()
    ):
        raise ValueError("roles must map resource app ids to lists of application permission names")
    for plan in plans:
        wanted = roles.get(plan.resource.app.app_id)
        if wanted is not None:
            plan.roles = [r for r in plan.roles if r in set(wanted)]
    return plans


def control_routes(state: EmulatorState) -> list[Route]:
    counter = itertools.count(1)

    def org(request: Request) -> TenantSlot | JSONResponse:
        named = request.path_params["tenant"]
        slot = by_segment(state, named)
        if slot is None:
            if named.lower() in (state.home.tenant_id, state.home.directory.domain.lower()):
                return _error(
                    "BadRequest", "the home tenant holds the registrations: use /_emulator/apps/{appId}", 400
                )
            return _error("NotFound", f"No organisation {named!r}.", 404)
        return slot

    async def tenants(request: Request) -> Response:
        if request.method == "GET":
            slots = [state.home, *state.organizations.values()]
            return JSONResponse({"value": [describe(state, s) for s in slots]})
        try:
            body = await _body(request)
            n = next(counter)
            name = str(body.get("name") or f"tenant{len(state.organizations) + n}")
            label = str(body.get("displayName") or f"Organisation {name}")
            users = body.get("users", 6)
            if isinstance(users, bool) or not isinstance(users, int):
                raise ValueError("users must be an integer")
            slot = create_organization(state, name, label, users=users)
            if "userConsent" in body:
                if not isinstance(body["userConsent"], bool):
                    raise ValueError("userConsent must be true or false")
                slot.directory.user_consent = body["userConsent"]  # type: ignore[attr-defined]
        except ValueError as exc:
            return _error("BadRequest", str(exc), 400)
        return JSONResponse(describe(state, slot, credentials=True), status_code=201)

    async def tenant(request: Request) -> Response:
        slot = org(request)
        if isinstance(slot, JSONResponse):
            return slot
        d = cast(OrganizationDirectory, slot.directory)  # org() returns organisations only
        if request.method == "DELETE":
            delete_organization(state, slot)
            return Response(status_code=204)
        if request.method == "PATCH":
            try:
                body = await _body(request)
                if not isinstance(body.get("userConsent"), bool):
                    raise ValueError("userConsent (true or false) is required")
            except ValueError as exc:
                return _error("BadRequest", str(exc), 400)
            d.user_consent = body["userConsent"]
        return JSONResponse(describe(state, slot, credentials=True))

    async def service_principal(request: Request) -> Response:
        slot = org(request)
        if isinstance(slot, JSONResponse):
            return slot
        d = cast(OrganizationDirectory, slot.directory)  # org() returns organisations only
        app_id = request.path_params["app_id"].lower()
        with serving(slot):
            app = d.app(app_id)
            if app is None:
                return _error(
                    "NotFound",
                    f"No multi-tenant application {app_id!r} (registered as AzureADMultipleOrgs).",
                    404,
                )
            if request.method == "PUT":
                try:
                    plans = _consent_plans(d, app, (await _body(request)).get("roles"))
                except ValueError as exc:
                    return _error("BadRequest", str(exc), 400)
                app = materialize(d, app)
                apply_admin_consent(d, app, plans)
                return JSONResponse(principal(slot, app))
            if not d.has_service_principal(app_id):
                return _error("NotFound", f"No service principal for {app_id} in {slot.tenant_id}.", 404)
            if request.method == "DELETE":
                remove_service_principal(d, app_id)
                return Response(status_code=204)
            if request.method == "PATCH":
                try:
                    body = await _body(request)
                    if not isinstance(body.get("enabled"), bool):
                        raise ValueError("enabled (true or false) is required")
                except ValueError as exc:
                    return _error("BadRequest", str(exc), 400)
                app.enabled = body["enabled"]
            return JSONResponse(principal(slot, app))

    async def revoke(request: Request) -> Response:
        slot = org(request)
        if isinstance(slot, JSONResponse):
            return slot
        d = cast(OrganizationDirectory, slot.directory)
        app_id = request.path_params["app_id"].lower()
        try:
            body = await _body(request)
        except ValueError as exc:
            return _error("BadRequest", str(exc), 400)
        app = d.apps.get(app_id)
        if app is None:
            return _error("NotFound", f"No service principal for {app_id} in {slot.tenant_id}.", 404)
        removed_roles = removed_grants = 0
        if body.get("applicationPermissions", True):
            before = len(d.app_role_assignments)
            d.app_role_assignments[:] = [a for a in d.app_role_assignments if a.principal_id != app.sp_id]
            removed_roles = before - len(d.app_role_assignments)
        if body.get("delegated", True):
            before = len(d.delegated_grants)
            d.delegated_grants[:] = [g for g in d.delegated_grants if g.client_app_id != app_id]
            removed_grants = before - len(d.delegated_grants)
        return JSONResponse(
            {
                "removedAppRoleAssignments": removed_roles,
                "removedGrants": removed_grants,
                **principal(slot, app),
            }
        )

    async def register_app(request: Request) -> Response:
        """A confidential client registered in the organisation (a customer's own service calling Graph
        Functions' API): its secret once, and the app roles of Graph Functions it is granted there."""
        slot = org(request)
        if isinstance(slot, JSONResponse):
            return slot
        d = cast(OrganizationDirectory, slot.directory)
        try:
            body = await _body(request)
            name = str(body.get("displayName") or "Customer service")
            roles = body.get("roles", [])
            if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
                raise ValueError("roles must be a list of Graph Functions' app role values")
        except ValueError as exc:
            return _error("BadRequest", str(exc), 400)
        ours = state.ids.app
        with serving(slot):
            sp = d.app(ours.app_id) if d.has_service_principal(ours.app_id) else None
        if roles and sp is None:
            return _error(
                "Conflict",
                f"Graph Functions has no service principal in {slot.tenant_id}: consent first",
                409,
            )
        assignable = {r.value for r in ours.app_roles if "Application" in r.allowed_member_types}
        unknown = sorted(set(roles) - assignable)
        if unknown:
            return _error("BadRequest", f"not app roles of Graph Functions: {', '.join(unknown)}", 400)
        client, secret = register_client(d, name, required={ours.app_id: tuple(sorted(set(roles)))})
        for role in sorted(set(roles)):
            d.app_role_assignments.append(AppRoleAssignment(client.sp_id, ours.app_id, role))
        return JSONResponse(
            {
                "appId": client.app_id,
                "servicePrincipalId": client.sp_id,
                "displayName": client.display_name,
                "secret": secret,
                "roles": d.roles_of(client.sp_id, ours.app_id),
                "scope": f"api://{ours.app_id}/.default",
                "tokenEndpoint": f"{state.config.authority_host}/{slot.tenant_id}/oauth2/v2.0/token",
            },
            status_code=201,
        )

    return [
        Route("/tenants", tenants, methods=["GET", "POST"]),
        Route("/tenants/{tenant}/apps", register_app, methods=["POST"]),
        Route("/tenants/{tenant}", tenant, methods=["GET", "PATCH", "DELETE"]),
        Route(
            "/tenants/{tenant}/service-principals/{app_id}",
            service_principal,
            methods=["GET", "PUT", "PATCH", "DELETE"],
        ),
        Route("/tenants/{tenant}/service-principals/{app_id}/revoke", revoke, methods=["POST"]),
    ]
