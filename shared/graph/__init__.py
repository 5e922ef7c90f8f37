"""Microsoft Graph (and SharePoint REST): the client with its retry policy and claims-challenge answer,
Graph error mapping, and how users are addressed."""

from shared.graph.client import GraphClient, GraphPage
from shared.graph.config import GraphConfig
from shared.graph.token_source import ChallengeableTokenSource, TokenSource
from shared.graph.users import MAX_USER_ID_LENGTH, user_path, validate_user_id

__all__ = [
    "MAX_USER_ID_LENGTH",
    "ChallengeableTokenSource",
    "GraphClient",
    "GraphConfig",
    "GraphPage",
    "TokenSource",
    "user_path",
    "validate_user_id",
]
