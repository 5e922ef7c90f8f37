"""``make run``: the app on http://localhost:7071 against the local tenant and Azurite.

Starts, in order: Azurite (storage for the Functions host: timers, later sessions and reports), the
local tenant (``python -m emulator``, state under ``.local/tenant``, env file ``.local/tenant.env``),
then the Functions host: ``func start`` where Azure Functions Core Tools is installed, else
``python -m devhost`` on the same files. ``local.settings.json`` is written from the tenant's env
file when absent; an existing one keeps every value it has and gets the keys it lacks (settings
added since it was written, e.g. ``MAIL_INGESTION_MODE``), named in the output.
Ctrl+C (or SIGTERM) stops everything this started, in reverse order.

``ENTRA_TENANCY=multi`` in ``local.settings.json`` (or ``--tenancy multi``) makes the local tenant's
registration of the app multi-tenant (``--sign-in-audience AzureADMultipleOrgs``) and registers the
onboarding redirect URI, so an administrator of the seeded customer organisation onboards it at
``/onboard`` out of the box (docs/multi-tenant.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parents[1]

#: Keys copied from the tenant's env file into local.settings.json (the app's own settings).
APP_KEYS = (
    "ENTRA_TENANT_ID",
    "ENTRA_CLIENT_ID",
    "ENTRA_AUTHORITY_HOST",
    "KEY_VAULT_URL",
    "ENTRA_CREDENTIAL_NAME",
    "SESSION_KEY_NAME",
    "GRAPH_ENDPOINT",
    "SHAREPOINT_SITE_URL",
    "SPA_CLIENT_ID",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
)
#: Keys forced into the host's environment. Core Tools (and devhost) let existing environment variables
#: win over local.settings.json, and this machine presets the CA variables to the system bundle, which
#: does not hold the local CA: so the combined bundle must be exported, not only written to the file.
FORCED_ENV = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "IDENTITY_ENDPOINT", "IDENTITY_HEADER")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m scripts.run_local", description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=7071, help="the app's HTTP port (default 7071)")
    p.add_argument(
        "--tenant-port", type=int, default=8443, help="first port of the local tenant (default 8443)"
    )
    p.add_argument(
        "--azurite-port", type=int, default=10000, help="first of Azurite's three ports (default 10000)"
    )
    p.add_argument("--local-dir", type=Path, default=ROOT / ".local", help="local state (default .local/)")
    p.add_argument("--settings", type=Path, default=ROOT / "local.settings.json")
    p.add_argument("--users", type=int, default=25, help="users in the local tenant (default 25)")
    p.add_argument(
        "--tenancy",
        choices=["single", "multi"],
        default=None,
        help="ENTRA_TENANCY (default: local.settings.json's, else single)",
    )
    p.add_argument(
        "--host",
        choices=["auto", "func", "devhost"],
        default="auto",
        help="Functions host: func if on PATH (auto), or force one",
    )
    return p.parse_args(argv)


def tenancy_of(path: Path, chosen: str | None) -> str:
    """The tenancy to run: ``chosen`` (``--tenancy``), else ``ENTRA_TENANCY`` of the settings file, else
    single. An unreadable settings file counts as single (the app reports its own problems)."""
    if chosen is not None:
        return chosen
    try:
        values = json.loads(path.read_text()).get("Values", {})
    except (OSError, ValueError, AttributeError):
        return "single"
    value = str(values.get("ENTRA_TENANCY") or "single").strip().lower() if isinstance(values, dict) else ""
    return "multi" if value == "multi" else "single"


def tenant_args(tenancy: str) -> list[str]:
    """The local tenant's extra arguments: its registration of the app follows the tenancy."""
    return ["--sign-in-audience", "AzureADMultipleOrgs"] if tenancy == "multi" else []


def register_onboarding(env: dict[str, str], port: int) -> None:
    """Register the app's onboarding redirect URI (``/onboard/callback``) on the local tenant."""
    import requests

    control = f"{env['EMULATOR_URL']}/_emulator/apps/{env['ENTRA_CLIENT_ID']}"
    verify = env["EMULATOR_CA_BUNDLE"]
    current = requests.get(control, verify=verify, timeout=30).json()["redirectUris"]
    wanted = [f"http://{host}:{port}/onboard/callback" for host in ("localhost", "127.0.0.1")]
    missing = [uri for uri in wanted if uri not in current]
    if missing:
        body = {"redirectUris": [*current, *missing]}
        requests.patch(control, json=body, verify=verify, timeout=30).raise_for_status()


#: The local vault's secret with the rich notifications' certificate (docs/change-notifications.md).
NOTIFICATION_CERTIFICATE = "graph-notify-cert"


def store_notification_certificate(env: dict[str, str]) -> None:
    """A self-signed certificate + key (PEM) in the local vault, as an operator stores one in Key Vault, so
    mail subscriptions are rich out of the box (a new version each start: a rotation the timer follows)."""
    import datetime

    import requests
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "graph-functions-notifications")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    url = f"{env['EMULATOR_URL']}/_emulator/vault/secrets/{NOTIFICATION_CERTIFICATE}"
    reply = requests.put(url, json={"value": pem.decode()}, verify=env["EMULATOR_CA_BUNDLE"], timeout=30)
    reply.raise_for_status()


def local_settings(
    env: dict[str, str], storage: str, https_port: int, tenancy: str = "single"
) -> dict[str, Any]:
    """The ``local.settings.json`` ``make run`` writes: the sample with the tenant's values and Azurite."""
    sample: dict[str, Any] = json.loads((ROOT / "local.settings.sample.json").read_text())
    values: dict[str, Any] = dict(sample["Values"])
    values.update({k: env[k] for k in APP_KEYS if k in env})
    values["AzureWebJobsStorage"] = storage
    values["ENTRA_CREDENTIAL"] = "keyvault"
    values["ENTRA_TENANCY"] = tenancy
    # Production's default reads no mailbox; the local tenant's "Mail Readers" group makes mail readable
    # out of the box (the demo member's, not the demo admin's own), still through a real scope check.
    values["MAILBOX_SCOPE"] = env.get("MAIL_READERS_GROUP_ID", "")
    # Mail ingestion out of the box: the local tenant posts notifications to devhost's HTTPS listener (Graph
    # calls https only; the local CA signs the listener's certificate), so a message added to the demo
    # member's mailbox becomes a mail-events message.
    values["MAIL_INGESTION_MODE"] = "webhook"
    values["NOTIFICATION_BASE_URL"] = f"https://localhost:{https_port}"
    # Rich notifications: the message comes in the notification, encrypted for this certificate.
    values["NOTIFICATION_CERTIFICATE_NAME"] = NOTIFICATION_CERTIFICATE
    sample["Values"] = values
    return sample


def _write(path: Path, settings: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(settings, indent=2) + "\n")
    os.replace(tmp, path)


def write_local_settings(
    path: Path, env: dict[str, str], storage: str, https_port: int, tenancy: str = "single"
) -> None:
    _write(path, local_settings(env, storage, https_port, tenancy))


def add_missing_settings(path: Path, fresh: dict[str, Any]) -> list[str]:
    """Add to the existing ``path`` the ``Values`` keys of ``fresh`` it lacks (settings added since it was
    written, e.g. ``MAIL_INGESTION_MODE``); the user's own values, even empty ones, are never changed.
    Returns the added keys (sorted), the file untouched when there are none.

    Raises:
        ValueError: ``path`` is not a JSON object with an object ``Values`` (nothing is written).
    """
    existing = json.loads(path.read_text())
    if not isinstance(existing, dict) or not isinstance(existing.get("Values", {}), dict):
        raise ValueError(f"{path} is not a local.settings.json (an object with a 'Values' object)")
    values: dict[str, Any] = existing.setdefault("Values", {})
    added = sorted(key for key in fresh["Values"] if key not in values)
    if not added:
        return []
    for key in added:
        values[key] = fresh["Values"][key]
    _write(path, existing)
    return added


def start_tenant(
    local: Path, port: int, users: int, extra: list[str] | None = None
) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    env_file = local / "tenant.env"
    env_file.unlink(missing_ok=True)  # its appearance is the readiness signal
    proc = subprocess.Popen(  # noqa: S603 - fixed arguments
        [
            sys.executable,
            "-m",
            "emulator",
            "--port",
            str(port),
            "--state-dir",
            str(local / "tenant"),
            "--env-file",
            str(env_file),
            "--users",
            str(users),
            *(extra or []),
        ],
        cwd=ROOT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not env_file.exists():
        if proc.poll() is not None:
            raise SystemExit(f"run: the local tenant exited with status {proc.returncode}")
        if time.monotonic() > deadline:
            proc.terminate()
            raise SystemExit("run: the local tenant did not start within 60 s")
        time.sleep(0.05)
    return proc, {k: v for k, v in dotenv_values(env_file).items() if v is not None}


def banner(args: argparse.Namespace, env: dict[str, str], host_name: str) -> str:
    base = f"http://localhost:{args.port}"
    token_cmd = f"{sys.executable} -m scripts.token"
    return f"""
Graph Functions is starting on {base} ({host_name}), against the local tenant.
  local tenant  {env["ENTRA_AUTHORITY_HOST"]}  (tenant {env["ENTRA_TENANT_ID"]})
  env file      {args.local_dir / "tenant.env"}
  Graph         {env["GRAPH_ENDPOINT"]}
  Key Vault     {env["KEY_VAULT_URL"]}
  Azurite       http://127.0.0.1:{args.azurite_port}

Open {base}/api/health, or call the API with a caller token:
  curl -H "Authorization: Bearer $({token_cmd})" "{base}/api/users?top=5"
The OpenAPI document: {base}/api/openapi.json
Sign in at {base}/ (pages /me, /users, /sharepoint, /auth/admin-consent); the tenant registers the
  redirect URIs of port 7071 (localhost and 127.0.0.1) only.
Demo sign-in accounts: {env["DEMO_ADMIN_USERNAME"]} / {env["DEMO_USER_USERNAME"]} (passwords in the env file).
Mail events: Graph (the local tenant) posts to https://localhost:{args.port + 1}/api/graph/notifications;
  each new message of a "Mail Readers" member becomes a message on the Azurite queue mail-events.
Mail: the demo admin reads the mailboxes of the local tenant's "Mail Readers" group (MAILBOX_SCOPE), e.g.
  {base}/mail?mailbox={env["DEMO_USER_USERNAME"]}
Press Ctrl+C to stop everything.
"""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from devhost.azurite import Azurite

    local: Path = args.local_dir
    local.mkdir(parents=True, exist_ok=True)
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    stopping = {"signal": 0}

    def on_signal(signum: int, _frame: object) -> None:
        stopping["signal"] = signum

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    azurite = Azurite(
        location=local / "azurite",
        blob_port=args.azurite_port,
        queue_port=args.azurite_port + 1,
        table_port=args.azurite_port + 2,
        log_path=local / "azurite.log",
    )
    status = 0
    try:
        azurite.start()
        storage = "UseDevelopmentStorage=true" if args.azurite_port == 10000 else azurite.connection_string
        tenancy = tenancy_of(args.settings, args.tenancy)
        tenant, env = start_tenant(local, args.tenant_port, args.users, tenant_args(tenancy))
        children.append(("local tenant", tenant))
        store_notification_certificate(env)
        if not args.settings.exists():
            write_local_settings(args.settings, env, storage, args.port + 1, tenancy)
            print(f"run: wrote {args.settings} from the local tenant's env file")
        else:
            fresh = local_settings(env, storage, args.port + 1, tenancy)
            try:
                added = add_missing_settings(args.settings, fresh)
            except ValueError as error:
                print(f"run: {error}; left as it is", file=sys.stderr)
                added = []
            if added:
                print(
                    f"run: added {len(added)} settings missing from {args.settings} (your values are kept): "
                    + ", ".join(added)
                )
        if tenancy == "multi":
            register_onboarding(env, args.port)
            print(
                f"run: multi-tenant: onboard the customer at http://localhost:{args.port}/onboard as "
                f"{env.get('CUSTOMER_ADMIN_USERNAME', 'its administrator')} (password in the env file)"
            )
        host_env = dict(os.environ)
        host_env.update({k: env[k] for k in FORCED_ENV})
        host_env["CURL_CA_BUNDLE"] = env["REQUESTS_CA_BUNDLE"]
        use_func = args.host == "func" or (args.host == "auto" and shutil.which("func"))
        if use_func:
            cmd = ["func", "start", "--port", str(args.port)]
        else:
            cmd = [
                sys.executable,
                "-m",
                "devhost",
                "--app-dir",
                str(ROOT),
                "--port",
                str(args.port),
                "--settings",
                str(args.settings),
                # Graph calls https webhooks only: the tenant's CA-signed certificate on port + 1.
                "--https-port",
                str(args.port + 1),
                "--tls-cert",
                str(local / "tenant" / "tls" / "server.pem"),
                "--tls-key",
                str(local / "tenant" / "tls" / "server.key"),
            ]
        print(banner(args, env, "func start" if use_func else "devhost"), flush=True)
        host = subprocess.Popen(cmd, cwd=ROOT, env=host_env, start_new_session=True)  # noqa: S603
        children.append(("host", host))
        while not stopping["signal"]:
            for name, proc in children:
                if proc.poll() is not None:
                    print(f"run: the {name} exited with status {proc.returncode}; stopping", file=sys.stderr)
                    status = 1
                    stopping["signal"] = -1
                    break
            if not azurite.running and not stopping["signal"]:
                print("run: Azurite exited; stopping", file=sys.stderr)
                status, stopping["signal"] = 1, -1
            time.sleep(0.2)
    finally:
        for _name, proc in reversed(children):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _name, proc in reversed(children):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        azurite.stop()
    print("run: stopped", flush=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
