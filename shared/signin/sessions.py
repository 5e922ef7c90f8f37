"""Server-side sessions of signed-in people, in Azure Table Storage (``SESSION_TABLE``).

Any instance serves any request: the browser holds only an opaque 256-bit id (``secrets.token_urlsafe(32)``,
43 characters, whatever the token cache weighs); the row holds the rest. The row key is the id's SHA-256,
so a table reader cannot present a row as a cookie. Everything but the times is sealed (AES-256-GCM, the
session key ring, the row key as associated data): the person's MSAL ``SerializableTokenCache`` (compressed,
split over 64 KiB binary properties) and the claims the pages show (no tokens).

Expiry: idle (``SESSION_IDLE_MINUTES``, measured from the last write of ``last_seen``, which is coarsened to
one write per :func:`touch_interval`) and absolute (``SESSION_MAX_AGE_HOURS`` from sign-in, never extended).
An expired row is deleted when met; the cleanup timer deletes the rest (:meth:`SessionStore.purge_expired`).

Concurrency: every write is conditioned on the ETag read (``If-Match``). A 412 re-reads the row and
re-applies the change to the fresher record (:func:`~shared.signin.cache_merge.merge_token_caches` for
token caches), a few times at most; a session deleted meanwhile (sign-out) is never written back.

Storage failures raise ``StorageUnavailable`` (503, ``Retry-After``); the vault failing with no key cached
raises ``CredentialUnavailable``. Neither deletes anything.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import secrets
import zlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from shared.core.errors import GraphFunctionsError, StorageUnavailable
from shared.identity.key_ring import SessionKeyRing, UnreadableRecordError, associated_data
from shared.signin.cache_merge import merge_token_caches, without_access_tokens
from shared.signin.person_sessions import PersonSessions
from shared.signin.session_records import Session, SessionClaims
from shared.storage.tables import (
    EnsuredTable,
    Now,
    ValueTooLargeError,
    hashed_key,
    join_binary,
    partition_of,
    purge_rows,
    split_binary,
    storage_call,
    utcnow,
)

if TYPE_CHECKING:
    from azure.data.tables import TableClient

# Session and SessionClaims live in session_records (this module stays about the store) and are still
# imported from here.
__all__ = [
    "MAX_ATTEMPTS",
    "TOUCH_SECONDS",
    "Mutation",
    "Session",
    "SessionClaims",
    "SessionStore",
    "touch_interval",
]

logger = logging.getLogger(__name__)

UTC = datetime.UTC
#: Writes of an unchanged session are at most this far apart (last_seen is coarsened to it).
TOUCH_SECONDS = 300
#: Conditional writes tried before giving up with 503 (each 412 means another request just wrote).
MAX_ATTEMPTS = 5
_SCHEMA = 1
_KIND = "session"
_DATA = "Data"
# What token_urlsafe(32) produces (43 characters); some slack, nothing a cookie cannot carry.
_SESSION_ID = r"^[A-Za-z0-9_-]{32,128}$"


Mutation = Callable[[Session], Session | None]


def touch_interval(idle_minutes: int) -> float:
    """Seconds between writes of an unchanged session: :data:`TOUCH_SECONDS`, or a quarter of the idle
    timeout when that is shorter, so coarsening can never expire a session in use."""
    return min(float(TOUCH_SECONDS), idle_minutes * 60 / 4)


class SessionStore:
    """Sessions in one table. Thread-safe; one per process (:meth:`shared.app.services.Runtime.sessions`)."""

    def __init__(
        self,
        table: EnsuredTable,
        keys: SessionKeyRing,
        *,
        idle_minutes: int,
        max_age_hours: int,
        now: Now = utcnow,
    ) -> None:
        self._table = table
        self._keys = keys
        self._idle = datetime.timedelta(minutes=idle_minutes)
        self._max_age = datetime.timedelta(hours=max_age_hours)
        self._touch = datetime.timedelta(seconds=touch_interval(idle_minutes))
        self._now = now
        self._what = f"using the session table '{table.name}'"

    # -- public API -------------------------------------------------------------------------------------

    def create(self, claims: SessionClaims, token_cache: str) -> Session:
        """Store a new session for a person who just signed in; its ``id`` goes in the cookie. Claims
        without ``roles_checked`` get the creation time (their roles come from the sign-in's ID token).

        Raises:
            StorageUnavailable, CredentialUnavailable, ConfigurationError.
        """
        from azure.core.exceptions import ResourceExistsError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        now = self._now()
        if not claims.roles_checked:
            claims = claims._replace(roles_checked=now.timestamp())
        for _ in range(3):  # a collision of 256-bit random ids does not happen; never loop forever anyway
            session = Session(
                id=secrets.token_urlsafe(32),
                claims=claims,
                token_cache=token_cache,
                created=now,
                last_seen=now,
                key_version="",
                etag="",
            )
            entity, version = self._entity(session)
            try:
                with storage_call(self._what):
                    metadata = self._client().create_entity(entity)
            except ResourceExistsError:
                continue
            PersonSessions(self._table).add(
                claims.tid, claims.oid, str(entity["RowKey"]), now + self._max_age
            )
            logger.info("Session created for object id %s", claims.oid)
            return session._replace(key_version=version, etag=str(metadata["etag"]))
        raise StorageUnavailable("Could not store a new session (id collisions)")

    def load(self, session_id: str | None) -> Session | None:
        """The session the cookie names, or None: no or malformed id, unknown, tampered, undecryptable
        (retired key version), or expired (the row is then deleted).

        Raises:
            StorageUnavailable, CredentialUnavailable: nothing is deleted then.
        """
        if not session_id or not re.fullmatch(_SESSION_ID, session_id):
            return None
        return self._read(session_id)

    def save(
        self, session: Session, *, token_cache: str | None = None, claims: SessionClaims | None = None
    ) -> Session | None:
        """Persist this request's changes to ``session`` (call once, at the end of the request).

        Pass ``token_cache`` (``cache.serialize()``) when MSAL changed the cache (``has_state_changed``).
        Writes only when the cache or claims changed or ``last_seen`` is due (:func:`touch_interval`);
        otherwise returns ``session`` unchanged. On a concurrent write, merges this request's cache
        changes into the fresher record. Returns the stored session, or None when it was deleted or
        expired meanwhile (the person is signed out: do not recreate it).

        Raises:
            StorageUnavailable: storage failing, or the row kept changing (:data:`MAX_ATTEMPTS`).
            CredentialUnavailable, ConfigurationError.
        """
        mine = session.token_cache if token_cache is None else token_cache
        new_claims = claims if claims is not None else session.claims
        changed = mine != session.token_cache or new_claims != session.claims
        if not changed and self._now() - session.last_seen < self._touch:
            return session

        def mutate(current: Session) -> Session | None:
            if current.etag == session.etag:
                return current._replace(token_cache=mine, claims=new_claims)
            if not changed and self._now() - current.last_seen < self._touch:
                return None  # only a touch, and the concurrent writer just touched it: nothing to write
            cache = merge_token_caches(session.token_cache, mine, current.token_cache)
            return current._replace(
                token_cache=cache, claims=claims if claims is not None else current.claims
            )

        return self._write_loop(session, mutate)

    def update(self, session_id: str, mutate: Mutation) -> Session | None:
        """Read the session, apply ``mutate`` (returns the changed session, or None for no change) and write
        it conditionally; on a concurrent write re-read and re-apply. Returns the stored session, or None
        when there is none (unknown, expired, deleted meanwhile).

        Raises:
            StorageUnavailable, CredentialUnavailable, ConfigurationError.
        """
        current = self.load(session_id)
        if current is None:
            return None
        return self._write_loop(current, mutate)

    def delete(self, session_id: str | None) -> None:
        """Delete the session (sign-out). Idempotent.

        Raises:
            StorageUnavailable.
        """
        if not session_id or not re.fullmatch(_SESSION_ID, session_id):
            return
        row = hashed_key(session_id)
        with storage_call(self._what):
            self._client().delete_entity(partition_of(row), row)

    def end_for_person(self, tenant_id: str, object_id: str) -> int:
        """End every session of the person (:mod:`shared.signin.person_sessions`); how many ended.

        Raises:
            StorageUnavailable.
        """
        index = PersonSessions(self._table)
        index.backfill(_KIND, self._owner)  # sessions older than the index: found once, then indexed
        return index.end_all(tenant_id, object_id)

    def _owner(self, row: str, entity: Mapping[str, Any]) -> tuple[str, str, datetime.datetime] | None:
        """A session row's person (tenant, object id) and absolute expiry, for the person index's backfill;
        None when the row does not open. The row key is the associated data, so no cookie is needed."""
        session = self._open("", row, entity, "")
        if session is None:
            return None
        return session.claims.tid, session.claims.oid, session.created + self._max_age

    def purge_expired(self, now: datetime.datetime | None = None, *, page_size: int = 100) -> int:
        """Delete every session expired at ``now`` (default: now); returns how many were deleted. A row
        written since the query (its ETag changed) is left alone.

        Raises:
            StorageUnavailable.
        """
        return purge_rows(self._client(), now or self._now(), self._what, page_size=page_size)

    # -- rows -------------------------------------------------------------------------------------------

    def _client(self) -> TableClient:
        return self._table.client()

    def _expired(self, session: Session, now: datetime.datetime) -> bool:
        return now - session.last_seen >= self._idle or now - session.created >= self._max_age

    def _expires_at(self, session: Session) -> datetime.datetime:
        return min(session.last_seen + self._idle, session.created + self._max_age)

    def _entity(self, session: Session) -> tuple[dict[str, Any], str]:
        row = hashed_key(session.id)
        payload = {
            "schema": _SCHEMA,
            "claims": session.claims.to_json(),
            "cache": session.token_cache,
            "created": session.created.timestamp(),
            "last_seen": session.last_seen.timestamp(),
        }
        sealed = self._keys.seal(_compress(payload), aad=associated_data(_KIND, _SCHEMA, row))
        try:
            data = split_binary(sealed.blob, _DATA)
        except ValueTooLargeError:
            # Access tokens can always be fetched again with the refresh token: drop them, keep the session.
            logger.warning("Session record too large; storing it without its access tokens")
            lean = {**payload, "cache": without_access_tokens(session.token_cache)}
            sealed = self._keys.seal(_compress(lean), aad=associated_data(_KIND, _SCHEMA, row))
            try:
                data = split_binary(sealed.blob, _DATA)
            except ValueTooLargeError as exc:
                raise GraphFunctionsError(
                    "The session's token cache is too large to store", code="session_too_large"
                ) from exc
        entity = {
            "PartitionKey": partition_of(row),
            "RowKey": row,
            "Kind": _KIND,
            "KeyVersion": sealed.version,
            "Created": session.created,
            "LastSeen": session.last_seen,
            "ExpiresAt": self._expires_at(session),
            **data,
        }
        return entity, sealed.version

    def _read(self, session_id: str) -> Session | None:
        from azure.core.exceptions import ResourceNotFoundError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        row = hashed_key(session_id)
        try:
            with storage_call(self._what):
                entity = self._client().get_entity(partition_of(row), row)
        except ResourceNotFoundError:
            return None
        etag = str(entity.metadata["etag"])
        session = self._open(session_id, row, entity, etag)
        if session is None or self._expired(session, self._now()):
            self._delete_row(row, etag, reason="unreadable" if session is None else "expired")
            return None
        return session

    def _open(self, session_id: str, row: str, entity: Mapping[str, Any], etag: str) -> Session | None:
        blob, version = join_binary(entity, _DATA), entity.get("KeyVersion")
        if blob is None or not isinstance(version, str) or entity.get("Kind") != _KIND:
            return None
        try:
            payload = json.loads(
                zlib.decompress(self._keys.open(version, blob, aad=associated_data(_KIND, _SCHEMA, row)))
            )
            if not isinstance(payload, dict) or payload.get("schema") != _SCHEMA:
                return None
            cache = payload["cache"]
            if not isinstance(cache, str):
                return None
            return Session(
                id=session_id,
                claims=SessionClaims.from_json(payload["claims"]),
                token_cache=cache,
                created=datetime.datetime.fromtimestamp(float(payload["created"]), UTC),
                last_seen=datetime.datetime.fromtimestamp(float(payload["last_seen"]), UTC),
                key_version=version,
                etag=etag,
            )
        except UnreadableRecordError:
            logger.warning("A session row failed to open (tampered, or sealed by a retired key version)")
            return None
        except (zlib.error, ValueError, KeyError, TypeError):
            logger.warning("A session row holds a malformed record")
            return None

    def _delete_row(self, row: str, etag: str, *, reason: str) -> None:
        from azure.core import MatchConditions  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)
        from azure.core.exceptions import ResourceModifiedError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        logger.info("Deleting a %s session row", reason)
        try:
            with storage_call(self._what):
                self._client().delete_entity(
                    partition_of(row), row, etag=etag, match_condition=MatchConditions.IfNotModified
                )
        except ResourceModifiedError:
            pass  # rewritten meanwhile: whoever wrote it decides
        except StorageUnavailable:
            pass  # the answer is "no session" either way; the cleanup timer deletes it later

    def _write_loop(self, current: Session, mutate: Mutation) -> Session | None:
        from azure.core import MatchConditions  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)
        from azure.data.tables import UpdateMode  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        for attempt in range(MAX_ATTEMPTS):
            changed = mutate(current)
            if changed is None:
                return current
            now = self._now()
            if self._expired(current, now):
                return None
            target = changed._replace(last_seen=now, created=current.created)
            entity, version = self._entity(target)
            try:
                with storage_call(self._what):
                    metadata = self._client().update_entity(
                        entity,
                        mode=UpdateMode.REPLACE,
                        etag=current.etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
                return target._replace(key_version=version, etag=str(metadata["etag"]))
            except ResourceNotFoundError:
                return None  # deleted meanwhile (sign-out): never written back
            except ResourceModifiedError:
                logger.info("Session written concurrently; re-reading (attempt %d)", attempt + 1)
                fresher = self._read(current.id)
                if fresher is None:
                    return None
                current = fresher
        raise StorageUnavailable("The session kept changing while being saved; retry the request")


def _compress(payload: Mapping[str, Any]) -> bytes:
    return zlib.compress(json.dumps(payload, separators=(",", ":")).encode("utf-8"), 6)
