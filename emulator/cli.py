"""Command line: ``python -m emulator [--env-file PATH] [--port N] [--state-dir DIR] [--users N]``.

See ``--help`` and emulator/README.md for every option.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

from emulator.config import SERVICE_OFFSETS, SIGN_IN_AUDIENCES, EmulatorConfig, Lifetimes

#: Upper bound of --tenants (and of organisations created through the control API).
MAX_ORGANIZATIONS = 1000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m emulator",
        description=(
            "The local tenant: an offline HTTPS emulator of Entra ID v2, Microsoft Graph, Key Vault, "
            "SharePoint "
            "and the App Service managed-identity endpoint. Serves until SIGINT/SIGTERM."
        ),
    )
    p.add_argument(
        "--env-file",
        type=Path,
        default=None,
        help="write the app's settings here (dotenv) once listening, e.g. .local/tenant.env",
    )
    p.add_argument(
        "--port",
        type=int,
        default=8443,
        help=f"first port of the range (login, graph, vault, sharepoint, identity: "
        f"{len(SERVICE_OFFSETS)} ports); default 8443",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".local/tenant"),
        help="TLS material, signing keys and the app certificate live here (created once)",
    )
    p.add_argument("--users", type=int, default=25, help="total users, demo accounts included (min 2)")
    p.add_argument("--seed", type=int, default=42, help="seed of the deterministic tenant data")
    p.add_argument(
        "--access-token-lifetime", type=int, default=3600, help="seconds (short values test refresh)"
    )
    p.add_argument("--refresh-token-lifetime", type=int, default=90 * 24 * 3600, help="seconds")
    p.add_argument(
        "--production-hostnames",
        action="store_true",
        help="serve login.microsoftonline.com, graph.microsoft.com, *.vault.azure.net and *.sharepoint.com "
        "on 127.0.0.1:443 (needs root); clients resolve those names through a private hosts file: "
        "python -m emulator.hostsns -- COMMAND",
    )
    p.add_argument(
        "--tenants",
        type=int,
        default=1,
        help="customer organisations besides the home tenant (min 1): the customer of the env file "
        "(CUSTOMER_*), then org002, org003... (see emulator/docs/multi-tenant.md); default 1",
    )
    p.add_argument(
        "--sign-in-audience",
        choices=SIGN_IN_AUDIENCES,
        default=os.environ.get("EMULATOR_SIGN_IN_AUDIENCE") or "AzureADMyOrg",
        help="signInAudience of Graph Functions' registration: AzureADMultipleOrgs lets other "
        "organisations sign in and consent (ENTRA_TENANCY=multi); default $EMULATOR_SIGN_IN_AUDIENCE or "
        "AzureADMyOrg",
    )
    p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = p.parse_args(argv)
    if args.users < 2:
        p.error("--users must be at least 2 (the demo admin and the demo member)")
    if not 1 <= args.tenants <= MAX_ORGANIZATIONS:
        p.error(f"--tenants must be within [1, {MAX_ORGANIZATIONS}]")
    if not 1 <= args.port <= 65535 - len(SERVICE_OFFSETS):
        p.error("--port out of range")
    return args


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from emulator.server import run
    from emulator.state import EmulatorState

    config = EmulatorConfig(
        port=args.port,
        state_dir=args.state_dir,
        env_file=args.env_file,
        users=args.users,
        seed=args.seed,
        lifetimes=Lifetimes(
            access_token=args.access_token_lifetime, refresh_token=args.refresh_token_lifetime
        ),
        production_hostnames=args.production_hostnames,
        tenants=args.tenants,
        sign_in_audience=args.sign_in_audience,
    )
    state = EmulatorState.create(config)
    return run(state, started, args.env_file)
