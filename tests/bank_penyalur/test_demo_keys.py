"""A bank on the public demo keys or credentials says so at start and in /health; told to
require real keys, it refuses to start without them and without real credentials."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from shared.credentials import demo_credential
from shared.keys import demo_key_hex, new_key

from bank_penyalur.api.app import create_app
from bank_penyalur.cli import bank_app
from bank_penyalur.runtime import BankRuntime
from bank_penyalur.settings import BankSettings, DemoKeysRefused

REAL = {
    "zpk_hex": new_key().hex().upper(),
    "pvk_hex": new_key().hex().upper(),
    "pan_hash_key_hex": new_key().hex().upper(),
    "pan_key_hex": new_key().hex().upper(),
    "switch_credential": "switch-" + new_key().hex(),
    "operator_credential": "operator-" + new_key().hex(),
}


def health(runtime: BankRuntime) -> dict:
    try:
        return TestClient(create_app(runtime)).get("/health").json()
    finally:
        runtime.close()


def test_a_bank_on_demo_keys_says_so_at_start_and_in_health(tmp_path, clock, caplog) -> None:  # noqa: ANN001
    with caplog.at_level(logging.WARNING, logger="bank_penyalur"):
        runtime = BankRuntime.start(BankSettings(data_dir=tmp_path), clock=clock)
    assert any("public demo keys (zpk, pvk, pan_hash, pan)" in r.getMessage() for r in caplog.records)
    assert any("public demo credentials (switch, operator)" in r.getMessage() for r in caplog.records)
    answer = health(runtime)
    assert answer["demo_keys"] is True and "SEMBAKO_BANK_REQUIRE_REAL_KEYS" in answer["warning"]
    assert "SEMBAKO_BANK_SWITCH_CREDENTIAL, SEMBAKO_BANK_OPERATOR_CREDENTIAL" in answer["warning"]


def test_a_bank_with_real_keys_but_a_demo_credential_says_which(tmp_path, clock, caplog) -> None:  # noqa: ANN001
    keys = {name: value for name, value in REAL.items() if name != "operator_credential"}
    with caplog.at_level(logging.WARNING, logger="bank_penyalur"):
        runtime = BankRuntime.start(BankSettings(data_dir=tmp_path, **keys), clock=clock)
    answer = health(runtime)
    assert answer["demo_keys"] is True
    assert answer["warning"].startswith("accepts the public demo credentials (operator): anyone who can reach it can call its operations endpoints")
    assert "demo keys" not in answer["warning"] and "SEMBAKO_BANK_SWITCH_CREDENTIAL" not in answer["warning"]


def test_a_bank_with_real_keys_does_not(tmp_path, clock, caplog) -> None:  # noqa: ANN001
    with caplog.at_level(logging.WARNING, logger="bank_penyalur"):
        runtime = BankRuntime.start(BankSettings(data_dir=tmp_path, require_real_keys=True, **REAL), clock=clock)
    assert not [r for r in caplog.records if "demo keys" in r.getMessage()]
    assert health(runtime)["demo_keys"] is False


@pytest.mark.parametrize(
    "keys",
    [
        {},
        {"zpk_hex": REAL["zpk_hex"]},
        {"pvk_hex": REAL["pvk_hex"]},
        {**REAL, "pvk_hex": demo_key_hex("bni", "pvk").lower()},
        {"zpk_hex": REAL["zpk_hex"], "pvk_hex": REAL["pvk_hex"]},
        {**REAL, "pan_hash_key_hex": None},
        {**REAL, "pan_key_hex": demo_key_hex("bni", "pan")},
        {**REAL, "switch_credential": None},
        {**REAL, "operator_credential": demo_credential("bni", "operator")},
    ],
    ids=[
        "none", "zpk-only", "pvk-only", "pvk-set-to-the-demo-key", "no-pan-keys", "no-pan-hash-key",
        "pan-key-set-to-the-demo-key", "no-switch-credential", "operator-credential-set-to-the-demo-one",
    ],
)
def test_requiring_real_keys_refuses_to_start_on_any_demo_key(tmp_path, clock, keys: dict) -> None:  # noqa: ANN001
    with pytest.raises(DemoKeysRefused, match="SEMBAKO_BANK_"):
        BankRuntime.start(BankSettings(data_dir=tmp_path, require_real_keys=True, **keys), clock=clock)
    assert not list(tmp_path.iterdir())  # refused before the database was even created


def test_the_setting_comes_from_the_environment_and_the_cli_refuses(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("SEMBAKO_BANK_REQUIRE_REAL_KEYS", "true")
    assert BankSettings().require_real_keys is True
    result = CliRunner().invoke(bank_app, ["ledger-check", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "real keys are required" in result.output
    monkeypatch.setenv("SEMBAKO_BANK_ZPK_HEX", REAL["zpk_hex"])
    monkeypatch.setenv("SEMBAKO_BANK_PVK_HEX", REAL["pvk_hex"])
    result = CliRunner().invoke(bank_app, ["ledger-check", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "SEMBAKO_BANK_PAN_HASH_KEY_HEX" in result.output  # card number keys too
    monkeypatch.setenv("SEMBAKO_BANK_PAN_HASH_KEY_HEX", REAL["pan_hash_key_hex"])
    monkeypatch.setenv("SEMBAKO_BANK_PAN_KEY_HEX", REAL["pan_key_hex"])
    result = CliRunner().invoke(bank_app, ["ledger-check", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "SEMBAKO_BANK_SWITCH_CREDENTIAL" in result.output  # and the credentials
    monkeypatch.setenv("SEMBAKO_BANK_SWITCH_CREDENTIAL", REAL["switch_credential"])
    monkeypatch.setenv("SEMBAKO_BANK_OPERATOR_CREDENTIAL", REAL["operator_credential"])
    assert CliRunner().invoke(bank_app, ["ledger-check", "--data-dir", str(tmp_path)]).exit_code == 0
