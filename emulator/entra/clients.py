"""Client authentication at the token endpoint.

``client_secret`` in the form (client_secret_post) or HTTP Basic (client_secret_basic), or
``client_assertion`` + ``client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer``
(private_key_jwt with a registered certificate, or a federated credential). Exactly one method per request.
``appidacr``/``azpacr``: "0" public client, "1" client secret, "2" certificate or assertion.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from starlette.requests import Request

from emulator.clock import CLOCK
from emulator.directory.model import Application
from emulator.entra.assertions import is_federated, verify_certificate_assertion, verify_federated_assertion
from emulator.entra.context import JWT_BEARER, EntraError, Tenant, fail, find_app, missing_parameter
from emulator.request_parsing import basic_credentials
from emulator.state import EmulatorState
from emulator.tenants.principals import require_service_principal


@dataclass(frozen=True)
class ClientAuth:
    app: Application
    appidacr: str  # "0" | "1" | "2"
    method: str  # none | client_secret_post | client_secret_basic | private_key_jwt | federated


def client_id_of(request: Request, form: dict[str, str]) -> str | None:
    """The client id a request names (form or Basic), for attribution before authentication."""
    basic = basic_credentials(request)
    return form.get("client_id") or (basic[0] if basic else None)


def unknown_client(state: EmulatorState, client_id: str) -> EntraError:
    return fail(
        700016,
        "unauthorized_client",
        f"Application with identifier '{client_id}' was not found in the directory "
        f"'{state.directory.display_name}'. This can happen if the application has not been installed by the "
        "administrator of the tenant or consented to by any user in the tenant. You may have sent your "
        "authentication request to the wrong tenant.",
    )


def disabled_client(app: Application) -> EntraError:
    return fail(
        7000112, "unauthorized_client", f"Application '{app.app_id}'({app.display_name}) is disabled."
    )


def check_secret(app: Application, secret: str) -> None:
    now = CLOCK.now()
    matched = None
    for candidate in app.secrets:  # compare against every secret: constant time per candidate
        if hmac.compare_digest(candidate.value.encode(), secret.encode()) and matched is None:
            matched = candidate
    if matched is None or matched.start > now:
        raise fail(
            7000215,
            "invalid_client",
            "Invalid client secret provided. Ensure the secret being sent in the request is the client "
            f"secret value, not the client secret ID, for a secret added to app '{app.app_id}'.",
            status=401,
        )
    if matched.end < now:
        raise fail(
            7000222,
            "invalid_client",
            f"The provided client secret keys for app '{app.app_id}' are expired. Visit the Azure portal to "
            "create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate "
            "credentials for added security: https://aka.ms/certCreds",
            status=401,
        )


async def authenticate_client(
    state: EmulatorState, request: Request, form: dict[str, str], tenant: Tenant
) -> ClientAuth:
    """Identify and authenticate the client, or raise :class:`EntraError` with Entra's error."""
    basic = basic_credentials(request)
    form_id = form.get("client_id")
    secret = form.get("client_secret")
    assertion, assertion_type = form.get("client_assertion"), form.get("client_assertion_type")
    if basic is not None:
        if form_id and form_id != basic[0]:
            raise fail(
                90023,
                "invalid_request",
                "The client_id in the request body does not match the client identifier of the "
                "Authorization header.",
            )
        if secret or assertion:
            raise fail(
                90023,
                "invalid_request",
                "The request used more than one client authentication method; use exactly one "
                "(client_secret_basic, client_secret_post or private_key_jwt).",
            )
        form_id, secret = basic
    if assertion and not assertion_type:
        raise missing_parameter("client_assertion_type")
    if assertion_type and not assertion:
        raise missing_parameter("client_assertion")
    if assertion_type and assertion_type != JWT_BEARER:
        raise fail(
            90023,
            "invalid_request",
            f"The client_assertion_type '{assertion_type}' is not supported. Expected '{JWT_BEARER}'.",
        )
    if secret and assertion:
        raise fail(
            90023,
            "invalid_request",
            "The request used more than one client authentication method; send either client_secret or "
            "client_assertion.",
        )
    if not form_id:
        raise missing_parameter("client_id")
    app = find_app(state, form_id)
    if app is None:
        raise unknown_client(state, form_id)
    require_service_principal(state.directory, app)  # AADSTS7000229 in an organisation without one
    if not app.enabled:
        raise disabled_client(app)
    if app.is_public:
        if secret or assertion:
            raise fail(
                700025,
                "invalid_client",
                "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
                status=401,
            )
        return ClientAuth(app, "0", "none")
    if secret:
        check_secret(app, secret)
        return ClientAuth(app, "1", "client_secret_basic" if basic else "client_secret_post")
    if assertion:
        if is_federated(app, assertion):
            verify_federated_assertion(state, app, assertion)
            return ClientAuth(app, "2", "federated")
        verify_certificate_assertion(state, tenant, app, assertion)
        return ClientAuth(app, "2", "private_key_jwt")
    raise fail(
        7000218,
        "invalid_client",
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        status=401,
    )
