"""Seeding organisations in process (no server): ``--tenants N``, determinism, a reset, the limits of the
control API's creation, service principal views, the command line's checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.cli import parse_args
from emulator.config import EmulatorConfig
from emulator.directory.seed_orgs import build_organization
from emulator.envfile import env_values
from emulator.state import EmulatorState
from emulator.tenants.principals import OrganizationDirectory, materialize, remove_service_principal
from emulator.tenants.registry import serving
from emulator.tenants.seeding import create_organization


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> EmulatorState:
    return EmulatorState.create(
        EmulatorConfig(state_dir=Path(tmp_path_factory.mktemp("orgs")), users=10, tenants=100)
    )


def test_tenants_seeds_that_many_distinct_organisations_without_the_app(state: EmulatorState) -> None:
    orgs = list(state.organizations.values())
    assert len(orgs) == 100 and len({o.tenant_id for o in orgs}) == 100
    assert state.home.tenant_id not in state.organizations
    assert orgs[0].directory.domain == "northwind.onmicrosoft.com" and len(orgs[0].directory.users) == 12
    assert [o.directory.domain for o in orgs[1:3]] == ["org002.onmicrosoft.com", "org003.onmicrosoft.com"]
    app_id = state.ids.app.app_id
    for org in orgs:
        d = org.directory
        assert isinstance(d, OrganizationDirectory) and not d.has_service_principal(app_id)
        assert org.admin is not None and org.admin.is_admin and org.member is not None
        assert d.app(app_id) is None  # single-tenant registration: not found in other organisations
        assert not org.mailboxes  # built on first read
    env = env_values(state)
    assert env["CUSTOMER_TENANT_ID"] == orgs[0].tenant_id and env["ENTRA_TENANT_ID"] == state.home.tenant_id


def test_the_same_seed_gives_the_same_organisation(state: EmulatorState) -> None:
    def build() -> tuple[str, list[str], list[str]]:
        seeded = build_organization(state.config, "same", "Same", users=5, registrations=lambda _: None)
        d = seeded.directory
        return d.tenant_id, [u.id for u in d.users], [u.password for u in d.users]

    assert build() == build()
    other = build_organization(state.config, "other", "Other", users=5, registrations=lambda _: None)
    assert other.directory.tenant_id != build()[0]


def test_service_principal_views_follow_the_registration(state: EmulatorState) -> None:
    app = state.ids.app
    org = list(state.organizations.values())[5]
    d = org.directory
    assert isinstance(d, OrganizationDirectory)
    app.sign_in_audience = "AzureADMultipleOrgs"
    try:
        view = d.app(app.app_id)
        assert view is not None and view is d.app(app.app_id) and not d.has_service_principal(app.app_id)
        assert view.sp_id != app.sp_id and view.redirect_uris == app.redirect_uris
        with serving(org):
            assert state.directory is d and state.tokens.tenant_id == org.tenant_id
            assert materialize(d, view) is view and d.has_service_principal(app.app_id)
        app.redirect_uris = [*app.redirect_uris, "http://localhost:7071/onboard/callback"]
        again = d.app(app.app_id)  # each lookup shows the registration's current fields
        assert again is view and "http://localhost:7071/onboard/callback" in again.redirect_uris
        assert remove_service_principal(d, app.app_id) and not remove_service_principal(d, app.app_id)
        assert d.app(app.app_id) is not view  # a new consent makes a new object
        assert state.directory is state.home.directory  # outside ``serving``: the home tenant
    finally:
        app.sign_in_audience = "AzureADMyOrg"
        app.redirect_uris = [u for u in app.redirect_uris if not u.endswith("/onboard/callback")]


def test_creation_limits_and_reset(state: EmulatorState) -> None:
    made = create_organization(state, "fresh", "Fresh", users=3)
    assert made.origin == "created" and len(made.directory.users) == 3
    for name, users, message in (
        ("fresh", 3, "already exists"),
        ("contoso", 3, "already exists"),  # the home tenant's domain
        ("x", 3, "name must match"),
        ("UPPER", 3, "name must match"),
        ("ok2", 1, "users must be within"),
        ("ok3", 5000, "users must be within"),
    ):
        with pytest.raises(ValueError, match=message):
            create_organization(state, name, name, users=users)
    before = {tid: o.directory.domain for tid, o in state.organizations.items() if o.origin == "seeded"}
    state.reset()
    after = {tid: o.directory.domain for tid, o in state.organizations.items()}
    assert after == before  # same ids and domains; the created one is gone


def test_command_line_checks(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse_args(["--tenants", "3", "--sign-in-audience", "AzureADMultipleOrgs"])
    assert args.tenants == 3 and args.sign_in_audience == "AzureADMultipleOrgs"
    for bad in (["--tenants", "0"], ["--tenants", "1001"], ["--sign-in-audience", "Everyone"]):
        with pytest.raises(SystemExit):
            parse_args(bad)
    assert "--tenants" in capsys.readouterr().err
