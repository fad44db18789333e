"""The bank's offline card list: lost, blocked, damaged and replaced cards on the hot list, active
cards with an e-money sub-account as ID references of card number and NIK, under the card-list
key derived from the bank's ZPK. On SQLite and PostgreSQL (the `bank` fixture), over HTTP."""

from __future__ import annotations

from datetime import datetime

import pytest

from shared import offline
from shared.keys import demo_key_hex

from bank_penyalur.demo import generator
from bank_penyalur.offline_list import ListedCard, select_cards
from bank_penyalur.tables import ACTIVATED, BLOCKED, DAMAGED, DISTRIBUTED, LOST, REPLACED

from tests.bank_penyalur.conftest import start_bank, api_client

PATH = "/v1/offline/card-list"
# The switch holds the same demo ZPK of BNI and derives the same key from it.
LIST_KEY = offline.list_key(bytes.fromhex(demo_key_hex("bni", "zpk")), "bni")


def card_list(bank) -> dict:  # noqa: ANN001
    with api_client(bank.runtime) as client:
        response = client.get(PATH)
    assert response.status_code == 200, response.text
    return response.json()


def hot_ref(bank, label: str) -> str:  # noqa: ANN001
    return offline.hot_ref(LIST_KEY, bank.cards[label].pan)


def id_ref(bank, label: str) -> str:  # noqa: ANN001
    card = bank.cards[label]
    return offline.id_ref(LIST_KEY, card.pan, card.nik)


def test_the_list_refuses_lost_blocked_and_replaced_cards_and_names_active_ones(bank) -> None:  # noqa: ANN001
    listed = card_list(bank)
    assert listed["bank"] == "bni"
    assert listed["key_check"] == offline.list_key_check(LIST_KEY)
    assert listed["offline_limit_idr"] == bank.runtime.settings.offline_limit_idr == 150_000
    hot, ids = set(listed["hot"]), set(listed["ids"])
    for label in ("lost", "blocked", "replaced_old"):
        assert hot_ref(bank, label) in hot, label
        assert id_ref(bank, label) not in ids, label
    for label in ("normal", "zero_balance", "pkh_combo", "replaced_new"):  # the new card keeps the balance
        assert id_ref(bank, label) in ids, label
        assert hot_ref(bank, label) not in hot, label
    assert id_ref(bank, "no_emoney") not in ids and hot_ref(bank, "no_emoney") not in hot
    normal = bank.cards["normal"]
    assert offline.id_ref(LIST_KEY, normal.pan, bank.cards["pkh_combo"].nik) not in ids  # another holder's NIK


def test_generated_cards_are_listed_by_their_state(bank) -> None:  # noqa: ANN001
    listed = card_list(bank)
    people = [generator.generated_kpm(bank.runtime.bank, i) for i in range(20)]
    expected_ids = {offline.id_ref(LIST_KEY, p.pan, p.record.nik) for p in people if p.spendable}
    expected_hot = {offline.hot_ref(LIST_KEY, p.pan) for p in people if not p.activated}  # distributed, no PIN yet
    assert expected_ids <= set(listed["ids"]) and expected_hot <= set(listed["hot"])
    named_spendable = {"normal", "zero_balance", "pin_blocked", "pkh_combo", "replaced_new"}
    assert len(listed["ids"]) == len(expected_ids) + len(named_spendable)
    assert len(listed["hot"]) == len(expected_hot) + len({"lost", "blocked", "replaced_old"})


def test_the_list_is_sorted_and_the_same_every_time(bank) -> None:  # noqa: ANN001
    first, second = card_list(bank), card_list(bank)
    assert (first["hot"], first["ids"]) == (second["hot"], second["ids"])
    for refs in (first["hot"], first["ids"]):
        assert refs == sorted(refs) and len(set(refs)) == len(refs)
        assert all(len(r) == offline.REF_HEX_LENGTH and r == r.upper() for r in refs)
    assert first["truncated"] is False
    assert datetime.fromisoformat(first["generated_at"]).isoformat() == "2026-11-03T09:00:00+07:00"


def test_a_card_reported_lost_moves_to_the_hot_list(bank) -> None:  # noqa: ANN001
    with api_client(bank.runtime) as client:
        pan = bank.cards["normal"].pan
        assert client.post(f"/v1/cards/{pan}/report-lost", json={"reason": "Hilang di pasar"}).status_code == 200
        listed = client.get(PATH).json()
    assert hot_ref(bank, "normal") in listed["hot"] and id_ref(bank, "normal") not in listed["ids"]


def test_ten_thousand_kpm_are_all_listed(tmp_path, clock) -> None:  # noqa: ANN001
    """A bank of 10,000 KPM lists every active card in one answer (how fast: bench/offline_list.py)."""
    runtime = start_bank({"data_dir": tmp_path}, clock, kpm=10_000)
    try:
        with api_client(runtime) as client:
            response = client.get(PATH)
    finally:
        runtime.close()
    assert response.status_code == 200
    listed = response.json()
    assert len(listed["ids"]) > 9_500 and len(set(listed["ids"])) == len(listed["ids"])
    assert not listed.get("truncated")


# -- which cards, as a pure choice --------------------------------------------------------------------


def card(card_id: int, status: str = ACTIVATED, event_id: int | None = None, replaced: bool = False, emoney: bool = True) -> ListedCard:
    return ListedCard(card_id, f"sealed-{card_id}", f"{card_id:016d}", status, event_id or card_id, replaced, emoney)


def test_every_status_but_activated_is_hot_and_so_is_a_replaced_card() -> None:
    cards = [card(1), card(2, BLOCKED), card(3, LOST), card(4, DAMAGED), card(5, REPLACED), card(6, DISTRIBUTED),
             card(7, replaced=True), card(8, emoney=False)]
    chosen = select_cards(cards)
    assert {c.card_id for c in chosen.hot} == {2, 3, 4, 5, 6, 7}
    assert [c.card_id for c in chosen.ids] == [1]
    assert not chosen.truncated


@pytest.mark.parametrize("refs_max", [1, 2, 5])
def test_past_the_bound_the_newest_changes_are_hot_and_the_oldest_cards_named(refs_max: int) -> None:
    cards = [card(n, LOST, event_id=100 + n) for n in range(1, 6)] + [card(n) for n in range(10, 15)]
    chosen = select_cards(cards, refs_max=refs_max)
    assert [c.card_id for c in chosen.hot] == [5, 4, 3, 2, 1][:refs_max]
    assert [c.card_id for c in chosen.ids] == [10, 11, 12, 13, 14][:refs_max]
    assert chosen.truncated == (refs_max < 5)
