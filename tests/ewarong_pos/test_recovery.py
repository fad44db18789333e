"""The app died between the EDC's approval and the shop's write. On the next start the open
payments are matched with what the EDC approved: by STAN, else by amount and time; the rest
are abandoned. Each approval becomes at most one sale."""

from __future__ import annotations

from datetime import datetime, timedelta

from edc_terminal.store import JournalEntry, LastPurchase, TerminalState
from ewarong_pos.recovery import (
    Abandon,
    ApprovedPurchase,
    OpenPayment,
    RecoverAsSale,
    approved_from_terminal_state,
    plan_recovery,
    sale_reference,
)

TID = "BNI00001"
OPENED = datetime(2026, 11, 3, 9, 0)


def payment(payment_id: int, amount_idr: int, stan: str | None = None, minutes: int = 0) -> OpenPayment:
    return OpenPayment(payment_id, TID, amount_idr, OPENED + timedelta(minutes=minutes), stan)


def approval(stan: str, rrn: str, amount_idr: int, minutes: int = 1, tid: str = TID) -> ApprovedPurchase:
    return ApprovedPurchase(tid, stan, rrn, "AB12CD", amount_idr, OPENED + timedelta(minutes=minutes), "936000******1234")


def test_an_open_payment_with_a_stan_the_edc_approved_becomes_a_sale() -> None:
    purchase = approval("000007", "000000000007", 95_000)
    assert plan_recovery(TID, [payment(1, 95_000, "000007")], [purchase], set()) == [RecoverAsSale(1, purchase, "stan")]


def test_a_payment_not_yet_marked_sent_matches_by_amount_after_it_was_opened() -> None:
    before = approval("000001", "000000000001", 95_000, minutes=-5)  # an earlier KPM's purchase
    after = approval("000002", "000000000002", 95_000, minutes=2)
    actions = plan_recovery(TID, [payment(1, 95_000)], [before, after], set())
    assert actions == [RecoverAsSale(1, after, "amount")]


def test_an_approval_already_linked_to_a_sale_is_not_used_again() -> None:
    purchase = approval("000002", "000000000002", 95_000)
    assert plan_recovery(TID, [payment(1, 95_000)], [purchase], {"000000000002"}) == [Abandon(1)]


def test_nothing_approved_means_abandoned() -> None:
    other_amount = approval("000003", "000000000003", 50_000)
    other_terminal = approval("000003", "000000000004", 95_000, tid="BNI00002")
    actions = plan_recovery(TID, [payment(1, 95_000, "000003")], [other_amount, other_terminal], set())
    assert actions == [Abandon(1)]


def test_one_approval_serves_one_payment_only() -> None:
    purchase = approval("000005", "000000000005", 20_000, minutes=3)
    actions = plan_recovery(TID, [payment(1, 20_000), payment(2, 20_000, minutes=1)], [purchase], set())
    assert actions == [RecoverAsSale(1, purchase, "amount"), Abandon(2)]


def test_stan_matches_are_taken_before_amount_matches() -> None:
    purchase = approval("000009", "000000000009", 20_000, minutes=3)
    actions = plan_recovery(TID, [payment(1, 20_000), payment(2, 20_000, "000009", minutes=1)], [purchase], set())
    assert actions == [Abandon(1), RecoverAsSale(2, purchase, "stan")]


def test_the_edcs_state_file_yields_its_last_approved_purchase() -> None:
    request = {"t": "0200", "2": "9360000912345678", "4": "000009500000", "11": "000042", "41": TID}
    state = TerminalState(tid=TID, last_purchase=LastPurchase(request, "630700000042", "123456", "2026-11-03T09:01:00"))
    [purchase] = approved_from_terminal_state(state)
    assert (purchase.stan, purchase.rrn, purchase.amount_idr, purchase.pan_masked) == ("000042", "630700000042", 95_000, "936000******5678")
    assert purchase.approved_at == datetime(2026, 11, 3, 9, 1)
    assert "9360000912345678" not in repr(purchase)
    assert approved_from_terminal_state(TerminalState(tid=TID)) == []


def test_the_edcs_journal_yields_every_approved_purchase_not_voided() -> None:
    journal = [
        JournalEntry("purchase", "000040", "630700000040", "111111", 26_000, "936000******1111", "2026-11-03T08:30:00", 1),
        JournalEntry("purchase", "000041", "630700000041", "222222", 13_000, "936000******2222", "2026-11-03T08:40:00", 1),
        JournalEntry("void", "000041", "630700000041", "222222", 13_000, "936000******2222", "2026-11-03T08:41:00", 1),
    ]
    approved = approved_from_terminal_state(TerminalState(tid=TID, journal=journal))
    assert [(a.rrn, a.amount_idr, a.approved_at, a.tid) for a in approved] == [("630700000040", 26_000, datetime(2026, 11, 3, 8, 30), TID)]


def test_an_offline_sale_in_the_edcs_journal_is_recovered_under_its_offline_reference() -> None:
    offline = JournalEntry("offline", "000012", "", "OF0012", 25_000, "936000******0014", "2026-11-03T09:05:00", 1)
    state = TerminalState(tid=TID, journal=[offline])
    [purchase] = approved_from_terminal_state(state)
    assert (purchase.rrn, purchase.stan, purchase.approval_code, purchase.amount_idr) == ("OFL000000012", "000012", "OF0012", 25_000)
    assert sale_reference(None, "000012") == "OFL000000012" and sale_reference("630700000042", "000012") == "630700000042"
    assert sale_reference(None, None) is None
