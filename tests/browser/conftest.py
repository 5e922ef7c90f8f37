"""Fixtures for the real-browser tests: one local tenant, one capture server, one headless Chromium.

The browser is Debian's Chromium headless shell, ``/usr/bin/chromium-headless-shell`` (package
``chromium-headless-shell``: the same Chromium, Blink and V8 as the ``chromium`` package, without the
desktop browser around them), driven by the ``playwright`` package (its wheel carries the driver;
``playwright install`` is never used). It is the build playwright runs for headless Chromium itself, and it
costs under half the CPU of the full browser in headless mode (tests/browser: 95 against 35 CPU-seconds of
Chromium on this project's 2-core machine). A missing browser is a failure, never a skip.

The browser and the capture server are **module**-scoped, not session-scoped: while ``sync_playwright()``
is open, playwright marks its asyncio loop as the main thread's running loop between calls, so every
``asyncio.run()`` in a later test (the in-process ASGI tests, devhost) would fail with "cannot be called
from a running event loop". Closing it when the browser module ends clears that. The tenant has no such
tie: one serves every browser module of a session (or xdist worker), reset after each test.

TLS trust: Chromium keeps its own trust store (NSS), so the tenant's CA bundle that ``requests`` uses means
nothing to it. Rather than ``ignore_https_errors`` (which accepts any certificate at all), the browser is
launched with ``--ignore-certificate-errors-spki-list`` naming the SHA-256 of the tenant's server key
(``{state_dir}/tls/server.pem``): only that exact key is let through, every other certificate error still
fails. Importing the CA into an NSS database would be full CA trust, but needs ``certutil``
(libnss3-tools) and a private ``$HOME``; the pin needs nothing installed (shared/reference/sdk-facts.md Q8).
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import Browser, BrowserContext, sync_playwright

from tests.browser.app_kit import Shots
from tests.browser.capture import CaptureServer, capture_server
from tests.support.tenant import LocalTenant, trusted_tenant

CHROMIUM = "/usr/bin/chromium-headless-shell"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MISSING_CHROMIUM = (
    f"The browser tests need Chromium's headless shell at {CHROMIUM}: install the Debian package with "
    "`apt-get install chromium-headless-shell` (.ci/run does this). They fail rather than skip without it."
)


@pytest.fixture(scope="module")
def capture() -> Iterator[CaptureServer]:
    with capture_server() as server:
        yield server


@pytest.fixture(scope="session")
def browser_tenant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTenant]:
    with trusted_tenant(Path(tmp_path_factory.mktemp("browser-tenant")), users=20) as t:
        yield t


def register_redirect(tenant: LocalTenant, uri: str) -> None:
    """Add ``uri`` to Graph Functions' redirect URIs, keeping the registered ones."""
    app_id = tenant.env["ENTRA_CLIENT_ID"]
    current = tenant.control("GET", f"/apps/{app_id}")["redirectUris"]
    if uri not in current:
        tenant.control("PATCH", f"/apps/{app_id}", {"redirectUris": [*current, uri]})


@pytest.fixture
def tenant(browser_tenant: LocalTenant, capture: CaptureServer) -> Iterator[LocalTenant]:
    """The tenant in its seeded state plus the capture redirect URI; reset after the test (which also
    ends every SSO session and forgets the consent a test gave)."""
    register_redirect(browser_tenant, capture.url)
    capture.clear()
    try:
        yield browser_tenant
    finally:
        browser_tenant.reset()


@pytest.fixture
def shots(tmp_path: Path) -> Shots:
    """Screenshots of the test, under its tmp dir (``screenshots/``)."""
    return Shots(tmp_path / "screenshots")


def spki_pin(server_pem: Path) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)) of the first certificate in ``server_pem``."""
    cert = x509.load_pem_x509_certificate(server_pem.read_bytes())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture(scope="module")
def chromium(browser_tenant: LocalTenant) -> Iterator[Browser]:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(MISSING_CHROMIUM, pytrace=False)
    pin = spki_pin(browser_tenant.state_dir / "tls" / "server.pem")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={pin}"],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def context(chromium: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies) for one test."""
    ctx = chromium.new_context()
    try:
        yield ctx
    finally:
        ctx.close()
