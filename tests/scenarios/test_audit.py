"""The money auditor on fabricated views of the services: a consistent network passes, and each
broken invariant is named (pure functions, no network)."""

from __future__ import annotations

from scenarios.audit import AuditView, Slip, audit

LEDGER_OK = {"ok": True, "balance_sum_idr": 0, "kpm_negative": [], "kpm_negative_offline_exceptions": []}


def purchase(rrn: str, amount_idr: int = 10_000, rc: str = "00") -> dict:
    return {"rrn": rrn, "kind": "purchase", "rc": rc, "bank_code": "bni", "amount_idr": amount_idr, "original_rrn": None}


def reversal(rrn: str, original: str, amount_idr: int = 10_000) -> dict:
    return {"rrn": rrn, "kind": "reversal", "rc": "00", "bank_code": "bni", "amount_idr": amount_idr, "original_rrn": original}


def posting(op: str, rrn: str, amount_idr: int = 10_000, posted: bool = True) -> dict:
    return {"op": op, "rrn": rrn, "amount_idr": amount_idr, "posted": posted}


def view(journal: list[dict], postings: list[dict], slips: tuple[Slip, ...] = (), ledger: dict = LEDGER_OK, **kw: object) -> AuditView:
    return AuditView({"bni": ledger}, journal, {"bni": postings}, list(slips), **kw)  # type: ignore[arg-type]


SLIP = Slip("BNI00001", "bni", "000000000001", 10_000, "bayar")


def test_a_consistent_network_has_no_violation() -> None:
    journal = [purchase("000000000001"), purchase("000000000002"), reversal("000000000003", "000000000002")]
    postings = [posting("purchase", "000000000001"), posting("purchase", "000000000002"), posting("reversal", "000000000002")]
    assert audit(view(journal, postings, (SLIP,))) == []


def test_an_unbalanced_ledger_and_an_unexcused_negative_kpm_are_named() -> None:
    ledger = {"ok": False, "balance_sum_idr": 5, "kpm_negative": [{"account_id": 7, "balance_idr": -1}, {"account_id": 8, "balance_idr": -2}],
              "kpm_negative_offline_exceptions": [8]}  # fmt: skip
    problems = audit(view([], [], ledger=ledger))
    assert any("ledger check failed" in p for p in problems)
    assert any("account 7" in p for p in problems) and not any("account 8" in p for p in problems)


def test_an_approved_slip_the_bank_never_posted_is_caught() -> None:
    problems = audit(view([purchase("000000000001")], [], (SLIP,)))
    assert any("slip of step 'bayar'" in p and "0 posted purchase" in p for p in problems)
    assert any("the switch journal moved 10000, the bank posted 0" in p for p in problems)


def test_a_purchase_posted_twice_is_caught() -> None:
    postings = [posting("purchase", "000000000001"), posting("purchase", "000000000001")]
    problems = audit(view([purchase("000000000001")], postings, (SLIP,)))
    assert any("2 posted purchase(s)" in p for p in problems)


def test_a_reversal_without_its_original_is_caught() -> None:
    problems = audit(view([reversal("000000000009", "000000000004")], [posting("reversal", "000000000004")]))
    assert any("reversal RRN 000000000009 has 0 original(s)" in p for p in problems)
    assert any("gives back 0 posted debit(s)" in p for p in problems)


def test_a_reversal_still_queued_at_the_switch_is_in_flight_not_a_violation() -> None:
    journal = [purchase("000000000001", rc="91")]  # the switch gave up waiting, the bank had posted
    postings = [posting("purchase", "000000000001")]
    assert audit(view(journal, postings, saf_pending_rrns=frozenset({"000000000001"}))) == []
    assert audit(view(journal, postings))  # once the queue is empty, they must agree


def test_a_purchase_whose_reversal_the_terminal_still_holds_is_in_flight() -> None:
    """The switch was killed mid-purchase: the bank posted it, the switch never journalled it, the
    terminal keeps a reversal for its STAN. Until that reversal lands the two sides differ."""
    postings = [{**posting("purchase", "000000000002", 50_000), "terminal_id": "BRI00026", "stan": "000007"}]
    held = view([], postings, terminal_pending=frozenset({("BRI00026", "000007")}))
    assert audit(held) == []
    assert any("the switch journal moved 0, the bank posted 50000" in p for p in audit(view([], postings)))
    other_terminal = view([], postings, terminal_pending=frozenset({("BRI00027", "000007")}))
    assert audit(other_terminal)


def test_a_reversal_the_switch_could_not_match_is_held_to_the_bank() -> None:
    """The restarted switch forwards a terminal's reversal of a purchase it never journalled: the
    journal names no original; the bank gave back exactly the debit it posted."""
    orphan = {**reversal("000001000003", "000000000002"), "original_rrn": None}
    postings = [posting("purchase", "000000000002", 50_000), posting("reversal", "000000000002", 50_000)]
    assert audit(view([orphan], postings)) == []
    nothing_to_give_back = [posting("reversal", "000000000002", 50_000)]
    assert any("gives back 0 posted debit(s)" in p for p in audit(view([orphan], nothing_to_give_back)))


def test_an_rrn_given_to_two_purchases_at_the_bank_is_caught() -> None:
    """A switch that numbered on from its journal after a crash handed the lost purchase's RRN out
    again: the bank holds two purchases under one RRN, and the slip's RRN is ambiguous."""
    slip = Slip("BRI00027", "bni", "000000000002", 10_000, "KPM lain")
    postings = [posting("purchase", "000000000002", 50_000), posting("purchase", "000000000002", 10_000)]
    problems = audit(view([purchase("000000000002")], postings, (slip,)))
    assert any("2 posted purchase(s) at bank bni" in p for p in problems)
