"""Users as Graph addresses them: the id a caller may give (object id or userPrincipalName) and the Graph
path of one user. Shared by every capability that names a user (users, mail)."""

from __future__ import annotations

import re
from urllib.parse import quote

from shared.core.errors import BadRequest
from shared.core.patterns import GUID_PATTERN, UPN_PATTERN

#: Entra ID limits userPrincipalName to 113 characters (64 before the @).
MAX_USER_ID_LENGTH = 113


def validate_user_id(value: str) -> str:
    """A user's object id (GUID) or userPrincipalName; raises BadRequest for anything else."""
    if len(value) > MAX_USER_ID_LENGTH or not (
        re.fullmatch(GUID_PATTERN, value) or re.fullmatch(UPN_PATTERN, value)
    ):
        raise BadRequest(
            "id must be a user's object id (GUID) or userPrincipalName "
            f"(at most {MAX_USER_ID_LENGTH} characters)"
        )
    return value


def user_path(user_id: str) -> str:
    """Graph path of one user. A UPN starting with ``$`` must use the key syntax ``users('...')``."""
    if user_id.startswith("$"):
        return "users('" + quote(user_id.replace("'", "''"), safe="@$") + "')"
    return "users/" + quote(user_id, safe="@")
