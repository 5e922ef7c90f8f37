"""azure.yaml against azd's published schema (vendored excerpt), the parameters file azd fills in, the
postprovision hooks, and what the deployment package leaves out."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import yaml

from tests.infra import bicep

SCHEMA = Path(__file__).parent / "vendor" / "azure.yaml.schema.json"


def _azure_yaml() -> dict:
    return yaml.safe_load((bicep.ROOT / "azure.yaml").read_text(encoding="utf-8"))


def test_azure_yaml_matches_azds_schema() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(_azure_yaml()), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def test_the_schema_rejects_what_azd_rejects() -> None:
    """The vendored schema has teeth: a bad name, a service without host, a hook with an unknown key."""
    validator = jsonschema.Draft201909Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    good = _azure_yaml()
    for bad in (
        {**good, "name": "Graph_Functions"},
        {**good, "services": {"api": {"project": ".", "language": "python"}}},
        {**good, "services": {"api": {"host": "function", "language": "python"}}},
        {**good, "hooks": {"postprovision": {"posix": {"run": "x", "shel": "sh"}}}},
    ):
        assert list(validator.iter_errors(bad)), bad


def test_one_python_function_service_tagged_like_the_site() -> None:
    services = _azure_yaml()["services"]
    assert services == {"api": {"project": ".", "language": "python", "host": "function"}}
    serviceName = bicep.variables(bicep.MAIN)["serviceName"]  # noqa: N806 - the Bicep name
    assert serviceName == "api"


def test_the_hooks_exist_and_parse() -> None:
    hooks = _azure_yaml()["hooks"]
    assert set(hooks) == {"preprovision", "postprovision", "prepackage"}
    for name in hooks:
        for platform in ("posix", "windows"):
            assert (bicep.ROOT / hooks[name][platform]["run"]).is_file()
        subprocess.run(["sh", "-n", str(bicep.ROOT / hooks[name]["posix"]["run"])], check=True)
    hook = hooks["postprovision"]
    script = bicep.ROOT / hook["posix"]["run"]
    subprocess.run(["sh", "-n", str(script)], check=True)
    text = script.read_text(encoding="utf-8")
    # The key goes through a private file, never the command line (process list) or the terminal.
    assert "--file" in text and "umask 077" in text
    assert 'echo "$key' not in text


def test_the_hooks_read_only_what_azd_provides() -> None:
    """Every variable the hooks read is a main.bicep output (azd exports outputs to hooks) or an azd
    environment value the parameters file also maps (set by the person deploying)."""
    outputs = set(bicep.parse(bicep.MAIN)["outputs"])
    parameters = (bicep.INFRA / "main.parameters.json").read_text(encoding="utf-8")
    # azd's own: every azd environment has the subscription it deploys to.
    user_set = set(re.findall(r"\$\{([A-Z_]+)", parameters)) | {"AZURE_SUBSCRIPTION_ID"}
    for script in ("preprovision.sh", "preprovision.ps1"):
        text = (bicep.INFRA / "scripts" / script).read_text(encoding="utf-8")
        used = set(re.findall(r"\$\{([A-Z_]+)[:}]", text)) | set(re.findall(r"\$env:([A-Z_]+)", text))
        assert used <= outputs | user_set, f"{script} reads {sorted(used - outputs - user_set)}"
        assert "PRIVATE_NETWORKING" in used
    for script in ("postprovision.sh", "postprovision.ps1"):
        text = (bicep.INFRA / "scripts" / script).read_text(encoding="utf-8")
        used = set(re.findall(r"\$\{([A-Z_]+)[:}]", text)) | set(re.findall(r"\$env:([A-Z_]+)", text))
        assert used, script
        assert used <= outputs | user_set, f"{script} reads {sorted(used - outputs - user_set)}"
        assert {"AZURE_KEY_VAULT_NAME", "SESSION_KEY_NAME"} <= used


def test_the_parameters_file_gives_every_required_parameter() -> None:
    parameters = json.loads((bicep.INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    declared = bicep.parse(bicep.MAIN)["parameters"]
    assert set(parameters) <= set(declared), "parameters main.bicep does not declare"
    required = {name for name, parameter in declared.items() if parameter.get("default") is None}
    # entraTenantId's default is the deploying tenant (an expression).
    assert required - {"entraTenantId"} <= set(parameters)
    for name, value in parameters.items():
        assert re.fullmatch(r"\$\{[A-Z_]+(=[^}]*)?\}", value["value"]), f"{name}: not an azd env reference"


def test_the_package_leaves_out_everything_but_the_app() -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in (bicep.ROOT / ".funcignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for development in (
        "tests",
        "emulator",
        "devhost",
        "bench",
        "infra",
        ".venv",
        ".venv-tools",
        "node_modules",
    ):
        assert development in ignored
    for needed in ("function_app.py", "shared", "blueprints", "host.json", "requirements.txt"):
        assert needed not in ignored


def test_the_docs_set_only_variables_the_template_reads() -> None:
    """Each `azd env set NAME` in docs/deploy.md reaches main.bicep through main.parameters.json."""
    parameters = (bicep.INFRA / "main.parameters.json").read_text(encoding="utf-8")
    mapped = set(re.findall(r"\$\{([A-Z_]+)", parameters))
    documented = set(re.findall(r"azd env set ([A-Z_]+)", (bicep.ROOT / "docs" / "deploy.md").read_text()))
    assert documented, "docs/deploy.md shows no azd env set"
    assert documented <= mapped | {"AZURE_LOCATION"}, sorted(documented - mapped)
