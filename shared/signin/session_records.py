"""What a session holds, as loaded: the person's claims the pages show, and the session itself
(stored by :mod:`shared.signin.sessions`)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from shared.core.records import Record


class SessionClaims(Record):
    """Who is signed in: what the pages show and authorisation needs. Never tokens.

    ``roles_checked`` is when Entra last confirmed ``roles`` (POSIX seconds: the sign-in, then each
    re-confirmation, :mod:`shared.signin.roles`); 0 for a record that never recorded it (re-confirmed at
    once).
    """

    oid: str
    tid: str
    name: str | None = None
    preferred_username: str | None = None
    roles: tuple[str, ...] = ()
    roles_checked: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {**self._asdict(), "roles": list(self.roles)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SessionClaims:
        """Raises ValueError for a malformed record."""
        oid, tid = data.get("oid"), data.get("tid")
        roles = data.get("roles") or []
        if not isinstance(oid, str) or not isinstance(tid, str) or not isinstance(roles, list):
            raise ValueError("malformed session claims")
        name, upn, checked = data.get("name"), data.get("preferred_username"), data.get("roles_checked")
        return cls(
            oid=oid,
            tid=tid,
            name=name if isinstance(name, str) else None,
            preferred_username=upn if isinstance(upn, str) else None,
            roles=tuple(str(role) for role in roles),
            roles_checked=float(checked) if isinstance(checked, int | float) else 0.0,
        )


class Session(Record):
    """One session as loaded. ``id`` is the cookie value (held in memory only, never stored);
    ``token_cache`` is ``msal.SerializableTokenCache().serialize()`` text; ``etag`` is the row's version.
    ``repr`` leaves out the id, the token cache and the etag."""

    id: str
    claims: SessionClaims
    token_cache: str
    created: datetime.datetime
    last_seen: datetime.datetime
    key_version: str
    etag: str

    def __repr__(self) -> str:
        return (
            f"Session(claims={self.claims!r}, created={self.created!r}, last_seen={self.last_seen!r}, "
            f"key_version={self.key_version!r})"
        )
