"""People's sign-in: the MSAL client, flows in progress, sessions and their cache merge, delegated tokens
(which answer claims challenges themselves), the person a session names and the re-confirmation of their
roles, and the pages' sign-in steps."""

from shared.signin.client import SignInClient, callback_error
from shared.signin.delegated import DelegatedTokens
from shared.signin.flows import FlowStore
from shared.signin.people import csrf_token, current_session, person_of, verify_csrf
from shared.signin.roles import ROLE_CHECK_SECONDS, RoleConfirmation
from shared.signin.sessions import Session, SessionClaims, SessionStore
from shared.signin.web import SignInServices, complete_sign_in, sign_in_redirect, sign_out

__all__ = [
    "ROLE_CHECK_SECONDS",
    "DelegatedTokens",
    "FlowStore",
    "RoleConfirmation",
    "Session",
    "SessionClaims",
    "SessionStore",
    "SignInClient",
    "SignInServices",
    "callback_error",
    "complete_sign_in",
    "csrf_token",
    "current_session",
    "person_of",
    "sign_in_redirect",
    "sign_out",
    "verify_csrf",
]
