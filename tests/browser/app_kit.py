"""Helpers of the browser tests of the app's own pages (no tests here): an app host for a module, the
tenant registration of its URIs for one test, screenshots, a watch on dialogs and console messages, and the
walk through the local tenant's sign-in, consent and MFA pages."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Dialog, Page

from tests.devhost.fixtures import DevHostProcess
from tests.integration.test_signin_kit import SESSION_COOKIE, register_app_host
from tests.support.apphost import start_app_host
from tests.support.tenant import LocalTenant


@contextlib.contextmanager
def browser_app(
    tmp_path_factory: pytest.TempPathFactory,
    tenant: LocalTenant,
    azurite: Any,
    name: str,
    overrides: Mapping[str, str] | None = None,
) -> Iterator[DevHostProcess]:
    """The app under devhost against ``tenant`` and Azurite, stopped on exit."""
    host = start_app_host(
        tmp_path_factory.mktemp(name), tenant.env, azurite.connection_string, overrides=dict(overrides or {})
    )
    try:
        yield host
    finally:
        host.stop()


@contextlib.contextmanager
def registered(tenant: LocalTenant, host: DevHostProcess) -> Iterator[LocalTenant]:
    """``tenant`` with ``host``'s redirect and post-logout URIs registered; reset on exit."""
    register_app_host(tenant, host)
    try:
        yield tenant
    finally:
        tenant.reset()


class Shots:
    """Full-page screenshots, kept as the test's artifacts."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def take(self, page: Page, name: str) -> None:
        page.screenshot(path=str(self.directory / f"{name}.png"), full_page=True)


class Watch:
    """Dialogs and console errors of a page (a script that ran would open a dialog)."""

    def __init__(self, page: Page) -> None:
        self.dialogs: list[str] = []
        self.console: list[str] = []
        page.on("dialog", self._dialog)
        page.on("console", self._console)

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _console(self, message: ConsoleMessage) -> None:
        self.console.append(message.text)


def through_tenant(page: Page, app: DevHostProcess, username: str, password: str) -> list[str]:
    """Sign in (and consent, approve MFA) on the tenant's pages until the browser is back on the app;
    returns the tenant pages passed through."""
    seen: list[str] = []
    for _ in range(6):
        page.wait_for_load_state()
        if page.url.startswith(app.base_url):
            return seen
        if page.locator("#signin-form").count():
            seen.append("signin")
            if page.locator("#username").is_editable():
                page.fill("#username", username)
            page.fill("#password", password)
            page.click("#signin")
        elif page.locator("#consent-form").count():
            seen.append("consent")
            page.click("#accept")
        elif page.locator("#mfa-form").count():
            seen.append("mfa")
            page.click("#mfa-approve")
        else:
            raise AssertionError(f"unexpected page {page.url}: {page.content()[:400]}")
        page.wait_for_load_state()
    assert page.url.startswith(app.base_url), page.url
    return seen


def member(tenant: LocalTenant) -> tuple[str, str]:
    return tenant.env["DEMO_USER_USERNAME"], tenant.env["DEMO_USER_PASSWORD"]


def admin(tenant: LocalTenant) -> tuple[str, str]:
    return tenant.env["DEMO_ADMIN_USERNAME"], tenant.env["DEMO_ADMIN_PASSWORD"]


def session_id(context: BrowserContext) -> str | None:
    return next((c["value"] for c in context.cookies() if c["name"] == SESSION_COOKIE), None)
