"""The terminal's state file keeps no card number in clear: field 2 of the stored messages (last
purchase, pending reversals, purchase in flight) is sealed under a key derived from the terminal
master key, opened again on load; files written before (field 2 in clear) still load and are
sealed at the next save."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared import keys
from shared.cards import make_pan, mask_pan
from shared.banks import get_bank
from edc_terminal.store import (
    JournalEntry,
    LastPurchase,
    PendingReversal,
    StoreError,
    TerminalState,
    TerminalStore,
    WorkingKeys,
    state_key,
)

TID = "BNI00003"
BNI = get_bank("bni")
PAN = make_pan(BNI.iin, 31)
OTHER_PAN = make_pan(BNI.iin, 32)
THIRD_PAN = make_pan(BNI.iin, 33)


def state_with_cards() -> TerminalState:
    purchase = {"t": "0200", "2": PAN, "3": "000000", "4": "000000010000", "11": "000039", "41": TID}
    return TerminalState(
        tid=TID,
        stan=41,
        batch=2,
        keys=WorkingKeys("A" * 32, "B" * 32, "ABCDEF", "123456"),
        pending_reversals=[PendingReversal({"t": "0400", "2": OTHER_PAN, "11": "000040", "90": "0" * 42}, "2026-11-03T09:00:00", 2)],
        last_purchase=LastPurchase(purchase, "000000000001", "654321", "2026-11-03T08:59:00"),
        in_flight_purchase={"t": "0200", "2": THIRD_PAN, "11": "000041"},
        journal=[JournalEntry("purchase", "000039", "000000000001", "654321", 10_000, mask_pan(PAN), "2026-11-03T08:59:00", 2)],
    )


def test_card_numbers_are_sealed_in_the_file_and_whole_in_memory(tmp_path: Path) -> None:
    store = TerminalStore(tmp_path, TID)
    store.save(state_with_cards())
    text = store.path.read_text()
    for pan in (PAN, OTHER_PAN, THIRD_PAN):
        assert pan not in text
    data = json.loads(text)
    assert data["version"] == 2
    sealed = [data["last_purchase"]["request"]["2"], data["pending_reversals"][0]["message"]["2"], data["in_flight_purchase"]["2"]]
    assert all(value.startswith("v1:") for value in sealed) and len(set(sealed)) == 3
    assert TerminalStore(tmp_path, TID).load() == state_with_cards()


def test_the_seal_is_keyed_by_the_terminal_master_key(tmp_path: Path) -> None:
    tmk = keys.new_key()
    TerminalStore(tmp_path, TID, tmk=tmk).save(state_with_cards())
    assert TerminalStore(tmp_path, TID, tmk=tmk).load() == state_with_cards()
    with pytest.raises(StoreError, match="does not open under this terminal's master key"):
        TerminalStore(tmp_path, TID).load()  # the demo TMK is not the one it was sealed under
    assert state_key(tmk, TID) != state_key(tmk, "BNI00004") != state_key(keys.new_key(), TID)
    assert keys.derive(tmk, "a") == keys.derive(tmk, "a") and len(keys.derive(tmk, "a")) == 32


def test_a_file_copied_to_another_terminal_does_not_open(tmp_path: Path) -> None:
    store = TerminalStore(tmp_path, TID)
    store.save(state_with_cards())
    other = TerminalStore(tmp_path, "BNI00004")
    data = json.loads(store.path.read_text())
    other.path.write_text(json.dumps({**data, "tid": "BNI00004"}))
    with pytest.raises(StoreError):
        other.load()


def test_an_old_file_with_clear_card_numbers_loads_and_is_sealed_at_the_next_save(tmp_path: Path) -> None:
    store = TerminalStore(tmp_path, TID)
    store.path.parent.mkdir(parents=True)
    old = {**state_with_cards().to_dict(), "version": 1}  # as version 1 wrote it: field 2 in clear
    store.path.write_text(json.dumps(old, indent=2))
    assert PAN in store.path.read_text()
    loaded = store.load()
    assert loaded == state_with_cards()
    store.save(loaded)
    text = store.path.read_text()
    assert all(pan not in text for pan in (PAN, OTHER_PAN, THIRD_PAN))
    assert store.load() == state_with_cards()


def test_a_state_without_messages_is_unchanged(tmp_path: Path) -> None:
    store = TerminalStore(tmp_path, TID)
    store.save(TerminalState(tid=TID, stan=7))
    assert store.load() == TerminalState(tid=TID, stan=7)
    data = json.loads(store.path.read_text())
    assert data["last_purchase"] is None and data["in_flight_purchase"] is None and data["pending_reversals"] == []
