"""A person's app roles and account changing while they are signed in (control API
``PUT /_emulator/users/{id}/app-roles/{appId}``, Graph's ``PATCH /users/{id} {"accountEnabled": false}``): the
next refresh's ID token carries the roles as they are then; a disabled account's refresh is refused."""

from __future__ import annotations

import msal
import requests

from tests.emulator.entra_flow import REDIRECT, Browser, graph_functions_app, params_of
from tests.support.tenant import LocalTenant


def admin_signed_in(tenant: LocalTenant) -> tuple[msal.ConfidentialClientApplication, dict]:
    app = graph_functions_app(tenant)
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT)
    browser = Browser.open(tenant)
    page = browser.get(flow["auth_uri"])
    redirect = browser.sign_in(page, tenant.env["DEMO_ADMIN_USERNAME"], tenant.env["DEMO_ADMIN_PASSWORD"])
    result = app.acquire_token_by_auth_code_flow(flow, params_of(redirect))
    assert "access_token" in result, result
    return app, result


def control(tenant: LocalTenant, method: str, path: str, body: object = None) -> requests.Response:
    return requests.request(
        method,
        f"{tenant.env['EMULATOR_URL']}/_emulator{path}",
        json=body,
        verify=tenant.ca_cert,
        timeout=30,
    )


def test_a_removed_role_is_gone_from_the_next_refreshed_id_token(fresh: LocalTenant) -> None:
    app, first = admin_signed_in(fresh)
    client_id, upn = fresh.env["ENTRA_CLIENT_ID"], fresh.env["DEMO_ADMIN_USERNAME"]
    assert "Reports.Run" in first["id_token_claims"]["roles"]
    path = f"/users/{upn}/app-roles/{client_id}"
    before = control(fresh, "GET", path).json()["roles"]
    kept = [role for role in before if role != "Reports.Run"]
    changed = control(fresh, "PUT", path, {"roles": kept})
    assert changed.status_code == 200 and changed.json()["roles"] == sorted(kept)
    account = app.get_accounts()[0]
    refreshed = app.acquire_token_silent_with_error(["User.Read"], account=account, force_refresh=True)
    assert refreshed is not None and "access_token" in refreshed, refreshed
    assert sorted(refreshed["id_token_claims"]["roles"]) == sorted(kept)
    control(fresh, "PUT", path, {"roles": []})
    empty = app.acquire_token_silent_with_error(["User.Read"], account=account, force_refresh=True)
    assert empty is not None and "roles" not in empty["id_token_claims"]  # none: no claim at all


def test_a_disabled_account_cannot_refresh(fresh: LocalTenant) -> None:
    app, _ = admin_signed_in(fresh)
    upn = fresh.env["DEMO_ADMIN_USERNAME"]
    assert control(fresh, "PATCH", f"/users/{upn}", {"accountEnabled": False}).status_code == 200
    refused = app.acquire_token_silent_with_error(
        ["User.Read"], account=app.get_accounts()[0], force_refresh=True
    )
    assert refused is not None and refused["error"] == "invalid_grant" and refused["error_codes"] == [50057]


def test_the_app_roles_route_refuses_what_it_cannot_assign(fresh: LocalTenant) -> None:
    client_id, upn = fresh.env["ENTRA_CLIENT_ID"], fresh.env["DEMO_ADMIN_USERNAME"]
    path = f"/users/{upn}/app-roles/{client_id}"
    for body in ({"roles": ["No.Such.Role"]}, {"roles": "Reports.Run"}, {}, {"roles": [1]}):
        answer = control(fresh, "PUT", path, body)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "BadRequest", body
    assert control(fresh, "GET", f"/users/nobody@nowhere.example/app-roles/{client_id}").status_code == 404
    assert (
        control(fresh, "GET", f"/users/{upn}/app-roles/00000000-0000-0000-0000-000000000000").status_code
        == 404
    )
