"""The identifier patterns the app checks: directory GUIDs and userPrincipalNames, defined once.

Each pattern is kept as unanchored source text that means the same in Python's ``re`` and in the ECMA 262
regular expressions of the OpenAPI document (only classes, groups, alternation and counted repeats). Match
with ``re.fullmatch`` (``$`` would also accept a trailing newline); ``re`` compiles a pattern on first use
and keeps it, so importing the app compiles none (cold start).
"""

from __future__ import annotations

import re

#: A GUID in its 8-4-4-4-12 hexadecimal form, any case: tenant, client and object ids.
GUID_PATTERN = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
#: A userPrincipalName: up to 64 characters Entra ID allows before the ``@``, then a DNS domain name.
UPN_PATTERN = f"[A-Za-z0-9'._!#^~+$&-]{{1,64}}@{_LABEL}(?:\\.{_LABEL})*"


def is_guid(value: str) -> bool:
    """True when the whole of ``value`` is a GUID."""
    return re.fullmatch(GUID_PATTERN, value) is not None
