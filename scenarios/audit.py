"""The money auditor: invariants of DESIGN.md's money and ledger rules, as pure functions.

The runner reads the services (each bank's `/v1/ops/ledger-check` and `/v1/postings`, the
switch's `/v1/transactions` and `/v1/saf`, the slips the terminals printed) into an `AuditView`;
`audit` returns every violation as a sentence. Nothing here does I/O, so a fabricated view can
show that each rule catches what it should.

Rules:
- every bank's ledger check passes and its balances sum to zero;
- no KPM account is below zero unless the bank reports it as an offline exception;
- every approved online slip has exactly one approved purchase in the switch journal and exactly
  one posted purchase at its bank;
- every approved reversal (journal or bank) points at exactly one original; a reversal the switch
  journalled without an original (it never journalled the purchase: it was killed with it in
  flight) is held to this at the bank, where its purchase was posted;
- the switch journal and the bank agree by RRN on the money moved: approved purchases and
  advices less approved reversals in the journal equal posted debits less posted give-backs at
  the bank. A purchase whose reversal is still on its way is in flight and skipped: queued at
  the switch (SAF), or held by the terminal that sent the purchase (a reversal it could not
  deliver yet, or a purchase it sent and has not decided), found by terminal and STAN.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

APPROVED = "00"
DEBITS = ("purchase", "advice")


@dataclass(frozen=True, slots=True)
class Slip:
    """An approved online purchase slip: the terminal printed it, the KPM left with goods."""

    tid: str
    bank: str
    rrn: str
    amount_idr: int
    step: str


@dataclass(frozen=True)
class AuditView:
    """What the services said, read at one moment."""

    ledgers: dict[str, dict]  # bank -> GET /v1/ops/ledger-check
    journal: list[dict]  # switch /v1/transactions items (TransactionPublic)
    postings: dict[str, list[dict]]  # bank -> /v1/postings items (PostingPublic) of the days concerned
    slips: list[Slip] = field(default_factory=list)
    saf_pending_rrns: frozenset[str] = frozenset()
    banks_unread: frozenset[str] = frozenset()  # stopped banks: their side is not checked
    terminal_pending: frozenset[tuple[str, str]] = frozenset()  # (terminal id, STAN) of purchases a terminal still reverses


def audit(view: AuditView) -> list[str]:
    """Every violation of the money rules in `view`, as sentences (empty: all hold)."""
    return [
        *ledger_violations(view.ledgers),
        *slip_violations(view.slips, view.journal, view.postings, view.banks_unread),
        *reversal_violations(view.journal, view.postings),
        *agreement_violations(view.journal, view.postings, in_flight_rrns(view), view.banks_unread),
    ]


def in_flight_rrns(view: AuditView) -> frozenset[str]:
    """RRNs whose reversal is on its way: queued at the switch, or held by the terminal (its
    purchases are found by terminal and STAN in the journal and at the banks)."""
    held = view.terminal_pending
    found = {row["rrn"] for row in view.journal if (row.get("tid"), row.get("stan")) in held and row.get("rrn")}
    for rows in view.postings.values():
        found |= {p["rrn"] for p in rows if (p.get("terminal_id"), p.get("stan")) in held and p.get("rrn")}
    return view.saf_pending_rrns | frozenset(found)


def ledger_violations(ledgers: dict[str, dict]) -> list[str]:
    """Each bank's ledger balances (sum zero) and no KPM is negative outside offline exceptions."""
    found = []
    for bank, check in sorted(ledgers.items()):
        if not check.get("ok") or check.get("balance_sum_idr") != 0:
            found.append(f"bank {bank}: ledger check failed (ok={check.get('ok')}, sum of balances {check.get('balance_sum_idr')})")
        allowed = set(check.get("kpm_negative_offline_exceptions") or ())
        for account in check.get("kpm_negative") or ():
            if account.get("account_id") not in allowed:
                found.append(
                    f"bank {bank}: KPM account {account.get('account_id')} is below zero ({account.get('balance_idr')}) "
                    "without an offline exception"
                )
    return found


def _approved_debits(journal: Iterable[dict]) -> Counter[str]:
    return Counter(row["rrn"] for row in journal if row.get("kind") == "purchase" and row.get("rc") == APPROVED)


def slip_violations(slips: list[Slip], journal: list[dict], postings: dict[str, list[dict]], banks_unread: frozenset[str]) -> list[str]:
    """Every approved slip: one approved purchase in the journal, one posted purchase at the bank."""
    found = []
    in_journal = _approved_debits(journal)
    for slip in slips:
        where = f"slip of step '{slip.step}' (RRN {slip.rrn}, {slip.tid})"
        if in_journal[slip.rrn] != 1:
            found.append(f"{where}: {in_journal[slip.rrn]} approved purchase(s) in the switch journal, expected exactly 1")
        if slip.bank in banks_unread:
            continue
        posted = [p for p in postings.get(slip.bank, ()) if p.get("op") == "purchase" and p.get("rrn") == slip.rrn and p.get("posted")]
        if len(posted) != 1:
            found.append(f"{where}: {len(posted)} posted purchase(s) at bank {slip.bank}, expected exactly 1")
        elif posted[0].get("amount_idr") != slip.amount_idr:
            found.append(f"{where}: the bank posted {posted[0].get('amount_idr')}, the slip says {slip.amount_idr}")
    return found


def reversal_violations(journal: list[dict], postings: dict[str, list[dict]]) -> list[str]:
    """Every approved reversal has exactly one original, in the journal and at the bank."""
    found = []
    originals = Counter(row["rrn"] for row in journal if row.get("kind") in DEBITS)
    for row in journal:
        if row.get("kind") == "reversal" and row.get("rc") == APPROVED and row.get("original_rrn"):
            count = originals[row["original_rrn"]]
            if count != 1:
                found.append(f"switch journal: reversal RRN {row.get('rrn')} has {count} original(s), expected exactly 1")
    for bank, rows in sorted(postings.items()):
        debits = Counter(p.get("rrn") for p in rows if p.get("op") in DEBITS and p.get("posted"))
        for posting in rows:
            if posting.get("op") == "reversal" and posting.get("posted"):
                count = debits[posting.get("rrn")]
                if count != 1:
                    found.append(f"bank {bank}: reversal of RRN {posting.get('rrn')} gives back {count} posted debit(s), expected exactly 1")
    return found


def journal_net_by_rrn(journal: list[dict]) -> dict[tuple[str, str], int]:
    """(bank, RRN) -> money moved as the journal says: approved debits less approved reversals.
    A reversal repeated (0401) is one movement: each original is given back at most once."""
    by_rrn = {row["rrn"]: row for row in journal}
    net: dict[tuple[str, str], int] = defaultdict(int)
    given_back: set[tuple[str, str]] = set()
    for row in journal:
        if row.get("rc") != APPROVED or not row.get("bank_code"):
            continue
        if row.get("kind") in DEBITS:
            net[(row["bank_code"], row["rrn"])] += row["amount_idr"]
        elif row.get("kind") == "reversal" and row.get("original_rrn"):
            given_back.add((row["bank_code"], row["original_rrn"]))
    for bank, rrn in given_back:
        original = by_rrn.get(rrn)
        if original is not None and original.get("rc") == APPROVED:
            net[(bank, rrn)] -= original["amount_idr"]
    return net


def bank_net_by_rrn(postings: dict[str, list[dict]]) -> dict[tuple[str, str], int]:
    """(bank, RRN) -> money moved as the bank posted it: debits less debits given back (once)."""
    net: dict[tuple[str, str], int] = defaultdict(int)
    given_back: set[tuple[str, str]] = set()
    for bank, rows in postings.items():
        for posting in rows:
            if not posting.get("posted") or not posting.get("rrn"):
                continue
            if posting.get("op") in DEBITS:
                net[(bank, posting["rrn"])] += posting.get("amount_idr") or 0
            elif posting.get("op") == "reversal":
                given_back.add((bank, posting["rrn"]))
    for key in given_back:
        if key in net:
            net[key] = 0
    return net


def agreement_violations(
    journal: list[dict], postings: dict[str, list[dict]], saf_pending_rrns: frozenset[str], banks_unread: frozenset[str]
) -> list[str]:
    """The journal and the banks agree by RRN (except RRNs whose reversal is still queued)."""
    switch_side = journal_net_by_rrn(journal)
    bank_side = bank_net_by_rrn(postings)
    found = []
    for bank, rrn in sorted(set(switch_side) | set(bank_side)):
        if rrn in saf_pending_rrns or bank in banks_unread:
            continue
        at_switch, at_bank = switch_side.get((bank, rrn), 0), bank_side.get((bank, rrn), 0)
        if at_switch != at_bank:
            found.append(f"RRN {rrn} ({bank}): the switch journal moved {at_switch}, the bank posted {at_bank}")
    return found
