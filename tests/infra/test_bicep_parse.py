"""Every Bicep file parses (pycep-parser), and the template's shape is what azd and Flex Consumption need."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.infra import bicep

FLEX_REJECTED_SETTINGS = (
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
)


def test_infra_has_the_expected_files() -> None:
    names = {path.relative_to(bicep.INFRA).as_posix() for path in bicep.bicep_files()}
    assert {"main.bicep", "app-registration.bicep"} <= names
    assert {
        f"modules/{m}.bicep" for m in ("function-app", "storage", "keyvault", "monitoring", "rbac")
    } <= names


@pytest.mark.parametrize("path", bicep.bicep_files(), ids=lambda p: p.relative_to(bicep.INFRA).as_posix())
def test_every_bicep_file_parses(path: Path) -> None:
    parsed = bicep.parse(path)
    assert parsed.get("resources") or parsed.get("modules"), f"{path} declares nothing"


def test_every_module_reference_resolves() -> None:
    for path in bicep.bicep_files():
        for name, module in bicep.parse(path).get("modules", {}).items():
            assert module["type"] == "local", f"{path}:{name}: registry modules cannot be checked offline"
            target = (path.parent / module["detail"]["path"]).resolve()
            assert target.is_file(), f"{path}:{name} refers to missing {target}"


def test_main_is_subscription_scoped_with_azd_tags() -> None:
    parsed = bicep.parse(bicep.MAIN)
    assert parsed["globals"]["scope"]["value"] == "subscription"
    (group,) = bicep.parse(bicep.MAIN)["resources"].values()
    assert group["type"] == "Microsoft.Resources/resourceGroups"
    assert bicep.unquoted(bicep.variables(bicep.MAIN)["tags"]) == {"azd-env-name": "environmentName"}
    parameters = parsed["parameters"]
    assert {"environmentName", "location", "principalId"} <= set(parameters)


def test_the_site_is_flex_consumption_python_with_identity_based_deployment() -> None:
    found = bicep.resources(bicep.MODULES / "function-app.bicep")
    plan = bicep.body(found["plan"])
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    site = bicep.body(found["site"])
    assert site["kind"] == "functionapp,linux"
    # azd finds the site to deploy to by this tag (azure.yaml services key).
    tags = site["tags"]["function"]["parameters"]
    assert bicep.unquoted(tags["arg_2"]) == {"azd-service-name": "serviceName"}
    assert site["identity"]["type"] == "UserAssigned"
    properties = site["properties"]
    assert properties["httpsOnly"] is True
    config = properties["functionAppConfig"]
    assert config["runtime"]["name"] == "python"
    assert config["runtime"]["version"] == "pythonVersion"
    python_version = bicep.parse(bicep.MODULES / "function-app.bicep")["parameters"]["pythonVersion"]
    assert python_version["default"] == "3.11"
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"]["type"] == "UserAssignedIdentity"
    assert set(config["scaleAndConcurrency"]) == {"instanceMemoryMB", "maximumInstanceCount"}
    assert properties["siteConfig"]["minTlsVersion"] == "1.2"
    # Basic-auth publishing is off for both FTP and SCM.
    policies = [
        bicep.body(r) for r in found.values() if r["type"].endswith("basicPublishingCredentialsPolicies")
    ]
    assert sorted(p["name"] for p in policies) == ["ftp", "scm"]
    assert all(p["properties"]["allow"] is False for p in policies)


#: Site properties Flex Consumption rejects (the Flex Consumption plan's "deprecated properties" list, plus
#: ftpsState, which newer regional stamps answer with 400 ExtendedCode 51021, and remoteDebugging*, which Flex
#: does not offer). FTP is off through the `ftp` basic-publishing-credentials policy instead.
FLEX_REJECTED_SITE_PROPERTIES = (
    "ftpsState",
    "remoteDebuggingEnabled",
    "remoteDebuggingVersion",
    "alwaysOn",
    "functionAppScaleLimit",
    "preWarmedInstanceCount",
    "minimumElasticInstanceCount",
    "use32BitWorkerProcess",
    "linuxFxVersion",
    "windowsFxVersion",
    "netFrameworkVersion",
    "javaVersion",
    "powerShellVersion",
    "containerSize",
    "dailyMemoryTimeQuota",
)
#: What siteConfig may hold on the Flex site: transport settings only. A new property must be checked against
#: the Flex Consumption documentation before it joins this list. ``cors``: the platform's CORS (allowed
#: origins, credentials), which ``az functionapp cors`` manages on every hosting plan (docs/on-behalf-of.md).
FLEX_SITE_CONFIG_ALLOWED = {"minTlsVersion", "scmMinTlsVersion", "http20Enabled", "cors"}


def test_the_platform_cors_comes_from_a_parameter_without_credentials() -> None:
    site = bicep.body(bicep.resources(bicep.MODULES / "function-app.bicep")["site"])
    cors = site["properties"]["siteConfig"]["cors"]
    assert bicep.accessor(cors["allowedOrigins"]) == ["corsAllowedOrigins"]
    assert cors["supportCredentials"] is False  # bearer tokens cross origins, never cookies
    parameters = json.loads((bicep.INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["corsAllowedOrigins"]["value"] == "${CORS_ALLOWED_ORIGINS=}"


def test_no_site_property_flex_consumption_rejects() -> None:
    site = bicep.body(bicep.resources(bicep.MODULES / "function-app.bicep")["site"])
    site_config = site["properties"]["siteConfig"]
    assert set(site_config) <= FLEX_SITE_CONFIG_ALLOWED, sorted(set(site_config) - FLEX_SITE_CONFIG_ALLOWED)
    for path in bicep.bicep_files():
        parsed = json.dumps(bicep.parse(path))  # the parsed template, without comments
        for name in FLEX_REJECTED_SITE_PROPERTIES:
            assert f'"{name}"' not in parsed, f"{path} sets {name}"


def test_no_setting_flex_consumption_rejects() -> None:
    settings = bicep.app_settings()
    assert not set(FLEX_REJECTED_SETTINGS) & set(settings)
    for path in bicep.bicep_files():
        parsed = json.dumps(bicep.parse(path))  # the parsed template, without comments
        for name in (*FLEX_REJECTED_SETTINGS, "linuxFxVersion"):
            assert name not in parsed, f"{path} sets {name}"


def test_storage_is_identity_only_tls12_and_private_to_entra() -> None:
    account = bicep.body(bicep.resources(bicep.MODULES / "storage.bicep")["storage"])["properties"]
    assert account["allowSharedKeyAccess"] is False
    assert account["allowBlobPublicAccess"] is False
    assert account["minimumTlsVersion"] == "TLS1_2"
    assert account["supportsHttpsTrafficOnly"] is True
    assert account["defaultToOAuthAuthentication"] is True


def test_vault_is_rbac_standard_soft_delete_and_purge_protected() -> None:
    parsed = bicep.parse(bicep.MODULES / "keyvault.bicep")
    vault = bicep.body(parsed["resources"]["vault"])["properties"]
    assert vault["enableRbacAuthorization"] is True
    assert vault["sku"]["name"] == "standard"
    assert vault["enableSoftDelete"] is True
    assert vault["enablePurgeProtection"] is True
    assert vault["softDeleteRetentionInDays"] == 90
    assert "accessPolicies" not in vault
    assert vault["publicNetworkAccess"] == "publicNetworkAccess"
    assert parsed["parameters"]["publicNetworkAccess"]["default"] == "Enabled"


def test_application_insights_uses_a_workspace_and_entra_only() -> None:
    found = bicep.resources(bicep.MODULES / "monitoring.bicep")
    insights = bicep.body(found["applicationInsights"])["properties"]
    assert insights["DisableLocalAuth"] is True
    assert bicep.accessor(insights["WorkspaceResourceId"]) == ["workspace", "id"]
    assert found["workspace"]["type"] == "Microsoft.OperationalInsights/workspaces"


def test_private_networking_is_one_parameter_that_closes_storage_and_vault() -> None:
    main = bicep.parse(bicep.MAIN)
    assert main["parameters"]["privateNetworking"]["default"] is False
    assert main["modules"]["network"]["config"]["condition"] == "privateNetworking"
    network = bicep.resources(bicep.MODULES / "network.bicep")
    endpoints = bicep.variables(bicep.MODULES / "network.bicep")["endpoints"]
    assert sorted(e["groupId"] for e in endpoints) == ["blob", "queue", "table", "vault"]
    assert {r["type"] for r in network.values()} >= {
        "Microsoft.Network/virtualNetworks",
        "Microsoft.Network/privateEndpoints",
        "Microsoft.Network/privateDnsZones",
        "Microsoft.Network/privateDnsZones/virtualNetworkLinks",
    }
    subnets = bicep.body(network["vnet"])["properties"]["subnets"]
    delegations = subnets[0]["properties"]["delegations"]
    assert delegations[0]["properties"]["serviceName"] == "Microsoft.App/environments"


def _accessors(node: object) -> list[list[str]]:
    """Every `a.b.c` chain in a parsed expression tree (pycep JSON)."""
    found = []
    if isinstance(node, dict):
        chain = bicep.accessor(node) if "operator" in node else []
        if len(chain) > 1:
            found.append(chain)
        for value in node.values():
            found.extend(_accessors(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_accessors(value))
    elif isinstance(node, str):
        # Interpolations: '${module.outputs.name}'.
        found.extend(part.split(".") for part in re.findall(r"\$\{([A-Za-z_][\w.]*)\}", node) if "." in part)
    return found


@pytest.mark.parametrize("path", [bicep.MAIN], ids=["main.bicep"])
def test_modules_get_their_parameters_and_give_the_outputs_used(path: Path) -> None:
    """What `bicep build` would catch first, checked offline: unknown or missing module parameters, and
    references to module outputs that do not exist."""
    parsed = bicep.parse(path)
    modules = parsed["modules"]
    declared_outputs = {}
    for name, module in modules.items():
        target = bicep.parse((path.parent / module["detail"]["path"]).resolve())
        declared = target.get("parameters", {})
        passed = bicep.body(module)["params"]
        assert set(passed) <= set(declared), (
            f"{name}: unknown parameters {sorted(set(passed) - set(declared))}"
        )
        required = {
            p for p, spec in declared.items() if spec.get("default") is None and spec["type"] != "bool"
        }
        required |= {p for p, spec in declared.items() if spec["type"] == "bool" and "default" not in spec}
        assert required <= set(passed), f"{name}: missing parameters {sorted(required - set(passed))}"
        declared_outputs[name] = set(target.get("outputs", {}))
    for chain in _accessors({k: v for k, v in parsed.items() if k in ("modules", "outputs", "resources")}):
        if chain[0] in modules and len(chain) > 2 and chain[1] == "outputs":
            assert chain[2] in declared_outputs[chain[0]], f"{'.'.join(chain)} is not an output of {chain[0]}"


@pytest.mark.parametrize("path", bicep.bicep_files(), ids=lambda p: p.relative_to(bicep.INFRA).as_posix())
def test_every_parameter_is_described_and_used(path: Path) -> None:
    parsed = bicep.parse(path)
    text = json.dumps({k: v for k, v in parsed.items() if k != "parameters"})
    for name, parameter in parsed.get("parameters", {}).items():
        assert any(d["type"] == "description" for d in parameter["decorators"]), f"{path.name}: {name}"
        assert re.search(rf"(?<![\w.]){name}(?![\w])", text), f"{path.name}: parameter {name} is never used"


def test_generated_names_fit_azure_limits() -> None:
    """uniqueString() gives 13 characters: the vault (3-24), the storage account (3-24, letters and digits
    only) and the deployment container (3-63) stay inside their limits with their prefixes."""
    token = "a" * 13
    params = {
        name: bicep.body(module)["params"] for name, module in bicep.parse(bicep.MAIN)["modules"].items()
    }
    vault = params["vault"]["name"].replace("${resourceToken}", token)
    storage = params["storage"]["name"].replace("${resourceToken}", token)
    assert re.fullmatch(r"[a-zA-Z][a-zA-Z0-9-]{2,23}", vault), vault
    assert re.fullmatch(r"[a-z0-9]{3,24}", storage), storage
    container = bicep.variables(bicep.MAIN)["deploymentContainerName"]
    assert len(container.replace("${take(resourceToken, 7)}", "a" * 7)) <= 63


def test_a_closed_vault_without_private_networking_is_refused() -> None:
    """KEY_VAULT_PUBLIC_NETWORK_ACCESS=Disabled without PRIVATE_NETWORKING leaves the vault unreachable by the
    app (no VNet integration) and the hook: the deployment fails with a message naming both variables."""
    vault = bicep.body(bicep.parse(bicep.MAIN)["modules"]["vault"])["params"]["publicNetworkAccess"]
    public = vault["operator"]["operands"]["false_value"]["operator"]["operands"]
    assert public["condition"]["operator"]["operands"] == {
        "operand_1": "keyVaultPublicNetworkAccess",
        "operand_2": "Enabled",
    }
    assert public["true_value"] == "Enabled"
    refusal = public["false_value"]["function"]
    assert refusal["type"] == "fail"
    message = refusal["parameters"]["arg_1"]
    assert "KEY_VAULT_PUBLIC_NETWORK_ACCESS" in message and "PRIVATE_NETWORKING" in message


def test_private_networking_closes_public_access() -> None:
    storage = bicep.body(bicep.resources(bicep.MODULES / "storage.bicep")["storage"])["properties"]
    access = storage["publicNetworkAccess"]["operator"]["operands"]
    assert (access["condition"], access["true_value"], access["false_value"]) == (
        "privateNetworking",
        "Disabled",
        "Enabled",
    )
    vault = bicep.body(bicep.parse(bicep.MAIN)["modules"]["vault"])["params"]["publicNetworkAccess"]
    operands = vault["operator"]["operands"]
    assert (operands["condition"], operands["true_value"]) == ("privateNetworking", "Disabled")
