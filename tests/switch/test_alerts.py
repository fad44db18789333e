"""Alerts drawn from the field problems, from journal rows as the switch writes them.

Every rule fires on the problem it names, built as the journal would hold it on Tuesday
3 November 2026 (WIB): an e-Warong swiping the KPM cards it holds, a shop taking the benefit as
soon as BNI disbursed it, a family with two active cards, PINs tried on many cards, reversal
storms at a terminal and towards a bank, a terminal silent for days, goods offered above HET.

And an ordinary morning stays quiet: eight e-Warong from 08:00 to 11:00, each KPM checking the
balance and paying a few minutes apart, a wrong PIN now and then, a purchase timed out and
reversed, BRI's disbursement landing at 07:30.

The rules are tested as pure functions (`switch.alerts.detect`), then through
`GET /v1/alerts` on SQLite and PostgreSQL (journal, POS reports, bank scope).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from shared.banks import Bank, get_bank
from shared.cards import make_pan, mask_pan
from shared.clock import FixedClock
from switch import alerts as rules
from switch.alerts import AlertFacts, AlertThresholds, detect
from switch.journal import Journal, TransactionRecord
from switch.ops import access
from switch.ops.app import create_ops_app
from switch.ops.routes.het_attempts import HET_REPORTS_PER_MINUTE_MAX
from tests.switch.test_journal import open_journal, terminal, transaction
from tests.switch.test_ops_api import PAN_RUN

DAY = date(2026, 11, 3)
BNI, BRI, MDR, BTN = (get_bank(code) for code in ("bni", "bri", "mandiri", "btn"))
DEFAULTS = AlertThresholds()


def at(hh: int, mm: int, ss: int = 0, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, ss)


def card(bank: Bank, serial: int) -> str:
    return make_pan(bank.iin, serial)


@dataclass
class Journalled:
    """Journal records in the making, as the switch core writes them: one RRN after another,
    each terminal counting its own STANs."""

    records: list[TransactionRecord] = field(default_factory=list)
    _rrns: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _stans: dict[str, Iterator[int]] = field(default_factory=dict)

    def add(self, when: datetime, bank: Bank, n: int, pan: str, kind: str = "purchase", rc: str = "00",
            amount_idr: int = 25_000, original_rrn: str | None = None, mti: str | None = None) -> TransactionRecord:  # fmt: skip
        tid = bank.terminal_id(n)
        stan = next(self._stans.setdefault(tid, itertools.count(1)))
        issuer = next(b.code for b in (BNI, BRI, MDR, BTN) if pan.startswith(b.iin))
        extra = {"mti": mti} if mti else {}
        record = transaction(
            f"{next(self._rrns):012d}", f"{stan:06d}", kind, pan=pan, tid=tid, mid=bank.merchant_id(n), bank_code=issuer,
            amount_idr=0 if kind == "inquiry" else amount_idr, rc=rc, approval_code=None if rc != "00" else f"A{stan:05d}",
            original_rrn=original_rrn, created_at=when, transmission_date=when.date(), **extra,
        )  # fmt: skip
        self.records.append(record)
        return record

    def visit(self, when: datetime, bank: Bank, n: int, pan: str, amount_idr: int) -> TransactionRecord:
        """Cek then Bayar: a balance inquiry, the purchase 90 seconds later."""
        self.add(when, bank, n, pan, "inquiry")
        return self.add(when + timedelta(seconds=90), bank, n, pan, amount_idr=amount_idr)

    def timed_out_and_reversed(self, when: datetime, bank: Bank, n: int, pan: str, repeat: bool = False) -> None:
        purchase = self.add(when, bank, n, pan, rc="91")
        self.add(when + timedelta(seconds=40), bank, n, pan, "reversal", original_rrn=purchase.rrn)
        if repeat:
            self.add(when + timedelta(seconds=70), bank, n, pan, "reversal", original_rrn=purchase.rrn, mti="0401")

    def rows(self) -> list[rules.JournalRow]:
        return [journal_row(r) for r in sorted(self.records, key=lambda r: r.created_at)]


ACQUIRERS = {"BNI": "bni", "BRI": "bri", "MDR": "mandiri", "BTN": "btn"}


def journal_row(r: TransactionRecord) -> rules.JournalRow:
    return rules.JournalRow(r.created_at, r.rrn, r.tid, r.mid, r.kind, r.rc, r.bank_code, r.pan_hash or r.pan_masked, r.pan_masked,
                            r.original_rrn, ACQUIRERS[r.tid[:3]])  # fmt: skip


BRI_DISBURSED = rules.Disbursement("bri", "2026-11", at(7, 20), at(7, 30), 1_000)
BNI_DISBURSED = rules.Disbursement("bni", "2026-11", at(0, 0), at(0, 5), 1_000)
OUR_TERMINALS = [(BNI, 1), (BNI, 2), (BRI, 1), (BRI, 2), (BRI, 3), (MDR, 1), (MDR, 2), (BTN, 1)]


def ordinary_morning(seed: int = 2026) -> Journalled:
    """Eight e-Warong from 08:00 to 11:00: a KPM every 3 to 8 minutes at each, most with a card of
    the e-Warong's bank; one in twelve mistypes the PIN once, one in thirty has the purchase time
    out and reversed (the reversal sometimes repeated)."""
    rng = random.Random(seed)
    traffic = Journalled()
    serials = itertools.count(100)
    for bank, n in OUR_TERMINALS:
        when = at(8, 0) + timedelta(seconds=rng.randrange(300))
        while when < at(11, 0):
            issuer = bank if rng.random() < 0.9 else rng.choice([BNI, BRI, MDR, BTN])
            pan = card(issuer, next(serials))
            if rng.random() < 1 / 12:
                traffic.add(when, bank, n, pan, "inquiry", rc="55")
                when += timedelta(seconds=45)
            if rng.random() < 1 / 30:
                traffic.add(when, bank, n, pan, "inquiry")
                traffic.timed_out_and_reversed(when + timedelta(seconds=90), bank, n, pan, repeat=rng.random() < 0.5)
            else:
                traffic.visit(when, bank, n, pan, rng.randrange(20, 300) * 500)
            when += timedelta(seconds=rng.randrange(180, 480))
    return traffic


def activity(records: list[TransactionRecord]) -> list[rules.TerminalActivity]:
    latest: dict[str, TransactionRecord] = {}
    for r in records:
        if r.tid not in latest or r.created_at > latest[r.tid].created_at:
            latest[r.tid] = r
    return [rules.TerminalActivity(r.tid, r.mid, ACQUIRERS[r.tid[:3]], r.created_at) for r in latest.values()]


def morning_facts(traffic: Journalled, now: datetime = at(11, 0), **more) -> AlertFacts:  # noqa: ANN003
    return AlertFacts(now=now, rows=traffic.rows(), disbursements=[BRI_DISBURSED], terminals=activity(traffic.records), **more)


def kinds(found: list[rules.Alert]) -> list[str]:
    return [alert.kind for alert in found]


# -- an ordinary morning -------------------------------------------------------------------------------


def test_an_ordinary_morning_is_quiet() -> None:
    traffic = ordinary_morning()
    assert len(traffic.records) > 500  # a real morning's worth
    assert sum(r.rc == "55" for r in traffic.records) >= 10 and sum(r.kind == "reversal" for r in traffic.records) >= 3
    assert detect(morning_facts(traffic), DEFAULTS, since=at(0, 0)) == []


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_other_ordinary_mornings_are_quiet_too(seed: int) -> None:
    assert detect(morning_facts(ordinary_morning(seed)), DEFAULTS, since=at(0, 0)) == []


# -- each problem --------------------------------------------------------------------------------------


def test_an_ewarong_holding_kpm_cards_swipes_them_one_after_another() -> None:
    traffic = ordinary_morning()
    # At BNI00002 after closing the owner goes through ten cards kept in the drawer, 50 seconds each.
    held = [card(BNI, 900 + i) for i in range(10)]
    for i, pan in enumerate(held):
        traffic.add(at(11, 42) + timedelta(seconds=50 * i), BNI, 2, pan, amount_idr=150_000)
    [alert] = detect(morning_facts(traffic, now=at(12, 0)), DEFAULTS, since=at(11, 30))
    assert (alert.kind, alert.severity, alert.count, alert.threshold, alert.window_minutes) == ("card_sharing", "warning", 10, 8, 10)
    assert (alert.subject.type, alert.subject.id, alert.subject.bank, alert.subject.merchant_id) == ("terminal", "BNI00002", "bni", BNI.merchant_id(2))
    assert (alert.first_seen, alert.last_seen) == (at(11, 42), at(11, 49, 30))
    assert alert.cards_masked == tuple(mask_pan(pan) for pan in held)
    assert "served 10 different cards" in alert.message and "holding KPM cards" in alert.message


def test_twice_the_cards_is_critical() -> None:
    traffic = Journalled()
    for i in range(16):
        traffic.add(at(9, 0) + timedelta(seconds=30 * i), BRI, 5, card(BRI, 700 + i))
    [alert] = detect(AlertFacts(now=at(9, 30), rows=traffic.rows()), DEFAULTS, since=at(9, 0))
    assert (alert.severity, alert.count, len(alert.cards_masked)) == ("critical", 16, rules.CARDS_SHOWN_MAX)


def test_the_benefit_taken_right_after_the_disbursement() -> None:
    # BNI credits its KPM at 00:00-00:05; from 00:06 EWBNI0000000009 "sells" to 32 BNI cards, one every 100 seconds
    # (slow enough not to look like card sharing: no more than seven cards in any ten minutes).
    traffic = Journalled()
    for i in range(32):
        traffic.add(at(0, 6) + timedelta(seconds=100 * i), BNI, 9, card(BNI, 500 + i), amount_idr=150_000)
    facts = AlertFacts(now=at(8, 0), rows=traffic.rows(), disbursements=[BNI_DISBURSED, BRI_DISBURSED])
    [alert] = detect(facts, DEFAULTS, since=at(0, 0))
    assert (alert.kind, alert.count, alert.threshold, alert.window_minutes) == ("disbursement_burst", 32, 30, 60)
    assert (alert.subject.type, alert.subject.id, alert.subject.bank) == ("merchant", BNI.merchant_id(9), "bni")
    assert alert.details["period"] == "2026-11" and alert.details["terminals"] == ["BNI00009"]
    assert "within 60 minutes of BNI's disbursement for 2026-11" in alert.message
    # The same purchases with BRI's disbursement only: not BRI's cards, not after BRI's run.
    assert detect(replace(facts, disbursements=[BRI_DISBURSED]), DEFAULTS, since=at(0, 0)) == []


def test_one_family_with_two_active_cards() -> None:
    family = rules.DoubleCards("bni", "KK 3204********0001", (17,), ("9360000900000000017", "9360000900000000501"), at(10, 0, day=date(2026, 10, 20)))
    [alert] = detect(AlertFacts(now=at(11, 0), double_cards=[family]), DEFAULTS, since=at(0, 0))
    assert (alert.kind, alert.severity, alert.count, alert.threshold, alert.window_minutes) == ("double_cards", "warning", 2, 2, None)
    assert (alert.subject.type, alert.subject.id, alert.subject.bank) == ("family", "KK 3204********0001", "bni")
    assert alert.cards_masked == ("936000*********0017", "936000*********0501")  # masked, whatever the bank sent
    assert not PAN_RUN.search(alert.message) and alert.details == {"kpm_ids": [17]}
    assert (alert.first_seen, alert.last_seen) == (family.double_since, at(11, 0))
    one_card = replace(family, cards_masked=family.cards_masked[:1])
    assert detect(AlertFacts(now=at(11, 0), double_cards=[one_card]), DEFAULTS, since=at(0, 0)) == []


def test_pins_tried_on_many_cards_at_one_terminal() -> None:
    traffic = ordinary_morning()
    # At MDR00002 after closing someone tries PINs on four cards in twenty minutes; the last one blocks (75).
    for i, rc in enumerate(["55", "55", "55", "55", "55", "75"]):
        traffic.add(at(11, 45) + timedelta(minutes=4 * i), MDR, 2, card(MDR, 800 + min(i, 3)), "inquiry", rc=rc)
    [alert] = detect(morning_facts(traffic, now=at(12, 30)), DEFAULTS, since=at(11, 30))
    assert (alert.kind, alert.count, alert.threshold, alert.details) == ("wrong_pins", 4, 4, {"tries": 6})
    assert (alert.subject.id, alert.first_seen, alert.last_seen) == ("MDR00002", at(11, 45), at(12, 5))
    assert "wrong PINs (RC 55/75) on 4 different cards" in alert.message


def test_one_kpm_mistyping_three_times_is_no_alert() -> None:
    traffic = Journalled()
    for i, rc in enumerate(["55", "55", "75"]):
        traffic.add(at(9, 0) + timedelta(minutes=i), BTN, 1, card(BTN, 42), "inquiry", rc=rc)
    assert detect(AlertFacts(now=at(10, 0), rows=traffic.rows()), DEFAULTS, since=at(0, 0)) == []


def test_a_reversal_storm_at_a_terminal() -> None:
    traffic = ordinary_morning()
    # In the afternoon BRI00003's link flaps: six purchases time out within twelve minutes, each reversed, most repeated.
    for i in range(6):
        traffic.timed_out_and_reversed(at(13, 0) + timedelta(minutes=2 * i), BRI, 3, card(BRI, 600 + i), repeat=i < 4)
    [alert] = detect(morning_facts(traffic, now=at(13, 30)), DEFAULTS, since=at(11, 0))
    assert (alert.kind, alert.subject.type, alert.subject.id) == ("reversal_storm", "terminal", "BRI00003")
    assert (alert.count, alert.details) == (6, {"messages": 10, "approved": 10})  # repeats (0401) count once


def test_a_reversal_storm_towards_a_bank() -> None:
    traffic = Journalled()
    # Mandiri answers nobody for ten minutes: 24 purchases at twelve e-Warong reversed, two per terminal.
    for i in range(24):
        traffic.timed_out_and_reversed(at(14, 0) + timedelta(seconds=25 * i), BNI, 20 + i % 12, card(MDR, 300 + i))
    [alert] = detect(AlertFacts(now=at(15, 0), rows=traffic.rows()), DEFAULTS, since=at(14, 0))
    assert (alert.kind, alert.subject.type, alert.subject.id, alert.count, alert.threshold) == ("reversal_storm", "bank", "mandiri", 24, 20)
    assert alert.message.startswith("Bank MANDIRI was sent 24 reversals")


def test_a_terminal_silent_for_days() -> None:
    quiet = rules.TerminalActivity("BTN00007", BTN.merchant_id(7), "btn", at(16, 40, day=date(2026, 10, 30)))
    busy = rules.TerminalActivity("BTN00001", BTN.merchant_id(1), "btn", at(10, 58))
    lately = rules.TerminalActivity("BTN00002", BTN.merchant_id(2), "btn", at(12, 0, day=date(2026, 11, 1)))
    [alert] = detect(AlertFacts(now=at(11, 0), terminals=[quiet, busy, lately]), DEFAULTS, since=at(0, 0))
    assert (alert.kind, alert.subject.id, alert.subject.bank, alert.count, alert.threshold) == ("silent_terminal", "BTN00007", "btn", 3, 3)
    assert (alert.first_seen, alert.last_seen) == (quiet.last_at, at(11, 0))
    assert "silent for 3 days" in alert.message and "2026-10-30 16:40 WIB" in alert.message
    [later] = detect(AlertFacts(now=at(11, 0, day=date(2026, 11, 6)), terminals=[quiet]), DEFAULTS, since=at(0, 0))
    assert (later.count, later.severity) == (6, "critical")


def test_goods_offered_above_het() -> None:
    attempts = [
        rules.HetAttempt(at(9, 15), "BNI00003", BNI.merchant_id(3), "BRS-PRM", "Beras premium", "kg", 16_000, 14_900, 5),
        rules.HetAttempt(at(9, 40), "BNI00003", BNI.merchant_id(3), "TLR-AYM", "Telur ayam ras", "butir", 2_500, 2_100, 10),
    ]
    [alert] = detect(AlertFacts(now=at(11, 0), het_attempts=attempts), DEFAULTS, since=at(0, 0))
    assert (alert.kind, alert.subject.type, alert.subject.id, alert.count, alert.severity) == ("above_het", "merchant", BNI.merchant_id(3), 2, "critical")
    assert "Beras premium at Rp16.000/kg (HET Rp14.900)" in alert.message
    assert alert.details == {"terminals": ["BNI00003"], "skus": ["BRS-PRM", "TLR-AYM"]}


def test_thresholds_are_settings() -> None:
    traffic = Journalled()
    for i in range(5):
        traffic.add(at(9, 0) + timedelta(minutes=1 + i), BNI, 4, card(BNI, 50 + i))
    facts = AlertFacts(now=at(10, 0), rows=traffic.rows())
    assert detect(facts, DEFAULTS, since=at(0, 0)) == []
    stricter = AlertThresholds(card_sharing_cards_min=5, card_sharing_window_minutes=5)
    assert kinds(detect(facts, stricter, since=at(0, 0))) == ["card_sharing"]
    with pytest.raises(ValueError):
        AlertThresholds(card_sharing_cards_min=1)  # one card is every sale


def test_alerts_older_than_since_are_left_out() -> None:
    traffic = Journalled()
    for i in range(8):
        traffic.add(at(7, 0) + timedelta(seconds=40 * i), BNI, 4, card(BNI, 60 + i))
    facts = AlertFacts(now=at(10, 0), rows=traffic.rows())
    assert kinds(detect(facts, DEFAULTS, since=at(7, 4))) == ["card_sharing"]  # last seen 07:04:40
    assert detect(facts, DEFAULTS, since=at(7, 5)) == []


def test_bursts_merge_overlapping_windows() -> None:
    events = [(at(9, minute), f"card{minute}") for minute in (0, 1, 2, 3, 30, 31, 32)]
    assert rules.bursts(events, timedelta(minutes=5), 3) == [(0, 3), (4, 6)]
    assert rules.bursts(events, timedelta(minutes=5), 5) == []
    assert rules.bursts([(at(9, 0), "same")] * 4, timedelta(minutes=5), 2) == []


# -- through the ops API, on SQLite and PostgreSQL ----------------------------------------------------------


@pytest.fixture
def journal(storage) -> Iterator[Journal]:  # noqa: ANN001
    opened = open_journal(storage)
    registered = [terminal(bank.terminal_id(n), bank.code) for bank in (BNI, BRI, MDR, BTN) for n in range(1, 10)]
    opened.ensure_terminals(registered, at(6, 0, day=date(2026, 10, 1)))
    yield opened
    opened.db.dispose()


def bearer(journal: Journal, bank: str | None = None) -> dict[str, str]:
    with journal.db.begin() as conn:
        issued = access.create_token(conn, "viewer", bank, "alerts desk", "test", at(6, 0, day=date(2026, 10, 1)))
    return {"Authorization": f"Bearer {issued.token}"}


@pytest.fixture
def wall() -> FixedClock:
    return FixedClock(at(12, 30))


@pytest.fixture
def ops(journal: Journal, wall: FixedClock) -> TestClient:
    return TestClient(create_ops_app(journal, now=wall.now), headers=bearer(journal), raise_server_exceptions=False)


def alerts_of(client: TestClient, **params) -> dict:  # noqa: ANN003
    response = client.get("/v1/alerts", params=params)
    assert response.status_code == 200, response.text
    assert not PAN_RUN.search(response.text), response.text
    return response.json()


def het_report(bank: Bank = BNI, n: int = 3, **changes) -> dict:  # noqa: ANN003
    body = {
        "terminal_id": bank.terminal_id(n), "merchant_id": bank.merchant_id(n), "sku": "BRS-PRM", "product_name": "Beras premium",
        "unit": "kg", "price_idr": 16_000, "het_idr": 14_900, "qty": 5, "attempted_at": "2026-11-03T11:10:00",
    }  # fmt: skip
    return {**body, **changes}


def test_the_journal_of_an_ordinary_morning_is_quiet(ops: TestClient, journal: Journal) -> None:
    journal.record(ordinary_morning().records, [])
    found = alerts_of(ops, since="2026-11-03T00:00:00")
    assert found["alerts"] == [] and found["truncated"] is False
    assert (found["since"], found["now"]) == ("2026-11-03T00:00:00+07:00", "2026-11-03T12:30:00+07:00")
    assert {b["status"] for b in found["banks"]} == {"not_configured"}  # no bank links here
    assert found["thresholds"]["card_sharing_cards_min"] == 8


def test_the_journal_tells_of_held_cards_guessed_pins_a_storm_and_a_silent_terminal(ops: TestClient, journal: Journal) -> None:
    traffic = ordinary_morning()
    for i in range(10):
        traffic.add(at(11, 42) + timedelta(seconds=50 * i), BNI, 2, card(BNI, 900 + i))
    for i in range(4):
        traffic.add(at(11, 43) + timedelta(minutes=3 * i), MDR, 2, card(MDR, 800 + i), "inquiry", rc="55")
    for i in range(5):
        traffic.timed_out_and_reversed(at(11, 40) + timedelta(minutes=2 * i), BRI, 3, card(BRI, 600 + i))
    traffic.add(at(15, 0, day=date(2026, 10, 29)), BTN, 7, card(BTN, 77))  # BTN00007's last sale, five days ago
    journal.record(traffic.records, [])

    found = alerts_of(ops)  # the last 24 hours
    by_kind = {alert["kind"]: alert for alert in found["alerts"]}
    assert sorted(by_kind) == ["card_sharing", "reversal_storm", "silent_terminal", "wrong_pins"]
    assert by_kind["card_sharing"]["subject"] == {"type": "terminal", "id": "BNI00002", "bank": "bni", "merchant_id": BNI.merchant_id(2)}
    assert by_kind["card_sharing"]["cards_masked"][0] == mask_pan(card(BNI, 900))
    assert (by_kind["wrong_pins"]["subject"]["id"], by_kind["wrong_pins"]["count"]) == ("MDR00002", 4)
    assert (by_kind["reversal_storm"]["subject"]["id"], by_kind["reversal_storm"]["count"]) == ("BRI00003", 5)
    silent = by_kind["silent_terminal"]
    assert (silent["subject"]["id"], silent["subject"]["bank"], silent["count"], silent["severity"]) == ("BTN00007", "btn", 4, "warning")
    assert silent["first_seen"] == "2026-10-29T15:00:00+07:00" and silent["last_seen"] == "2026-11-03T12:30:00+07:00"
    assert by_kind["card_sharing"]["first_seen"] == "2026-11-03T11:42:00+07:00"
    assert by_kind["card_sharing"]["id"] == "card_sharing/terminal/BNI00002/20261103T114200"

    assert [a["kind"] for a in alerts_of(ops, kind="wrong_pins")["alerts"]] == ["wrong_pins"]
    assert [a["kind"] for a in alerts_of(ops, since="2026-11-03T12:20:00")["alerts"]] == ["silent_terminal"]


def test_a_bank_sees_the_alerts_of_its_terminals_and_cards(ops: TestClient, journal: Journal) -> None:
    traffic = Journalled()
    for i in range(10):
        traffic.add(at(11, 42) + timedelta(seconds=50 * i), BNI, 2, card(BNI, 900 + i))
    for i in range(4):
        traffic.add(at(11, 43) + timedelta(minutes=3 * i), MDR, 2, card(MDR, 800 + i), "inquiry", rc="55")
    journal.record(traffic.records, [])
    ops.headers.update(bearer(journal, "mandiri"))
    assert [a["kind"] for a in alerts_of(ops)["alerts"]] == ["wrong_pins"]
    assert [b["bank"] for b in alerts_of(ops)["banks"]] == ["mandiri"]
    ops.headers.update(bearer(journal, "bni"))
    assert [a["kind"] for a in alerts_of(ops)["alerts"]] == ["card_sharing"]


def test_the_pos_reports_goods_above_het(ops: TestClient, wall: FixedClock) -> None:
    first = ops.post("/v1/het-attempts", json=het_report())
    assert first.status_code == 201, first.text
    assert first.json()["received_at"] == "2026-11-03T12:30:00+07:00" and first.json()["attempted_at"] == "2026-11-03T11:10:00+07:00"
    [alert] = alerts_of(ops)["alerts"]
    assert (alert["kind"], alert["subject"]["id"], alert["count"], alert["severity"]) == ("above_het", BNI.merchant_id(3), 1, "warning")
    wall.advance(timedelta(minutes=5))
    telur = het_report(sku="TLR-AYM", product_name="Telur ayam ras", unit="butir", price_idr=2_500, het_idr=2_100)
    assert ops.post("/v1/het-attempts", json=telur).status_code == 201
    [alert] = alerts_of(ops)["alerts"]
    assert (alert["count"], alert["severity"]) == (2, "critical")
    assert "Telur ayam ras at Rp2.500/butir (HET Rp2.100)" in alert["message"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"price_idr": 14_900}, "body"),  # at HET: nothing to report
        ({"terminal_id": "BNI99999"}, "terminal_id"),  # not a terminal of the network
        ({"merchant_id": BNI.merchant_id(4)}, "merchant_id"),  # another e-Warong's
        ({"qty": 0}, "qty"),
        ({"price_idr": 1.5}, "price_idr"),
        ({"attempted_at": "yesterday"}, "attempted_at"),
        ({"pan": card(BNI, 1)}, "pan"),  # nothing else, least of all a card number
    ],
)
def test_a_report_that_is_not_one_is_refused(ops: TestClient, changes: dict, field: str) -> None:
    response = ops.post("/v1/het-attempts", json=het_report(**changes))
    assert response.status_code == 422, response.text
    assert field in [str(part) for error in response.json()["detail"] for part in error["loc"]]
    assert not PAN_RUN.search(response.text)


def test_a_bank_reports_for_its_own_ewarong_only(ops: TestClient, journal: Journal) -> None:
    ops.headers.update(bearer(journal, "bri"))
    assert ops.post("/v1/het-attempts", json=het_report()).status_code == 403
    assert ops.post("/v1/het-attempts", json=het_report(BRI, 2)).status_code == 201
    del ops.headers["Authorization"]
    assert ops.post("/v1/het-attempts", json=het_report(BRI, 2)).status_code == 401


def test_a_token_reporting_more_than_its_budget_a_minute_waits(ops: TestClient, journal: Journal, wall: FixedClock) -> None:
    budget = HET_REPORTS_PER_MINUTE_MAX
    for n in range(budget):
        assert ops.post("/v1/het-attempts", json=het_report(qty=n + 1)).status_code == 201
        wall.advance(timedelta(milliseconds=500))
    flooded = ops.post("/v1/het-attempts", json=het_report())
    assert flooded.status_code == 429
    assert flooded.headers["Retry-After"] == "30"  # the first report (at 0 s) leaves the minute at 60 s; now is 30 s
    assert f"more than {budget} reports within a minute" in flooded.json()["detail"]
    other = ops.post("/v1/het-attempts", json=het_report(), headers=bearer(journal, "bni"))
    assert other.status_code == 201  # another token has its own budget
    wall.advance(timedelta(seconds=29))
    assert ops.post("/v1/het-attempts", json=het_report()).status_code == 429  # 1 s short
    wall.advance(timedelta(seconds=1))
    assert ops.post("/v1/het-attempts", json=het_report()).status_code == 201
    [alert] = alerts_of(ops)["alerts"]
    assert alert["count"] == budget + 2  # nothing of the refused report was kept


@pytest.mark.parametrize(("since", "status"), [("2026-10-01T00:00:00", 422), ("2026-10-03T13:00:00", 200), ("3 days ago", 422), ("2026-11-03T12:00:00+07:00", 200)])
def test_since_is_bounded(ops: TestClient, since: str, status: int) -> None:
    assert ops.get("/v1/alerts", params={"since": since}).status_code == status
