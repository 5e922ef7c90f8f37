"""No secret and no token in any log written during the session.

Runs last (tests/conftest.py orders it; in a parallel run, last on its worker, and the controller scans
every worker's evidence again once all have finished): by then ``evidence`` holds the log of every host the
session started (devhost output, which is also the app's log), the output of ``make run``, every token
issued to this process, and the secrets: the app's client secret as the app reads it (vault, managed
identity), rotated secrets, the certificate as PFX and its private key, the callers' secrets and the demo
passwords.
"""

from __future__ import annotations

import re

import pytest

from emulator.directory.seed_mail import HOSTILE_SUBJECTS, PLAIN_SUBJECTS
from tests.devhost.fixtures import DevHostProcess
from tests.integration.checks import call
from tests.integration.fixtures import AppHosts, Evidence
from tests.support.apphost import Caller
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.integration

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.")
CHUNK = 48


def _needles(secret: str) -> list[str]:
    """The secret itself and, for long material (PFX, key), every 48-character slice: a partial dump
    is a leak too."""
    if len(secret) <= 2 * CHUNK:
        return [secret]
    return [secret[i : i + CHUNK] for i in range(0, len(secret) - CHUNK + 1, CHUNK)]


def find_leaks(logs: dict[str, str], secrets: dict[str, str], tokens: set[str]) -> list[str]:
    leaks: list[str] = []
    for name, text in logs.items():
        for label, secret in secrets.items():
            if any(needle in text for needle in _needles(secret)):
                leaks.append(f"{name}: {label}")
        for token in tokens:
            parts = token.split(".")
            if token in text or (len(parts) == 3 and len(parts[1]) > 20 and parts[1] in text):
                leaks.append(f"{name}: a token issued in this session")
        for pattern in ("Bearer ey", "client_secret=", "client_assertion=", "BEGIN PRIVATE KEY"):
            if pattern in text:
                leaks.append(f"{name}: {pattern!r}")
        if JWT.search(text):
            leaks.append(f"{name}: something shaped like a JWT")
    return sorted(set(leaks))


def test_no_secret_or_token_in_any_log(app_host: DevHostProcess, caller: Caller, evidence: Evidence) -> None:
    # Traffic of this test's own, so the scan is meaningful even when run alone.
    assert call(app_host, "/api/users", caller.token(), {"top": "3"}).status_code == 200
    assert call(app_host, "/api/users", "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ4In0.c2ln").status_code == 401

    logs = {
        str(p): p.read_text(encoding="utf-8", errors="replace") for p in evidence.all_logs() if p.exists()
    }
    assert str(app_host.log_path) in logs and "GET /api/users 200" in logs[str(app_host.log_path)]
    assert evidence.secrets and all(len(value) >= 8 for value in evidence.secrets.values())
    tokens = {token for token in evidence.all_tokens() if len(token) > 40}
    assert tokens

    # The scanner finds what it looks for (a planted secret, a token's payload, a slice of the PFX).
    secret_label = next(label for label in evidence.secrets if "client secret" in label)
    pfx_label = next(label for label in evidence.secrets if "PFX" in label)
    some_token = next(iter(tokens))
    planted = {
        "secret": f"x {evidence.secrets[secret_label]} y",
        "payload": f"claims {some_token.split('.')[1]} end",
        "pfx-slice": f"...{evidence.secrets[pfx_label][CHUNK * 3 : CHUNK * 5]}...",
    }
    assert [leak.split(":")[0] for leak in find_leaks(planted, evidence.secrets, tokens)] == [
        "payload", "pfx-slice", "secret",
    ]  # fmt: skip

    assert find_leaks(logs, evidence.secrets, tokens) == []


def test_mail_reads_log_one_audit_line_and_no_mail_content(
    app_hosts: AppHosts, local_tenant: LocalTenant, caller: Caller, evidence: Evidence
) -> None:
    """Mail reads write their structured audit line, and no subject, preview, body or correspondent's
    address reaches any log of the session (the hostile seeded subjects included)."""
    host = app_hosts.start(local_tenant, "logscan-mail", overrides={"MAILBOX_SCOPE": "*"})
    token = caller.token()
    mailbox = local_tenant.env["DEMO_USER_USERNAME"]
    listing = call(host, f"/api/users/{mailbox}/messages", token, {"top": "50"})
    assert listing.status_code == 200
    messages = listing.json()["value"]
    one = call(host, f"/api/users/{mailbox}/messages/{messages[0]['id']}", token)
    assert one.status_code == 200
    body = one.json()["body"]

    log = host.log_path.read_text(encoding="utf-8", errors="replace")
    audit_lines = [line for line in log.splitlines() if "mail audit {" in line]
    assert len(audit_lines) == 2 and listing.headers["x-request-id"] in audit_lines[0]
    content = {m["subject"] for m in messages if m["subject"]} | {
        m["bodyPreview"] for m in messages if m["bodyPreview"]
    }
    content |= {line for line in body.splitlines() if len(line) > 12}
    content |= set(HOSTILE_SUBJECTS) | set(PLAIN_SUBJECTS)
    addresses = {m["from"]["address"] for m in messages if m["from"] and m["from"]["address"]} - {
        mailbox.lower()
    }
    logs = {
        str(p): p.read_text(encoding="utf-8", errors="replace") for p in evidence.all_logs() if p.exists()
    }
    # A sender who is also a user of the tenant may be a mailbox read elsewhere in the session: as the
    # mailbox (the audit line's "mailbox", the request path) it is no correspondent.
    # The audit line names it by the path's form ("mailbox") and by its UPN ("mailboxUpn").
    read = {
        m.group(1).lower()
        for text in logs.values()
        for m in re.finditer(r'"mailbox(?:Upn)?":"([^"]+)"', text)
    }
    addresses = {address for address in addresses if address.lower() not in read}
    leaks = sorted(
        f"{name}: {needle[:40]!r}"
        for name, text in logs.items()
        for needle in content | addresses
        if needle in text
    )
    assert leaks == []
