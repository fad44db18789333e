"""The headless driver and `sembako edc-cli` against the fake switch: Datang, Cek, Bayar,
Terima over real TCP, the timeout that must give the money back, and plain errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from edc_terminal.cli import edc_app
from edc_terminal.client import SwitchUnavailable
from edc_terminal.headless import InputError, run
from edc_terminal.store import TerminalStore
from shared import keys as keylib

from tests.edc_terminal.conftest import PAN, PIN, POOR_PAN, POOR_PIN, START_BALANCE
from tests.edc_terminal.fakes import FakeSwitch, FixedClock

TID = "BNI00001"
TIMEOUT_MS = 300
ENV = {"SEMBAKO_DATA_DIR": None, "COLUMNS": "200"}


def headless(switch: FakeSwitch, data_dir: Path, command: str, **kwargs: Any) -> dict:
    tid = kwargs.pop("tid", TID)
    coroutine = run(command, tid, "127.0.0.1", switch.port, data_dir, clock=FixedClock(), timeout_ms=TIMEOUT_MS, **kwargs)
    return asyncio.run(asyncio.wait_for(coroutine, 10))


def cli(*args: str | Path) -> Any:
    return CliRunner().invoke(edc_app, [str(a) for a in args], env=ENV)


def switch_arg(switch: FakeSwitch) -> tuple[str, str]:
    return ("--switch", f"127.0.0.1:{switch.port}")


# -- headless ------------------------------------------------------------------------------------


def test_signon_stores_the_switch_keys_wrapped(fake_switch: FakeSwitch, tmp_path: Path) -> None:
    result = headless(fake_switch, tmp_path, "signon")
    assert (result["rc"], result["rc_text"], result["tid"]) == ("00", "Transaksi berhasil", TID)
    # sign-on, key exchange, then the offline card list (one page: the fake's list is empty)
    assert [(m["t"], m["70"]) for m in fake_switch.received] == [("0800", "001"), ("0800", "101"), ("0800", "360")]
    stored = TerminalStore(tmp_path, TID).load()
    tmk = bytes.fromhex(keylib.demo_terminal_master_key_hex(TID))
    assert keylib.unwrap(tmk, stored.keys.tpk) == fake_switch.keys[TID].tpk
    assert keylib.unwrap(tmk, stored.keys.tak) == fake_switch.keys[TID].tak


def test_unknown_terminal_gets_58_and_sends_nothing_else(fake_switch: FakeSwitch, tmp_path: Path) -> None:
    fake_switch.unknown_tids = {"BNI00002"}
    result = headless(fake_switch, tmp_path, "cek", tid="BNI00002", pan=PAN, pin=PIN)
    assert (result["rc"], result["rc_text"]) == ("58", "Terminal/e-Warong tidak terdaftar")
    assert fake_switch.mtis() == ["0800"]


def test_echo_signs_on_first_when_there_are_no_keys(fake_switch: FakeSwitch, tmp_path: Path) -> None:
    assert headless(fake_switch, tmp_path, "echo")["rc"] == "00"
    assert headless(fake_switch, tmp_path, "echo")["rc"] == "00"
    assert [m["70"] for m in fake_switch.received] == ["001", "101", "360", "301", "301"]


def test_cek_then_bayar_then_reversal(fake_switch: FakeSwitch, tmp_path: Path) -> None:
    cek = headless(fake_switch, tmp_path, "cek", pan=PAN, pin=PIN)
    assert (cek["rc"], cek["balance"], cek["stan"]) == ("00", START_BALANCE, "000004")  # after sign-on, keys, card list
    assert "CEK SALDO" in cek["receipt"] and "Rp150.000" in cek["receipt"] and PAN not in cek["receipt"]

    bayar = headless(fake_switch, tmp_path, "bayar", pan=PAN, pin=PIN, amount_idr=40_000)
    assert (bayar["rc"], bayar["amount"], bayar["balance"], bayar["stan"]) == ("00", 40_000, 110_000, "000005")
    assert bayar["rrn"] and bayar["approval_code"] and "Rp110.000" in bayar["receipt"]
    assert fake_switch.accounts[PAN].balance == 110_000

    void = headless(fake_switch, tmp_path, "reversal")
    assert (void["rc"], void["amount"], void["approval_code"]) == ("00", 40_000, bayar["approval_code"])
    assert "PEMBATALAN" in void["receipt"]
    assert fake_switch.accounts[PAN].balance == START_BALANCE
    assert fake_switch.mtis() == ["0800", "0800", "0800", "0100", "0200", "0400"]
    assert fake_switch.mac_failures == 0

    with pytest.raises(InputError, match="Tidak ada transaksi pembelian"):
        headless(fake_switch, tmp_path, "reversal")


def test_wrong_pin_and_insufficient_funds_are_answers_not_errors(fake_switch: FakeSwitch, tmp_path: Path) -> None:
    wrong = headless(fake_switch, tmp_path, "bayar", pan=PAN, pin="654321", amount_idr=1_000)
    assert (wrong["rc"], wrong["rc_text"], wrong["approved"]) == ("55", "PIN salah", False)
    poor = headless(fake_switch, tmp_path, "bayar", pan=POOR_PAN, pin=POOR_PIN, amount_idr=1_000)
    assert (poor["rc"], poor["rc_text"]) == ("51", "Saldo tidak cukup")
    assert fake_switch.pin_failures == 1


def test_lost_purchase_answer_is_reversed_and_the_money_comes_back(fake_switch: FakeSwitch, tmp_path: Path) -> None:
    headless(fake_switch, tmp_path, "signon")
    fake_switch.silent_mtis = {"0210", "0200"}  # the bank debits, the answer never arrives
    result = headless(fake_switch, tmp_path, "bayar", pan=PAN, pin=PIN, amount_idr=25_000)
    assert (result["rc"], result["reversal"], result["pending_reversals"]) == ("91", "reversed", 0)
    assert "saldo akan dikembalikan" in result["message"]
    assert fake_switch.mtis()[-2:] == ["0200", "0400"]
    assert fake_switch.accounts[PAN].balance == START_BALANCE


def test_unanswered_reversal_waits_for_the_next_connection(fake_switch: FakeSwitch, tmp_path: Path) -> None:
    headless(fake_switch, tmp_path, "signon")
    fake_switch.silent_mtis = {"0200"}
    fake_switch.lost_mtis = {"0400", "0401"}
    result = headless(fake_switch, tmp_path, "bayar", pan=PAN, pin=PIN, amount_idr=25_000)
    assert (result["rc"], result["reversal"], result["pending_reversals"]) == ("91", "pending", 1)
    assert fake_switch.mtis()[-4:] == ["0200", "0400", "0401", "0401"]
    assert fake_switch.accounts[PAN].balance == START_BALANCE - 25_000  # debited, not yet reversed

    fake_switch.silent_mtis = fake_switch.lost_mtis = set()
    cek = headless(fake_switch, tmp_path, "cek", pan=PAN, pin=PIN)
    assert fake_switch.mtis()[-2:] == ["0401", "0100"]
    assert (cek["rc"], cek["balance"], cek["pending_reversals"]) == ("00", START_BALANCE, 0)


def test_bad_mac_on_a_balance_answer_is_no_answer(fake_switch: FakeSwitch, tmp_path: Path) -> None:
    fake_switch.bad_mac_mtis = {"0110"}
    result = headless(fake_switch, tmp_path, "cek", pan=PAN, pin=PIN)
    assert (result["rc"], result["balance"], result["pending_reversals"]) == ("91", None, 0)


def test_bad_inputs_are_refused_before_connecting(closed_port: int, tmp_path: Path) -> None:
    cases = [
        ({"command": "cek", "pan": PAN}, "PIN wajib diisi"),
        ({"command": "bayar", "pan": PAN, "pin": PIN}, "Nominal wajib diisi"),
        ({"command": "bayar", "pan": PAN, "pin": PIN, "amount_idr": 0}, "lebih dari Rp0"),
        ({"command": "cek", "pan": PAN, "pin": "12"}, "PIN harus 6 digit"),
        ({"command": "cek", "pan": "123", "pin": PIN}, "Kartu tidak terbaca"),
        ({"command": "cek", "pan": PAN, "pin": PIN, "tid": "XYZ00001"}, "tidak dikenal"),
        ({"command": "tarik", "pan": PAN, "pin": PIN}, "Perintah tidak dikenal"),
    ]
    for kwargs, reason in cases:
        command, tid = kwargs.pop("command"), kwargs.pop("tid", TID)
        with pytest.raises(InputError, match=reason):
            asyncio.run(run(command, tid, "127.0.0.1", closed_port, tmp_path, **kwargs))


def test_connection_refused_raises_switch_unavailable(closed_port: int, tmp_path: Path) -> None:
    with pytest.raises(SwitchUnavailable, match="koneksi ditolak"):
        asyncio.run(asyncio.wait_for(run("echo", TID, "127.0.0.1", closed_port, tmp_path), 5))


# -- CLI -----------------------------------------------------------------------------------------


def test_cli_signon_and_bayar_print_exactly_one_json_object(fake_switch: FakeSwitch, tmp_path: Path) -> None:
    signon = cli("signon", *switch_arg(fake_switch), "--data-dir", tmp_path, "--json", "--timeout-ms", TIMEOUT_MS)
    assert signon.exit_code == 0, signon.output
    assert json.loads(signon.stdout)["rc"] == "00"

    args = ("bayar", "--card", PAN, "--pin", PIN, "--amount", "15000", *switch_arg(fake_switch), "--data-dir", tmp_path)
    bayar = cli(*args, "--json", "--timeout-ms", TIMEOUT_MS)
    assert bayar.exit_code == 0, bayar.output
    lines = bayar.stdout.strip().splitlines()
    assert len(lines) == 1
    payload = json.loads(lines[0])
    assert (payload["rc"], payload["amount"], payload["balance"], payload["tid"]) == ("00", 15_000, 135_000, TID)
    assert {"rc_text", "rrn", "stan", "receipt"} <= payload.keys()


def test_cli_prints_the_receipt_without_json(fake_switch: FakeSwitch, tmp_path: Path) -> None:
    result = cli("cek", "--card", PAN, "--pin", PIN, "--terminal", "BNI00002", *switch_arg(fake_switch), "--data-dir", tmp_path)
    assert result.exit_code == 0, result.output
    assert "CEK SALDO" in result.stdout and "Rp150.000" in result.stdout and "BNI00002" in result.stdout
    assert PAN not in result.stdout and PIN not in result.stdout


def test_cli_timeout_is_a_non_zero_exit_with_rc_91(fake_switch: FakeSwitch, tmp_path: Path) -> None:
    fake_switch.silent_mtis = {"0800"}
    result = cli("echo", *switch_arg(fake_switch), "--data-dir", tmp_path, "--json", "--timeout-ms", TIMEOUT_MS)
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["rc"] == "91"


def test_cli_connection_refused_is_a_plain_error(closed_port: int, tmp_path: Path) -> None:
    result = cli("echo", "--switch", f"127.0.0.1:{closed_port}", "--data-dir", tmp_path)
    assert result.exit_code == 3
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert f"Gagal: Switch 127.0.0.1:{closed_port} tidak dapat dihubungi: koneksi ditolak" in result.stderr

    as_json = cli("echo", "--switch", f"127.0.0.1:{closed_port}", "--data-dir", tmp_path, "--json")
    assert as_json.exit_code == 3
    assert "tidak dapat dihubungi" in json.loads(as_json.stdout)["error"]


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("bayar", "--card", PAN, "--pin", PIN, "--amount", "sepuluh ribu"), "Nominal harus berupa angka"),
        (("bayar", "--card", PAN, "--pin", "12", "--amount", "1000"), "PIN harus 6 digit angka"),
        (("cek", "--card", PAN, "--pin", PIN, "--switch", "localhost"), "Alamat switch harus HOST:PORT"),
    ],
)
def test_cli_bad_input_is_a_plain_error(tmp_path: Path, args: tuple[str, ...], reason: str) -> None:
    result = cli(*args, "--data-dir", tmp_path)
    assert result.exit_code == 2, result.output
    assert reason in result.stderr and "Traceback" not in result.output


def test_cli_trace_prints_the_exchanges_to_stderr_masked(fake_switch: FakeSwitch, tmp_path: Path) -> None:
    args = ("bayar", "--card", PAN, "--pin", PIN, "--amount", "15000", *switch_arg(fake_switch), "--data-dir", tmp_path)
    result = cli(*args, "--timeout-ms", TIMEOUT_MS, "--trace")
    assert result.exit_code == 0, result.output
    assert "PEMBELIAN SEMBAKO" in result.stdout and "Permintaan" not in result.stdout
    headers = [line for line in result.stderr.splitlines() if "STAN" in line and "->" in line]
    expected = [["sign-on", "0800 -> 0810"], ["tukar kunci", "0800 -> 0810"], ["daftar kartu", "0800 -> 0810"], ["bayar", "0200 -> 0210"]]
    assert [h.split("  ")[1:3] for h in headers] == expected
    assert "STAN 000003  RC 00" in headers[2] and headers[2].endswith("dijawab")
    assert "Primary account number" in result.stderr and "Personal identification number data" in result.stderr
    assert PAN not in result.stderr and PAN.encode().hex().upper() not in result.stderr and PIN not in result.stderr
    assert "EWBNI0000000001" in result.stderr and "Rp15.000" in result.stderr


def test_cli_without_trace_prints_no_messages(fake_switch: FakeSwitch, tmp_path: Path) -> None:
    result = cli("echo", *switch_arg(fake_switch), "--data-dir", tmp_path, "--timeout-ms", TIMEOUT_MS)
    assert result.exit_code == 0, result.output
    assert "Permintaan" not in result.stderr and "0800 -> 0810" not in result.stderr
