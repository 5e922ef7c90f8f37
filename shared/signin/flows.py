"""Sign-in flows in progress, held by the browser that started them: MSAL's auth-code flow dict (PKCE
verifier, nonce, state) between ``/auth/login`` and ``/auth/callback``, sealed into the flow cookie.

Starting a sign-in needs no sign-in, so anyone can start as many as they like: nothing about a flow is
stored server-side, and a flood of anonymous requests costs Table Storage nothing (a row per request, as
an earlier version stored, let one client grow the table without bound).

* **Sealed.** :meth:`FlowStore.put` seals the flow (AES-256-GCM, the session key ring) with the SHA-256 of
  its ``state`` as associated data, and returns the cookie value. The PKCE verifier and nonce never leave
  the server in clear; a modified cookie does not open.
* **Bound to the browser.** :meth:`FlowStore.take` opens the cookie of the browser presenting the callback
  with the callback's ``state``: another browser's state (login CSRF: an attacker's ``state`` and code
  planted in a victim's browser) does not open this browser's cookie.
* **Short-lived.** The sealed payload carries its expiry (:data:`FLOW_LIFETIME_SECONDS`), checked on take
  whatever the cookie's own ``Max-Age``.
* **Used once.** Entra redeems an authorization code once (AADSTS54005), the code is bound to this flow's
  PKCE verifier and the ID token to its nonce, and the callback clears the cookie: a replayed callback
  fails at redemption (``sign_in_failed``) or finds no cookie (``auth_flow_mismatch``). The app needs no
  server-side record of it.
* **No vault read per request.** The cookie names the key version that sealed it; only the latest version
  or one this process holds opens it (:meth:`SessionKeyRing.open` ``known_only``).

``AUTH_FLOW_TABLE`` now only holds rows earlier versions stored; :meth:`FlowStore.purge_expired` (the
cleanup timer) deletes them.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import logging
import re
import zlib
from collections.abc import Mapping
from typing import Any

from shared.core.errors import AuthFlowMismatch, AuthFlowUnknown
from shared.core.records import Record
from shared.identity.key_ring import SessionKeyRing, UnreadableRecordError, associated_data
from shared.storage.tables import EnsuredTable, Now, hashed_key, purge_rows, utcnow

logger = logging.getLogger(__name__)

#: How long a sign-in may take between /auth/login and the callback.
FLOW_LIFETIME_SECONDS = 600
#: The longest flow cookie value (browsers keep at least 4096 bytes per cookie, name and attributes
#: included); a flow whose ``next`` would make it longer returns to ``/`` instead.
MAX_COOKIE_CHARS = 3600
_KIND = "authflow"
_SCHEMA = 2
# OAuth state as MSAL makes it (URL-safe random text); anything else cannot be ours.
_STATE = r"^[A-Za-z0-9._~-]{8,256}$"
# {key version}.{base64url of nonce || ciphertext || tag}
_COOKIE = r"^[0-9A-Za-z]{1,64}\.[A-Za-z0-9_-]{40,4000}$"
#: What MSAL's redemption does not need: the authorize URL (the longest part) is never stored.
_NOT_KEPT = frozenset({"auth_uri"})


class TakenFlow(Record):
    """A flow :meth:`FlowStore.take` handed out: MSAL's flow dict (for
    ``acquire_token_by_auth_code_flow``) and what the caller stored beside it. ``repr`` leaves the flow
    (its PKCE verifier, state and nonce) out."""

    flow: dict[str, Any]
    extra: dict[str, Any]

    def __repr__(self) -> str:
        return f"TakenFlow(extra={self.extra!r})"


class FlowStore:
    """Seals flows into the browser's flow cookie and opens them at the callback. Thread-safe; one per
    process (``Runtime.auth_flows``). ``table`` is ``AUTH_FLOW_TABLE``, only purged."""

    def __init__(self, table: EnsuredTable, keys: SessionKeyRing, *, now: Now = utcnow) -> None:
        self._table = table
        self._keys = keys
        self._now = now
        self._what = f"using the sign-in flow table '{table.name}'"

    def put(self, flow: Mapping[str, Any], *, extra: Mapping[str, Any] | None = None) -> str:
        """Seal ``flow`` (MSAL's ``initiate_auth_code_flow`` result, or any dict with a ``state``) and
        JSON-serialisable ``extra`` (e.g. the ``next`` path); returns the value of the browser's flow
        cookie. Stores nothing.

        Raises:
            ValueError: ``flow`` has no usable ``state`` (a programming error).
            CredentialUnavailable, ConfigurationError: the session key cannot be read.
        """
        state = flow.get("state")
        if not isinstance(state, str) or not re.fullmatch(_STATE, state):
            raise ValueError("the flow needs a URL-safe 'state' of 8-256 characters")
        kept = {key: value for key, value in flow.items() if key not in _NOT_KEPT}
        extra = dict(extra or {})
        cookie = self._seal(state, kept, extra)
        if len(cookie) > MAX_COOKIE_CHARS and "next" in extra:
            logger.info("A sign-in's next path is too long for the flow cookie; it returns to /")
            cookie = self._seal(state, kept, {**extra, "next": "/"})
        return cookie

    def take(self, state: str | None, cookie: str | None) -> TakenFlow:
        """The flow the browser's ``cookie`` holds for ``state``.

        Raises:
            AuthFlowUnknown: the state is malformed, or the flow expired.
            AuthFlowMismatch: no cookie, or one that does not open for ``state`` (another browser's
                state, a modified cookie, or sealed by a key version this process does not hold).
            CredentialUnavailable: no session key could be read at all.
        """
        if not state or not re.fullmatch(_STATE, state):
            raise AuthFlowUnknown("The sign-in callback carries no state this app issued")
        if not cookie or not re.fullmatch(_COOKIE, cookie):
            raise AuthFlowMismatch("This sign-in was started in another browser")
        version, _, body = cookie.partition(".")
        aad = associated_data(_KIND, _SCHEMA, hashed_key(state))
        try:
            blob = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            payload = json.loads(zlib.decompress(self._keys.open(version, blob, aad=aad, known_only=True)))
            flow, extra, expires = payload["flow"], payload["extra"], float(payload["expires"])
            if not isinstance(flow, dict) or not isinstance(extra, dict) or flow.get("state") != state:
                raise UnreadableRecordError("malformed flow")
        except (UnreadableRecordError, binascii.Error, zlib.error, ValueError, KeyError, TypeError):
            raise AuthFlowMismatch("This sign-in was started in another browser") from None
        if expires <= self._now().timestamp():
            raise AuthFlowUnknown("This sign-in took too long and expired")
        return TakenFlow(flow=flow, extra=extra)

    def purge_expired(self, now: datetime.datetime | None = None, *, page_size: int = 100) -> int:
        """Delete the flow rows earlier versions stored, once expired at ``now``; returns how many.

        Raises:
            StorageUnavailable.
        """
        return purge_rows(self._table.client(), now or self._now(), self._what, page_size=page_size)

    def _seal(self, state: str, flow: Mapping[str, Any], extra: Mapping[str, Any]) -> str:
        expires = self._now() + datetime.timedelta(seconds=FLOW_LIFETIME_SECONDS)
        payload = json.dumps(
            {"flow": dict(flow), "extra": dict(extra), "expires": expires.timestamp()}, separators=(",", ":")
        )
        sealed = self._keys.seal(
            zlib.compress(payload.encode("utf-8"), 6), aad=associated_data(_KIND, _SCHEMA, hashed_key(state))
        )
        return f"{sealed.version}.{base64.urlsafe_b64encode(sealed.blob).rstrip(b'=').decode('ascii')}"
