"""What the Graph client needs from a token source: the app's own tokens
(:class:`shared.identity.tokens.TokenProvider`) or a person's delegated ones
(:class:`shared.signin.delegated.DelegatedTokens`, which can also answer a claims challenge)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


class TokenSource(Protocol):
    """What the client needs from :class:`shared.identity.tokens.TokenProvider`."""

    def get_token(self, scope: str) -> str: ...

    def invalidate(self, scope: str, token: str | None = None) -> None: ...


@runtime_checkable
class ChallengeableTokenSource(TokenSource, Protocol):
    """A token source that can answer a claims challenge (a person's delegated tokens,
    :class:`shared.signin.delegated.DelegatedTokens`): after Graph's ``insufficient_claims`` challenge the
    client calls :meth:`require_claims` and sends the request once more with the token it then gets."""

    def require_claims(self, claims: str, scope: str) -> None: ...
