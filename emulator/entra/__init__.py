"""Entra ID v2 of the local tenant, served on the login origin (``ENTRA_AUTHORITY_HOST``).

Modules: :mod:`discovery` (OpenID metadata, JWKS, instance discovery, user realm), :mod:`authorize`
(authorization code flow), :mod:`signin` + :mod:`flows` (sign-in and consent pages), :mod:`adminconsent`,
:mod:`logout`, :mod:`token_endpoint` (grants) with :mod:`clients` + :mod:`assertions` (client authentication),
:mod:`scopes` (scope → resource), :mod:`grants` (consent, codes, refresh tokens),
:mod:`token_responses` (token responses), :mod:`session` (SSO cookie), :mod:`pages` (templates),
:mod:`control` (control API).
Documented in ``emulator/docs/entra.md``.
"""

from __future__ import annotations

from starlette.applications import Starlette

from emulator.state import EmulatorState


def build_app(state: EmulatorState) -> Starlette:
    from emulator.entra import adminconsent, authorize, discovery, logout, signin, token_endpoint
    from emulator.entra.store import install

    install(state)
    routes = [
        *discovery.routes(state),
        *authorize.routes(state),
        *signin.routes(state),
        *token_endpoint.routes(state),
        *adminconsent.routes(state),
        *logout.routes(state),
    ]
    return Starlette(routes=routes)
