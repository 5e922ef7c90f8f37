"""``make run`` with a local.settings.json written before a setting existed: the keys it lacks are added
from what a fresh file would hold (so mail ingestion is on), the user's own values are never changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.run_local import add_missing_settings, local_settings

ENV = {"ENTRA_TENANT_ID": "t-1", "ENTRA_CLIENT_ID": "c-1", "MAIL_READERS_GROUP_ID": "g-1"}


def fresh() -> dict[str, object]:
    return local_settings(ENV, "UseDevelopmentStorage=true", 7072)


def test_an_old_file_gets_the_missing_keys_and_keeps_every_value_it_has(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    old = {
        "IsEncrypted": False,
        "Values": {"ENTRA_TENANT_ID": "mine", "MAILBOX_SCOPE": "", "CUSTOM": "x"},
        "Host": {"CORS": "*"},
    }
    path.write_text(json.dumps(old))
    added = add_missing_settings(path, fresh())
    written = json.loads(path.read_text())
    values = written["Values"]
    assert "MAIL_INGESTION_MODE" in added and "NOTIFICATION_BASE_URL" in added
    assert "ENTRA_TENANT_ID" not in added and "MAILBOX_SCOPE" not in added
    assert added == sorted(added)
    assert values["MAIL_INGESTION_MODE"] == "webhook"
    assert values["NOTIFICATION_BASE_URL"] == "https://localhost:7072"
    assert values["ENTRA_TENANT_ID"] == "mine"  # the user's value
    assert values["MAILBOX_SCOPE"] == ""  # an empty value the user chose stays empty
    assert values["CUSTOM"] == "x"
    assert written["Host"] == {"CORS": "*"}
    assert set(values) == set(fresh()["Values"]) | {"CUSTOM"}  # type: ignore[call-overload]


def test_a_complete_file_is_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    settings = fresh()
    settings["Values"]["MAIL_INGESTION_MODE"] = "off"  # type: ignore[index]
    text = json.dumps(settings)
    path.write_text(text)
    assert add_missing_settings(path, fresh()) == []
    assert path.read_text() == text  # the user's "off" stays, byte for byte


@pytest.mark.parametrize("text", ["not json", "[]", '{"Values": []}'])
def test_a_file_that_is_not_local_settings_is_refused_and_left_alone(tmp_path: Path, text: str) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(text)
    with pytest.raises(ValueError):
        add_missing_settings(path, fresh())
    assert path.read_text() == text
