"""The signed-in person's SharePoint user (``SHAREPOINT_SITE_URL``/_api/web/currentuser), with a delegated
token for the SharePoint resource (``{site origin}/AllSites.Read``) obtained from the sign-in's refresh token.

Required permission: SharePoint delegated ``AllSites.Read`` (asked for incrementally: when the tenant has not
consented to it yet, Entra answers ``consent_required`` and the person goes through sign-in once with it).
"""

from __future__ import annotations

import logging
from typing import Any

from shared.core.errors import SignInRequired, UpstreamError
from shared.core.http import Transport, TransportError
from shared.graph.token_source import TokenSource

logger = logging.getLogger(__name__)

#: The fields the API and page show.
FIELDS = ("Title", "Email", "LoginName")


def current_user(
    *, site_url: str, scope: str, tokens: TokenSource, transport: Transport, timeout: float
) -> dict[str, Any]:
    """``{"Title", "Email", "LoginName"}`` of the person, from SharePoint REST (JSON light, no metadata).

    A 401 (token refused) drops the token and tries once more; a second refusal means the sign-in must be
    renewed for SharePoint.

    Raises:
        SignInRequired: SharePoint keeps refusing the person's token, or Entra needs the person.
        UpstreamError: SharePoint unreachable, failing or answering something unexpected (502).
    """
    url = f"{site_url.rstrip('/')}/_api/web/currentuser"
    for attempt in range(2):
        token = tokens.get_token(scope)
        try:
            response = transport.send(
                "GET",
                url,
                headers={"Accept": "application/json;odata=nometadata", "Authorization": f"Bearer {token}"},
                params={"$select": ",".join(FIELDS)},
                timeout=timeout,
            )
        except TransportError as exc:
            raise UpstreamError("SharePoint is unreachable or timed out") from exc
        if response.status_code == 200:
            try:
                body = response.json()
            except ValueError as exc:
                raise UpstreamError("SharePoint answered with malformed JSON") from exc
            if not isinstance(body, dict):
                raise UpstreamError("SharePoint answered with an unexpected body")
            return {field: body.get(field) for field in FIELDS}
        if response.status_code == 401 and attempt == 0:
            logger.warning("SharePoint refused a delegated token; dropping it and trying once more")
            tokens.invalidate(scope, token)
            continue
        if response.status_code in (401, 403):
            raise SignInRequired(
                "SharePoint refused your sign-in. Sign in again.",
                code="interaction_required",
                scopes=(scope,),
            )
        logger.warning("SharePoint answered %d for the current user", response.status_code)
        raise UpstreamError(f"SharePoint answered HTTP {response.status_code}")
    raise UpstreamError("SharePoint kept refusing the token")  # pragma: no cover - the loop returns or raises
