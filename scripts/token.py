"""Print an access token for Graph Functions' API, as a calling service gets one.

``python -m scripts.token`` uses the local tenant's *caller* app (client credentials, all app roles)
from ``.local/tenant.env``; ``--no-role`` uses the caller granted none. Against a real tenant, use your
own caller registration with MSAL the same way (see README).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import msal
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.token")
    p.add_argument("--env-file", type=Path, default=ROOT / ".local" / "tenant.env")
    p.add_argument("--no-role", action="store_true", help="use the caller granted no app role")
    args = p.parse_args(argv)
    env = {k: v for k, v in dotenv_values(args.env_file).items() if v is not None}
    if not env:
        print(f"token: {args.env_file} not found: start the app with `make run` first", file=sys.stderr)
        return 2
    os.environ["REQUESTS_CA_BUNDLE"] = env["REQUESTS_CA_BUNDLE"]  # the machine presets the system bundle
    prefix = "CALLER_NOROLE" if args.no_role else "CALLER"
    app = msal.ConfidentialClientApplication(
        env[f"{prefix}_CLIENT_ID"],
        client_credential=env[f"{prefix}_CLIENT_SECRET"],
        authority=f"{env['ENTRA_AUTHORITY_HOST']}/{env['ENTRA_TENANT_ID']}",
        instance_discovery=False,
    )
    result = app.acquire_token_for_client([f"api://{env['ENTRA_CLIENT_ID']}/.default"])
    if "access_token" not in result:
        print(f"token: {result.get('error')}: {result.get('error_description')}", file=sys.stderr)
        return 1
    print(result["access_token"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
