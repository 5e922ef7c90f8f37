"""Microsoft's clouds as the settings see them: the default authority and Graph hosts, and the authority
hosts MSAL treats as well known. Standard library only."""

from __future__ import annotations

__all__ = ["DEFAULT_AUTHORITY_HOST", "DEFAULT_GRAPH_ENDPOINT", "MICROSOFT_AUTHORITY_HOSTS"]

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_GRAPH_ENDPOINT = "https://graph.microsoft.com"

#: Entra authority hosts of Microsoft's clouds (the set MSAL treats as well known). For any other host,
#: e.g. a local emulator on 127.0.0.1, instance discovery against login.microsoftonline.com must be off.
MICROSOFT_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "sts.windows.net",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
        "login.microsoftonline.de",
        "login-us.microsoftonline.com",
        "login.microsoftonline.us",
        "login.usgovcloudapi.net",
        "login.sovcloud-identity.fr",
        "login.sovcloud-identity.de",
        "login.sovcloud-identity.sg",
    }
)
