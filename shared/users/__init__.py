"""Directory users: query parsing and the users service (app-only or a person's delegated Graph)."""

from shared.graph.users import validate_user_id
from shared.users.service import UsersPage, UsersService, parse_get_query, parse_list_query

__all__ = ["UsersPage", "UsersService", "parse_get_query", "parse_list_query", "validate_user_id"]
