"""Scope strings → resources, as Entra v2 reads them.

* ``openid``, ``profile``, ``email``, ``offline_access`` are the OIDC scopes (delegated permissions of
  Microsoft Graph for consent purposes; they never choose the token's resource).
* A bare name (``User.Read``) is a Microsoft Graph scope.
* ``{identifier}/{name}`` and ``{identifier}/.default`` name a resource by app id or identifier URI
  (split at the last ``/``, as MSAL does): ``https://graph.microsoft.com/.default``,
  ``https://127.0.0.1:8446/AllSites.Read``, ``api://{client id}/access_as_user``.

Names are matched case-insensitively and returned in the resource's own spelling.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from emulator.config import GRAPH_APP_ID, SHAREPOINT_APP_ID
from emulator.directory.model import Application, Directory

OIDC_SCOPES = ("openid", "profile", "email", "offline_access")

#: Delegated permissions only an administrator may consent to ("Admin consent required: Yes" in the
#: permission reference). A member asking for them gets the "Need admin approval" page (AADSTS90094).
ADMIN_ONLY_SCOPES: dict[str, frozenset[str]] = {
    GRAPH_APP_ID: frozenset({"User.Read.All", "Directory.Read.All", "GroupMember.Read.All"}),
    SHAREPOINT_APP_ID: frozenset({"User.Read.All"}),  # [INFERRED]
}


class ScopeError(Exception):
    """``kind``: invalid (70011), unknown_resource (500011), unknown_scope (650053/70011),
    default_mixed (70011)."""

    def __init__(self, kind: str, scope: str, resource: Application | None = None) -> None:
        super().__init__(f"{kind}: {scope}")
        self.kind = kind
        self.scope = scope
        self.resource = resource


@dataclass
class ResourceScopes:
    """The part of a scope request aimed at one resource."""

    app: Application
    identifier: str | None  # as requested (before the last '/'); None for bare Graph names
    names: list[str] = field(default_factory=list)  # canonical delegated scope names
    default: bool = False

    @property
    def audience(self) -> str:
        """``aud`` of a token for this resource: the client id for v2 resources; otherwise the identifier
        URI the client named (its registered spelling), or the app id when named by id or bare names."""
        if self.app.access_token_version == 2 or self.identifier is None:
            return self.app.app_id
        wanted = self.identifier.rstrip("/").lower()
        for uri in self.app.identifier_uris:
            if uri.rstrip("/").lower() == wanted:
                return uri.rstrip("/")
        return self.app.app_id

    def render_prefixed(self, name: str) -> str:
        """``{identifier}/{name}`` with the identifier as requested, or the resource's first identifier URI
        (its app id when it has none) for bare Graph names."""
        identifier = self.identifier or next(iter(self.app.identifier_uris), self.app.app_id)
        return f"{identifier.rstrip('/')}/{name}"

    def render(self, name: str) -> str:
        if self.identifier is None or name in OIDC_SCOPES:
            return name
        return f"{self.identifier}/{name}"


@dataclass
class ScopeRequest:
    raw: str
    oidc: list[str] = field(default_factory=list)
    resources: list[ResourceScopes] = field(default_factory=list)

    def resource(self, directory: Directory) -> ResourceScopes:
        """The token's resource: the first one named, or Microsoft Graph when only OIDC scopes were."""
        if self.resources:
            return self.resources[0]
        graph = directory.app(GRAPH_APP_ID)
        if graph is None:  # pragma: no cover - Graph is always seeded
            raise ScopeError("unknown_resource", GRAPH_APP_ID)
        return ResourceScopes(graph, None)


def _canonical(app: Application, name: str) -> str | None:
    wanted = name.lower()
    return next((s for s in app.delegated_scopes if s.lower() == wanted), None)


def parse(directory: Directory, raw: str) -> ScopeRequest:
    """Resolve a space-separated scope parameter; raises :class:`ScopeError`."""
    request = ScopeRequest(raw)
    by_app: dict[str, ResourceScopes] = {}
    for token in raw.split():
        lowered = token.lower()
        if lowered in OIDC_SCOPES:
            if lowered not in request.oidc:
                request.oidc.append(lowered)
            continue
        if "/" in token:
            identifier, _, name = token.rpartition("/")
            if not identifier or not name or identifier.endswith(":/"):
                raise ScopeError("invalid", token)  # e.g. a bare resource URI without a scope name
            app = directory.resource_for(identifier)
            if app is None:
                raise ScopeError("unknown_resource", identifier)
        else:
            identifier, name = None, token
            app = directory.app(GRAPH_APP_ID)
            if app is None:  # pragma: no cover - Graph is always seeded
                raise ScopeError("unknown_resource", GRAPH_APP_ID)
        entry = by_app.get(app.app_id)
        if entry is None:
            entry = ResourceScopes(app, identifier)
            by_app[app.app_id] = entry
            request.resources.append(entry)
        if name.lower() == ".default":
            if entry.names:
                raise ScopeError("default_mixed", token, app)
            entry.default = True
            continue
        if entry.default:
            raise ScopeError("default_mixed", token, app)
        canonical = _canonical(app, name)
        if canonical is None:
            raise ScopeError("unknown_scope", token, app)
        if canonical not in entry.names:
            entry.names.append(canonical)
    return request


def admin_only(missing: dict[str, set[str]]) -> bool:
    """Whether any missing delegated scope needs an administrator's consent."""
    return any(scopes & ADMIN_ONLY_SCOPES.get(app_id, frozenset()) for app_id, scopes in missing.items())
