"""A token source that asks for a named delegated Graph permission when the Graph client asks for
``{GRAPH_ENDPOINT}/.default`` (a person's session reading mail needs ``Mail.Read``, which the sign-in did not
ask for: the refresh token obtains it, or Entra asks for consent)."""

from __future__ import annotations

from shared.graph.token_source import ChallengeableTokenSource, TokenSource


class PermissionScoped:
    """``inner`` with Graph's ``.default`` replaced by ``permission`` (qualified with ``graph_endpoint``).
    Claims challenges pass through when ``inner`` can answer them."""

    def __init__(self, inner: TokenSource, *, graph_endpoint: str, permission: str) -> None:
        self._inner = inner
        self._default = f"{graph_endpoint}/.default"
        self._scope = f"{graph_endpoint}/{permission}"

    def _mapped(self, scope: str) -> str:
        return self._scope if scope == self._default else scope

    def get_token(self, scope: str) -> str:
        return self._inner.get_token(self._mapped(scope))

    def invalidate(self, scope: str, token: str | None = None) -> None:
        self._inner.invalidate(self._mapped(scope), token)

    def require_claims(self, claims: str, scope: str) -> None:
        if isinstance(self._inner, ChallengeableTokenSource):
            self._inner.require_claims(claims, self._mapped(scope))
