"""The single-page client of Graph Functions and what its API exposes to it (issue 20).

* "Graph Functions SPA": a public client whose redirect URIs are on the ``spa`` platform
  (``http://localhost:7071/spa/``), so codes sent there must be redeemed cross-origin with PKCE and its
  refresh tokens live 24 hours (``emulator/entra/spa.py``).
* Graph Functions exposes ``access_as_user`` (``api://{client id}/access_as_user``) and lists the SPA in
  ``preAuthorizedApplications`` for it (and ``knownClientApplications``): no user is ever asked to consent to
  the SPA calling the API. Modelled as a tenant-wide delegated grant, which is what pre-authorization
  amounts to at the token endpoint. The SPA's sign-in scopes (``openid profile offline_access``) are
  admin-consented likewise.
* Graph Functions asks for the ``xms_cc`` optional claim in its access tokens, so a client declaring the
  ``cp1`` capability gets ``xms_cc: ["cp1"]`` in the token it sends to the API.

The SPA's ids come from their own random stream (``{seed}:spa``): registering it moves no other seeded id.
Sources: ``emulator/docs/spa-and-obo.md``.
"""

from __future__ import annotations

import random
import uuid

from emulator.config import GRAPH_APP_ID
from emulator.directory.model import Application, Directory

SPA_DISPLAY_NAME = "Graph Functions SPA"
SPA_REDIRECT_URIS = ("http://localhost:7071/spa/", "http://127.0.0.1:7071/spa/")
API_SCOPE = "access_as_user"
#: The SPA's sign-in scopes, consented for everyone (Microsoft Graph's OIDC permissions).
SPA_SIGNIN_SCOPES = frozenset({"openid", "profile", "offline_access"})


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def register_spa(directory: Directory, api: Application, seed: int) -> Application:
    """Register the SPA, pre-authorize it for the API's ``access_as_user`` and return it."""
    rng = random.Random(f"{seed}:spa")
    spa = Application(
        app_id=_uuid(rng),
        object_id=_uuid(rng),
        sp_id=_uuid(rng),
        display_name=SPA_DISPLAY_NAME,
        is_public=True,
        redirect_uris=list(SPA_REDIRECT_URIS),
        spa_redirect_uris=list(SPA_REDIRECT_URIS),
        post_logout_redirect_uris=list(SPA_REDIRECT_URIS),
        required_permissions={
            api.app_id: {"scopes": (API_SCOPE,), "roles": ()},
            GRAPH_APP_ID: {"scopes": tuple(sorted(SPA_SIGNIN_SCOPES)), "roles": ()},
        },
    )
    directory.apps[spa.app_id] = spa
    if API_SCOPE not in api.delegated_scopes:
        api.delegated_scopes = (*api.delegated_scopes, API_SCOPE)
    claims = api.optional_claims.get("accessToken", ())
    if "xms_cc" not in claims:
        api.optional_claims = {**api.optional_claims, "accessToken": (*claims, "xms_cc")}
    directory.grant_delegated(spa.app_id, api.app_id, {API_SCOPE}, None)
    directory.grant_delegated(spa.app_id, GRAPH_APP_ID, set(SPA_SIGNIN_SCOPES), None)
    return spa


def spa_client(directory: Directory) -> Application:
    """The registered SPA (raises LookupError when the directory has none)."""
    for app in directory.apps.values():
        if app.display_name == SPA_DISPLAY_NAME and app.spa_redirect_uris:
            return app
    raise LookupError("no single-page client is registered")
