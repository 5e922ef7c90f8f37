"""infra/scripts/postprovision.sh (and preprovision.sh) against a scripted stand-in for `az` (and `sleep`)
on PATH: no Azure, no network. The post-provision hook refuses to touch the vault unless az is signed in as
azd's account and tenant, tells a missing secret (SecretNotFound) from a refused or failed read (retried with
back-off, never taken for "absent"), and never writes an empty session key. The pre-provision hook registers
Microsoft.App for private networking, and does nothing otherwise."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra import bicep

HOOK = bicep.INFRA / "scripts" / "postprovision.sh"
TENANT = "66666666-7777-8888-9999-000000000000"
DEPLOYER = "11111111-2222-3333-4444-555555555555"

NOT_FOUND = (
    "ERROR: (SecretNotFound) A secret with (name/id) graph-functions-session-key was not found in this key "
    "vault."
)
FORBIDDEN = (
    "ERROR: (Forbidden) Caller is not authorized to perform action on resource.\n"
    'Inner error: {"code": "ForbiddenByRbac"}'
)
NETWORK = "ERROR: <urllib3.connection.HTTPSConnection object>: Failed to establish a new connection"

#: The stand-in: answers from a JSON script (account, signed-in user, a queue of `secret show` answers) and
#: logs every call; `secret set` records the length of the file it was given.
FAKE_AZ = """
import json, sys
from pathlib import Path
state = Path(sys.argv[1])
args = sys.argv[2:]
script = json.loads((state / "script.json").read_text())
with (state / "calls.log").open("a") as log:
    log.write(" ".join(args) + "\\n")
if args[:2] == ["account", "show"]:
    if script["account"] is None:
        print("ERROR: Please run 'az login' to setup account.", file=sys.stderr)
        sys.exit(1)
    print("\\t".join(script["account"]))
elif args[:3] == ["ad", "signed-in-user", "show"]:
    print(script["user_object_id"])
elif args[:3] == ["keyvault", "secret", "show"]:
    answers = script["show"]
    answer = answers.pop(0) if len(answers) > 1 else answers[0]
    (state / "script.json").write_text(json.dumps(script))
    if answer == "present":
        sys.exit(0)
    print(answer, file=sys.stderr)
    sys.exit(1)
elif args[:3] == ["keyvault", "secret", "set"]:
    path = args[args.index("--file") + 1]
    with (state / "sets.log").open("a") as log:
        log.write(str(len(Path(path).read_text())) + "\\n")
else:
    print("unexpected az call: " + " ".join(args), file=sys.stderr)
    sys.exit(2)
"""


def _run(
    tmp_path: Path, *, account: list[str] | None, show: list[str], user: str = DEPLOYER
) -> tuple[subprocess.CompletedProcess[str], list[str], list[str], int]:
    """Run the hook; returns (process, az calls, lengths of the secrets written, number of sleeps)."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "script.json").write_text(
        json.dumps({"account": account, "user_object_id": user, "show": show}), encoding="utf-8"
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "fake_az.py").write_text(FAKE_AZ, encoding="utf-8")
    az = bin_dir / "az"
    az.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{tmp_path / "fake_az.py"}" "{state}" "$@"\n')
    sleep = bin_dir / "sleep"
    sleep.write_text(f'#!/bin/sh\necho "$1" >> "{state / "sleeps.log"}"\n')
    for tool in (az, sleep):
        tool.chmod(0o755)
    # The rest of the hook's tools (sh, openssl, grep, ...) from the real PATH, after the stand-ins.
    environment = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "AZURE_KEY_VAULT_NAME": "kv-test",
        "SESSION_KEY_NAME": "graph-functions-session-key",
        "AZURE_TENANT_ID": TENANT,
        "AZURE_PRINCIPAL_ID": DEPLOYER,
        "ENTRA_CLIENT_ID": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        "ENTRA_GRANT_CONSENT": "true",
        "APP_BASE_URL": "https://func-test.azurewebsites.net",
    }
    process = subprocess.run(
        ["sh", str(HOOK)], env=environment, capture_output=True, text=True, timeout=60, check=False
    )

    def lines(name: str) -> list[str]:
        path = state / name
        return path.read_text(encoding="utf-8").splitlines() if path.exists() else []

    return process, lines("calls.log"), lines("sets.log"), len(lines("sleeps.log"))


SIGNED_IN = [TENANT, "user", "deployer@contoso.com"]
needs_openssl = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="the hook generates keys with openssl"
)


def test_not_signed_in_stops_before_the_vault(tmp_path: Path) -> None:
    process, calls, sets, _ = _run(tmp_path, account=None, show=["present"])
    assert process.returncode != 0
    assert f"az login --tenant {TENANT}" in process.stderr
    assert not [call for call in calls if call.startswith("keyvault")] and not sets


def test_another_tenant_stops_before_the_vault(tmp_path: Path) -> None:
    other = ["00000000-0000-0000-0000-000000000001", "user", "someone@fabrikam.com"]
    process, calls, sets, _ = _run(tmp_path, account=other, show=["present"])
    assert process.returncode != 0
    assert f"az login --tenant {TENANT}" in process.stderr
    assert "azd config set auth.useAzCliAuth true" in process.stderr
    assert not [call for call in calls if call.startswith("keyvault")] and not sets


def test_another_account_stops_before_the_vault(tmp_path: Path) -> None:
    process, calls, sets, _ = _run(
        tmp_path, account=SIGNED_IN, show=["present"], user="99999999-9999-9999-9999-999999999999"
    )
    assert process.returncode != 0
    assert DEPLOYER in process.stderr
    assert not [call for call in calls if call.startswith("keyvault")] and not sets


@needs_openssl
def test_a_403_while_the_role_propagates_is_retried_then_the_key_is_created_once(tmp_path: Path) -> None:
    process, _, sets, sleeps = _run(tmp_path, account=SIGNED_IN, show=[FORBIDDEN, FORBIDDEN, NOT_FOUND])
    assert process.returncode == 0, process.stderr
    assert sleeps == 2
    assert "propagating" in process.stderr
    assert sets == ["44"], "one Fernet key (44 characters), never an empty one"
    assert "created" in process.stdout


def test_a_403_then_the_existing_key_is_kept(tmp_path: Path) -> None:
    process, _, sets, sleeps = _run(tmp_path, account=SIGNED_IN, show=[FORBIDDEN, "present"])
    assert process.returncode == 0, process.stderr
    assert sleeps == 1
    assert sets == [], "an existing key is never replaced: that would sign everybody out"
    assert "kept" in process.stdout


def test_a_persistent_failure_writes_nothing_and_fails(tmp_path: Path) -> None:
    process, _, sets, sleeps = _run(tmp_path, account=SIGNED_IN, show=[NETWORK])
    assert process.returncode != 0
    assert sets == []
    assert sleeps == 9, "ten attempts, with back-off between them"
    assert "Nothing was written" in process.stderr


@needs_openssl
def test_a_missing_key_is_created_without_retries(tmp_path: Path) -> None:
    process, _, sets, sleeps = _run(tmp_path, account=SIGNED_IN, show=[NOT_FOUND])
    assert process.returncode == 0, process.stderr
    assert (sets, sleeps) == (["44"], 0)


PRE_HOOK = bicep.INFRA / "scripts" / "preprovision.sh"


def _run_pre(
    tmp_path: Path, *, private: str, state: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    log = tmp_path / "calls.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    az = bin_dir / "az"
    az.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{log}"\n'
        'case "$1 $2" in\n'
        f'  "provider show") echo "{state}" ;;\n'
        '  "provider register") exit 0 ;;\n'
        "  *) exit 2 ;;\n"
        "esac\n"
    )
    az.chmod(0o755)
    environment = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PRIVATE_NETWORKING": private,
        "AZURE_SUBSCRIPTION_ID": "22222222-2222-2222-2222-222222222222",
    }
    process = subprocess.run(
        ["sh", str(PRE_HOOK)], env=environment, capture_output=True, text=True, timeout=60, check=False
    )
    calls = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return process, calls


def test_without_private_networking_the_pre_hook_does_nothing(tmp_path: Path) -> None:
    process, calls = _run_pre(tmp_path, private="false", state="NotRegistered")
    assert process.returncode == 0 and calls == []


def test_private_networking_registers_microsoft_app(tmp_path: Path) -> None:
    process, calls = _run_pre(tmp_path, private="true", state="NotRegistered")
    assert process.returncode == 0, process.stderr
    assert any(call.startswith("provider register --namespace Microsoft.App") for call in calls)
    assert all("--subscription 22222222-2222-2222-2222-222222222222" in call for call in calls)


def test_an_already_registered_provider_is_left_alone(tmp_path: Path) -> None:
    process, calls = _run_pre(tmp_path, private="true", state="Registered")
    assert process.returncode == 0, process.stderr
    assert not [call for call in calls if call.startswith("provider register")]
