"""Single-flight for token requests: one request in progress per key, the callers that arrive meanwhile wait
for its outcome (the app's own tokens, :mod:`shared.identity.tokens`; exchanges on a person's behalf,
:mod:`shared.identity.on_behalf_of`)."""

from __future__ import annotations

import threading

from shared.core.errors import CredentialUnavailable, GraphFunctionsError


class Flight:
    """One token request in progress; ``what`` names it in the 503 of a caller that waited too long."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._done = threading.Event()
        self._token: str | None = None
        self._error: GraphFunctionsError | None = None

    def finish(self, token: str | None = None, error: GraphFunctionsError | None = None) -> None:
        """Hand every waiter the token, or the error (exactly one of the two)."""
        self._token, self._error = token, error
        self._done.set()

    def wait(self, timeout: float) -> str:
        """The token the request got.

        Raises:
            GraphFunctionsError: the request's own error.
            CredentialUnavailable: no outcome within ``timeout`` seconds (503, retry after 5 s).
        """
        if not self._done.wait(timeout):
            raise CredentialUnavailable(f"Waited too long for {self._what}", retry_after=5)
        if self._error is not None:
            raise self._error
        if self._token is None:  # finish() sets one of the two; kept for the type checker
            raise CredentialUnavailable(
                f"{self._what[:1].upper()}{self._what[1:]} ended without a token", retry_after=5
            )
        return self._token
