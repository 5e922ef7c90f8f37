"""Core of Graph Functions: settings, credentials, tokens, Graph client, caller auth and the HTTP layer.

Function triggers in ``blueprints/`` stay thin and call into this package. The exception types are
re-exported here so callers can catch them without knowing the module layout.
"""

from shared.core.errors import (
    BadRequest,
    ConfigurationError,
    CredentialUnavailable,
    Forbidden,
    GraphFunctionsError,
    NotFound,
    Unauthenticated,
    UpstreamError,
    UpstreamThrottled,
)
from shared.version import __version__

__all__ = [
    "BadRequest",
    "ConfigurationError",
    "CredentialUnavailable",
    "Forbidden",
    "GraphFunctionsError",
    "NotFound",
    "Unauthenticated",
    "UpstreamError",
    "UpstreamThrottled",
    "__version__",
]
