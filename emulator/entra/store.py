"""Entra's own state: sign-in flows, authorization codes, refresh tokens, SSO sessions, used assertion ids.

Kept in ``state.stores["entra"]`` and replaced wholesale by the reset hook, so a reset forgets every code,
refresh token and browser session (cookies signed with the previous key stop being recognised).
Records hold ids (client id, user id), never model objects: a reset replaces the directory.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from emulator.clock import CLOCK
from emulator.state import EmulatorState

if TYPE_CHECKING:
    from emulator.entra.conditional_access import Policy

STORE_KEY = "entra"
_INSTALLED = "entra.installed"
#: Above this many entries a store is swept for expired records on the next insert.
_SWEEP_AT = 5_000
#: Lifetime of an SSO session (and of its cookie), seconds.
SESSION_MAX_AGE = 24 * 3600


@dataclass
class Flow:
    """One interactive request in progress (authorize or admin consent), named by an unguessable id.

    The id doubles as the CSRF token of the sign-in and consent forms: a POST must carry the id of a live
    flow in the expected stage.
    """

    id: str
    kind: str  # "authorize" | "adminconsent" (v2) | "adminconsent_v1"
    tenant: str  # the tenant path segment as sent (forms post back under it)
    tenant_kind: str  # "tenant" | "common" | "organizations"
    client_id: str
    redirect_uri: str
    response_mode: str  # query | fragment | form_post
    state: str | None
    scope: str  # the raw scope parameter
    expires_at: float
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    prompt: str | None = None
    login_hint: str | None = None
    client_info: bool = False
    claims: str | None = None  # the raw claims request (capabilities, a CAE challenge's nbf)
    stage: str = "signin"  # signin | mfa | consent
    user_id: str | None = None
    sid: str | None = None
    admin_required: bool = False  # the consent page can only be declined (AADSTS90094)


@dataclass
class AuthCode:
    client_id: str
    redirect_uri: str
    user_id: str
    scope: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    tenant_kind: str
    sid: str
    epoch: int
    issued_at: float
    expires_at: float
    redeemed: bool = False
    claims: str | None = None
    mfa: bool = False  # the sign-in completed multi-factor authentication
    auth_time: float = 0.0  # when the user signed in


@dataclass
class RefreshGrant:
    client_id: str
    user_id: str
    scope: str
    sid: str
    epoch: int  # the user's refresh_epoch when issued; a bump revokes it
    issued_at: float
    expires_at: float
    mfa: bool = False
    auth_time: float = 0.0


@dataclass
class Session:
    sid: str
    user_id: str
    epoch: int
    created: float
    mfa: bool = False


@dataclass
class EntraSettings:
    """Runtime knobs (control API ``PUT /_emulator/entra/settings``); None means the start-up value."""

    auth_code_lifetime: int | None = None
    refresh_token_lifetime: int | None = None
    flow_lifetime: int = 900
    #: Entra accepts a client assertion more than once (MSAL reuses one for about nine minutes), so replay
    #: detection is off by default; tests may turn it on to model a stricter server.
    reject_assertion_replay: bool = False


@dataclass
class EntraStore:
    flows: dict[str, Flow] = field(default_factory=dict)
    codes: dict[str, AuthCode] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshGrant] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    used_jti: dict[str, float] = field(default_factory=dict)  # "client_id:jti" -> assertion exp
    cookie_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    settings: EntraSettings = field(default_factory=EntraSettings)
    policies: list[Policy] = field(default_factory=list)  # Conditional Access (control API)

    def sweep(self, now: float | None = None) -> None:
        """Drop expired flows, codes, refresh tokens and jti records."""
        now = CLOCK.time() if now is None else now
        for table in (self.flows, self.codes, self.refresh_tokens):
            for key in [k for k, v in table.items() if v.expires_at < now]:
                del table[key]
        for key in [k for k, exp in self.used_jti.items() if exp < now]:
            del self.used_jti[key]
        for key in [k for k, s in self.sessions.items() if s.created + SESSION_MAX_AGE < now]:
            del self.sessions[key]

    def maybe_sweep(self) -> None:
        tables = (self.flows, self.codes, self.refresh_tokens, self.used_jti, self.sessions)
        if max(len(t) for t in tables) > _SWEEP_AT:
            self.sweep()


def install(state: EmulatorState) -> None:
    """Create the store and register the reset hook (once per state object)."""
    if state.stores.get(_INSTALLED):
        return
    state.stores[_INSTALLED] = True
    state.stores[STORE_KEY] = EntraStore()

    def reset() -> None:
        state.stores[STORE_KEY] = EntraStore()

    state.reset_hooks.append(reset)


def get_store(state: EmulatorState) -> EntraStore:
    """The current store (looked up per request: a reset replaces it)."""
    install(state)
    store: EntraStore = state.stores[STORE_KEY]
    return store


def new_id(prefix: str = "", nbytes: int = 32) -> str:
    return prefix + secrets.token_urlsafe(nbytes)
