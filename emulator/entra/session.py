"""The browser's single sign-on session: an HMAC-signed cookie naming a server-side session.

A session stops being valid when the user signs out, is disabled, has their sign-in sessions revoked
(``refresh_epoch`` bumped through the control API) or when the emulator is reset (new signing key).
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request
from starlette.responses import Response

from emulator.clock import CLOCK
from emulator.directory.model import User
from emulator.entra.store import SESSION_MAX_AGE, Session, get_store, new_id
from emulator.state import EmulatorState

COOKIE = "ESTSAUTH"
MAX_AGE = SESSION_MAX_AGE


def _sign(key: bytes, sid: str) -> str:
    return hmac.new(key, sid.encode(), hashlib.sha256).hexdigest()


def current(state: EmulatorState, request: Request) -> tuple[Session, User] | None:
    raw = request.cookies.get(COOKIE, "")
    sid, _, signature = raw.partition(".")
    store = get_store(state)
    if not sid or not hmac.compare_digest(signature.encode(), _sign(store.cookie_key, sid).encode()):
        return None
    session = store.sessions.get(sid)
    if session is None or session.created + MAX_AGE < CLOCK.time():
        return None
    user = state.directory.user(session.user_id)
    if user is None or not user.account_enabled or user.refresh_epoch != session.epoch:
        return None
    return session, user


def start(state: EmulatorState, user: User) -> tuple[Session, str]:
    """A new session for ``user``; returns it and the cookie value."""
    store = get_store(state)
    store.maybe_sweep()
    session = Session(sid=new_id("", 16), user_id=user.id, epoch=user.refresh_epoch, created=CLOCK.time())
    store.sessions[session.sid] = session
    return session, f"{session.sid}.{_sign(store.cookie_key, session.sid)}"


def end(state: EmulatorState, request: Request) -> None:
    raw = request.cookies.get(COOKIE, "")
    get_store(state).sessions.pop(raw.partition(".")[0], None)


def set_cookie(response: Response, value: str) -> None:
    response.set_cookie(COOKIE, value, max_age=MAX_AGE, path="/", secure=True, httponly=True, samesite="none")


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="none")
