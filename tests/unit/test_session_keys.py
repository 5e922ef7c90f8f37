"""The session key ring: sealing, rotation, versions read once, vault outages with and without keys cached."""

from __future__ import annotations

import base64
import datetime
import secrets
import threading
from typing import TYPE_CHECKING, cast

import pytest

from shared.core.errors import ConfigurationError, CredentialUnavailable
from shared.identity.key_ring import (
    HOLD_SECONDS,
    REFRESH_SECONDS,
    RETRY_SECONDS,
    SessionKeyRing,
    UnreadableRecordError,
)
from shared.identity.key_source import KeyVersion, VaultKeySource, decode_key
from tests.unit.azure_fakes import vault_error

if TYPE_CHECKING:
    from azure.keyvault.secrets import SecretClient


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeKeys:
    """A vault secret with versions; ``down`` makes every read fail as the vault SDK would."""

    def __init__(self) -> None:
        self.versions: dict[str, KeyVersion] = {}
        self.order: list[str] = []
        self.reads: list[str | None] = []
        self.down = False
        self._lock = threading.Lock()
        self.add()

    def add(self) -> str:
        version = secrets.token_hex(16)
        created = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
            minutes=len(self.order)
        )
        self.versions[version] = KeyVersion(version, secrets.token_bytes(32), created)
        self.order.append(version)
        return version

    def read(self, version: str | None) -> KeyVersion | None:
        with self._lock:
            self.reads.append(version)
        if self.down:
            raise CredentialUnavailable("vault down")
        return self.versions.get(version or self.order[-1])


def ring(keys: FakeKeys, clock: Clock) -> SessionKeyRing:
    return SessionKeyRing(keys, clock=clock)


def test_seal_opens_only_with_the_same_associated_data_and_unchanged_bytes() -> None:
    keys, clock = FakeKeys(), Clock()
    r = ring(keys, clock)
    sealed = r.seal(b"secret cache", aad=b"session/row-1")
    assert sealed.version == keys.order[0]
    assert b"secret cache" not in sealed.blob
    assert r.open(sealed.version, sealed.blob, aad=b"session/row-1") == b"secret cache"
    with pytest.raises(UnreadableRecordError):
        r.open(sealed.version, sealed.blob, aad=b"session/row-2")  # moved to another row
    with pytest.raises(UnreadableRecordError):
        r.open(sealed.version, sealed.blob, aad=b"authflow/row-1")  # another record kind
    for index in (0, 12, len(sealed.blob) - 1):  # nonce, ciphertext, tag
        flipped = bytearray(sealed.blob)
        flipped[index] ^= 0x01
        with pytest.raises(UnreadableRecordError):
            r.open(sealed.version, bytes(flipped), aad=b"session/row-1")
    with pytest.raises(UnreadableRecordError):
        r.open(sealed.version, sealed.blob[:10], aad=b"session/row-1")
    assert r.seal(b"x", aad=b"a").blob[:12] != r.seal(b"x", aad=b"a").blob[:12]  # fresh nonces


def test_rotation_new_records_use_the_new_version_old_ones_still_open() -> None:
    keys, clock = FakeKeys(), Clock()
    r = ring(keys, clock)
    old = r.seal(b"before", aad=b"a")
    new_version = keys.add()
    clock.now += REFRESH_SECONDS - 1
    assert r.seal(b"x", aad=b"a").version == old.version  # not re-read yet
    clock.now += 2
    rotated = r.seal(b"after", aad=b"a")
    assert rotated.version == new_version
    assert r.open(old.version, old.blob, aad=b"a") == b"before"
    assert r.open(rotated.version, rotated.blob, aad=b"a") == b"after"
    assert r.open(old.version, old.blob, aad=b"a") == b"before"
    # The re-read forgot the old version; it was read again once, not once per record.
    assert keys.reads == [None, None, old.version]


def test_a_version_disabled_in_the_vault_stops_opening_records_after_the_next_re_read() -> None:
    keys, clock = FakeKeys(), Clock()
    r = ring(keys, clock)
    old = r.seal(b"before", aad=b"a")
    keys.add()
    clock.now += REFRESH_SECONDS
    assert r.open(old.version, old.blob, aad=b"a") == b"before"
    del keys.versions[old.version]  # disabled: the vault no longer hands it out
    assert r.open(old.version, old.blob, aad=b"a") == b"before"  # until the next re-read
    clock.now += REFRESH_SECONDS
    r.latest_version()
    with pytest.raises(UnreadableRecordError):
        r.open(old.version, old.blob, aad=b"a")


def test_a_version_another_instance_sealed_with_is_read_once_and_adopted_when_newer() -> None:
    keys, clock = FakeKeys(), Clock()
    other, mine = ring(keys, Clock()), ring(keys, clock)
    mine.latest_version()
    newer = keys.add()
    sealed = SessionKeyRing(keys, clock=Clock()).seal(b"from elsewhere", aad=b"a")
    assert sealed.version == newer
    for _ in range(3):
        assert mine.open(sealed.version, sealed.blob, aad=b"a") == b"from elsewhere"
    assert keys.reads.count(newer) == 1
    assert mine.latest_version() == newer  # newer than ours: followed at once, not in 5 minutes
    del other


def test_unknown_versions_fail_closed_and_are_not_read_again() -> None:
    keys, clock = FakeKeys(), Clock()
    r = ring(keys, clock)
    blob = r.seal(b"x", aad=b"a").blob
    for _ in range(3):
        with pytest.raises(UnreadableRecordError):
            r.open("0" * 32, blob, aad=b"a")
    assert keys.reads.count("0" * 32) == 1
    with pytest.raises(UnreadableRecordError):
        r.open("../../secrets/other", blob, aad=b"a")  # malformed: never sent to the vault
    assert "../../secrets/other" not in keys.reads


def test_vault_outage_with_a_key_cached_keeps_working_and_retries_spaced() -> None:
    keys, clock = FakeKeys(), Clock()
    r = ring(keys, clock)
    sealed = r.seal(b"x", aad=b"a")
    keys.down = True
    clock.now += REFRESH_SECONDS
    for _ in range(5):
        assert r.open(sealed.version, r.seal(b"y", aad=b"a").blob, aad=b"a") == b"y"
    assert keys.reads.count(None) == 2  # one failed re-read, not one per call
    clock.now += RETRY_SECONDS
    r.latest_version()
    assert keys.reads.count(None) == 3
    keys.down = False
    clock.now += RETRY_SECONDS
    assert r.latest_version() == sealed.version
    assert keys.reads.count(None) == 4


def test_vault_outage_without_keys_is_a_held_503_then_recovers() -> None:
    keys, clock = FakeKeys(), Clock()
    keys.down = True
    r = ring(keys, clock)
    for _ in range(4):
        with pytest.raises(CredentialUnavailable) as caught:
            r.seal(b"x", aad=b"a")
        assert caught.value.retry_after is not None and 1 <= caught.value.retry_after <= HOLD_SECONDS
    assert keys.reads == [None]  # held: one vault read for four callers
    keys.down = False
    clock.now += HOLD_SECONDS
    assert r.seal(b"x", aad=b"a").version == keys.order[0]


def test_concurrent_first_use_reads_the_vault_once() -> None:
    keys, clock = FakeKeys(), Clock()
    r = ring(keys, clock)
    barrier = threading.Barrier(8)
    versions: list[str] = []

    def use() -> None:
        barrier.wait()
        versions.append(r.seal(b"x", aad=b"a").version)

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert versions == [keys.order[0]] * 8
    assert keys.reads == [None]


def test_derived_keys_differ_per_purpose_and_signatures_survive_rotation() -> None:
    keys, clock = FakeKeys(), Clock()
    r = ring(keys, clock)
    version, csrf = r.derive_key("csrf")
    assert r.derive_key("csrf") == (version, csrf)
    assert r.derive_key("cursor")[1] != csrf
    assert csrf != keys.versions[version].key  # the raw key is never used directly
    token = r.sign("csrf", b"session-hash")
    assert r.verify("csrf", b"session-hash", token)
    assert not r.verify("csrf", b"other-session", token)
    assert not r.verify("cursor", b"session-hash", token)
    record = r.seal(b"session", aad=b"row")
    keys.add()
    clock.now += REFRESH_SECONDS
    assert r.sign("csrf", b"session-hash") != token  # new version signs
    r.open(record.version, record.blob, aad=b"row")  # the person's session, sealed by the old version
    assert r.verify("csrf", b"session-hash", token)  # so the old token still verifies
    for bad in (None, "", "nodot", "a.b.c", f"{'0' * 32}.{token.split('.')[1]}", "x" * 300):
        assert not r.verify("csrf", b"session-hash", bad)


def test_verifying_a_token_never_reads_the_vault_for_the_version_it_names() -> None:
    keys, clock = FakeKeys(), Clock()
    r = ring(keys, clock)
    token = r.sign("csrf", b"s")
    mac = token.partition(".")[2]
    reads = len(keys.reads)
    for _ in range(50):  # invented versions: refused from memory, whatever the negative cache holds
        assert not r.verify("csrf", b"s", f"{secrets.token_hex(16)}.{mac}")
    older = keys.order[0]
    keys.add()
    clock.now += REFRESH_SECONDS  # the re-read forgets the older version ...
    assert r.verify("csrf", b"s", r.sign("csrf", b"s"))
    # ... so a token it signed is refused rather than read for (a person re-submits the form once).
    assert not r.verify("csrf", b"s", token) and token.startswith(older)
    assert keys.reads[reads:] == [None]  # the one scheduled re-read of the latest, nothing else


def test_decode_key_accepts_base64_forms_and_refuses_other_sizes() -> None:
    raw = secrets.token_bytes(32)
    for text in (
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode(),  # infra's postprovision hook: URL-safe with padding
        " " + base64.b64encode(raw).decode() + "\n",
    ):
        assert decode_key(text) == raw
    for bad in ("not base64 !!", base64.b64encode(b"short").decode(), ""):
        with pytest.raises(ConfigurationError) as caught:
            decode_key(bad)
        assert "256-bit" in caught.value.message or "base64" in caught.value.message
        assert bad not in caught.value.message or not bad


class FakeSecretClient:
    def __init__(self, error: Exception | None = None, value: str = "") -> None:
        self.error, self.value = error, value
        self.calls: list[tuple[str, str | None]] = []

    def get_secret(self, name: str, version: str | None = None) -> object:
        self.calls.append((name, version))
        if self.error is not None:
            raise self.error

        class Props:
            version = "v1"
            created_on = None

        class Secret:
            value = self.value
            properties = Props()

        return Secret()


def vault_source(client: FakeSecretClient, name: str, vault_url: str) -> VaultKeySource:
    return VaultKeySource(cast("SecretClient", client), name, vault_url)


def test_vault_source_maps_vault_answers() -> None:
    missing = vault_source(FakeSecretClient(vault_error(404, "SecretNotFound")), "sk", "https://kv/")
    with pytest.raises(ConfigurationError) as caught:
        missing.read(None)
    assert "SESSION_KEY_NAME" in caught.value.message and "256-bit" in caught.value.message
    assert missing.read("0" * 32) is None  # an old version gone: its records are retired
    disabled = vault_source(
        FakeSecretClient(vault_error(403, "Forbidden", inner="SecretDisabled")), "sk", "https://kv/"
    )
    assert disabled.read("0" * 32) is None
    for refusal in (vault_error(401, "Unauthorized"), vault_error(403, "Forbidden", inner="AccessDenied")):
        with pytest.raises(CredentialUnavailable):  # a refusal says nothing about the key: not retired
            vault_source(FakeSecretClient(refusal), "sk", "https://kv/").read("0" * 32)
    throttled = vault_source(
        FakeSecretClient(vault_error(429, "Throttled", headers={"Retry-After": "7"})), "sk", "https://kv/"
    )
    with pytest.raises(CredentialUnavailable):
        throttled.read("0" * 32)  # the record is not at fault: a 503, not "no session"
    good = base64.b64encode(b"k" * 32).decode()
    found = vault_source(FakeSecretClient(value=good), "sk", "https://kv/").read(None)
    assert found is not None and found.key == b"k" * 32 and "k" * 8 not in repr(found)


def test_an_older_version_is_read_once_for_concurrent_requests_and_its_outage_is_held() -> None:
    keys, clock = FakeKeys(), Clock()
    sealer = ring(keys, Clock())
    old = sealer.seal(b"old", aad=b"a")
    keys.add()
    r = ring(keys, clock)
    r.latest_version()  # knows only the new version
    barrier = threading.Barrier(6)
    opened: list[bytes] = []

    def open_old() -> None:
        barrier.wait()
        opened.append(r.open(old.version, old.blob, aad=b"a"))

    threads = [threading.Thread(target=open_old) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert opened == [b"old"] * 6 and keys.reads.count(old.version) == 1
    other = ring(keys, clock)
    other.latest_version()
    keys.down = True
    for _ in range(3):
        with pytest.raises(CredentialUnavailable) as caught:
            other.open(old.version, old.blob, aad=b"a")  # a 503, never "no session"
        assert caught.value.retry_after
    assert keys.reads.count(old.version) == 2  # held: one failed read for three requests
    keys.down = False
    clock.now += HOLD_SECONDS
    assert other.open(old.version, old.blob, aad=b"a") == b"old"


def test_a_version_created_in_the_same_second_as_ours_is_settled_by_the_vault_at_the_next_seal() -> None:
    # Key Vault's `created` has one-second resolution: two versions of one second cannot be ordered by it.
    keys, clock = FakeKeys(), Clock()
    mine = ring(keys, clock)
    ours = mine.latest_version()
    same_second = keys.add()
    keys.versions[same_second] = keys.versions[same_second]._replace(created=keys.versions[ours].created)
    sealed = SessionKeyRing(keys, clock=Clock()).seal(b"from elsewhere", aad=b"a")
    assert sealed.version == same_second
    reads = len(keys.reads)
    assert mine.open(sealed.version, sealed.blob, aad=b"a") == b"from elsewhere"
    assert mine.latest_version() == same_second  # the vault was asked at once, not in 5 minutes
    assert keys.reads[reads:] == [same_second, None]
    assert mine.seal(b"x", aad=b"a").version == same_second
    assert keys.reads[reads:] == [same_second, None]  # settled: no further read until the re-read is due
