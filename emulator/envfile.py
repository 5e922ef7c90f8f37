"""The env file the emulator writes once it is listening: the app's own setting names, dotenv syntax."""

from __future__ import annotations

import os
from pathlib import Path

from emulator.directory.seed import CERTIFICATE_NAME, SECRET_NAME, SESSION_KEY_NAME
from emulator.directory.seed_spa import spa_client
from emulator.state import EmulatorState


def env_values(state: EmulatorState) -> dict[str, str]:
    """Every key the app and the tests need. The app's client secret is deliberately absent: it lives
    only in the vault, read the way the app reads it."""
    c, ids = state.config, state.ids
    bundle = str(state.tls.bundle.resolve())
    return {
        "ENTRA_TENANT_ID": state.directory.tenant_id,
        "ENTRA_CLIENT_ID": ids.app.app_id,
        "ENTRA_AUTHORITY_HOST": c.authority_host,
        "KEY_VAULT_URL": f"{c.vault_origin}/",
        "ENTRA_CREDENTIAL_NAME": SECRET_NAME,
        "ENTRA_CERTIFICATE_CREDENTIAL_NAME": CERTIFICATE_NAME,
        "SESSION_KEY_NAME": SESSION_KEY_NAME,
        "GRAPH_ENDPOINT": c.graph_origin,
        "SHAREPOINT_SITE_URL": f"{c.sharepoint_origin}/sites/contoso",
        "IDENTITY_ENDPOINT": c.identity_endpoint,
        "IDENTITY_HEADER": state.identity_header,
        "REQUESTS_CA_BUNDLE": bundle,
        "SSL_CERT_FILE": bundle,
        "EMULATOR_URL": c.control_origin,
        "EMULATOR_CA_BUNDLE": bundle,
        "EMULATOR_MANAGED_IDENTITY_CLIENT_ID": ids.user_identity.app_id,
        "CALLER_CLIENT_ID": ids.caller.app_id,
        "CALLER_CLIENT_SECRET": ids.caller_secret,
        "CALLER_NOROLE_CLIENT_ID": ids.caller_norole.app_id,
        "CALLER_NOROLE_CLIENT_SECRET": ids.caller_norole_secret,
        # The single-page client (spa platform, pre-authorized for api://{ENTRA_CLIENT_ID}/access_as_user).
        "SPA_CLIENT_ID": spa_client(state.directory).app_id,
        "DEMO_ADMIN_USERNAME": ids.admin.user_principal_name,
        "DEMO_ADMIN_PASSWORD": ids.admin.password,
        "DEMO_USER_USERNAME": ids.member.user_principal_name,
        "DEMO_USER_PASSWORD": ids.member.password,
        # Not an app setting (tests choose their own scope): make run sets MAILBOX_SCOPE to it.
        "MAIL_READERS_GROUP_ID": ids.mail_readers,
    }


def _quote(value: str) -> str:
    if value and all(ch.isalnum() or ch in "-_.:/@+=~,!" for ch in value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def write_env_file(path: Path, values: dict[str, str]) -> None:
    """Write atomically (temp file + rename), readable by the owner only: it holds test credentials."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "# Written by the local tenant (python -m emulator). Do not edit: it is rewritten at each start.\n"
    body += "".join(f"{key}={_quote(value)}\n" for key, value in values.items())
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(body)
    os.replace(tmp, path)
