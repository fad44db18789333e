"""Several switch processes on one port and one database (`sembako switch serve --workers N`).

Active only with workers > 1 (PostgreSQL); a single switch uses none of this. Worker i of N:

- numbers RRNs congruent to i mod N (`SwitchCore`, `rrn_step`/`rrn_offset`);
- re-reads a terminal's working keys from the journal when they are unknown in memory or its
  MAC fails with them (the terminal signed on at another worker); a read that found nothing
  newer is not repeated for a second (`SwitchCore._keys_from_peers`);
- claims a financial request in `request_claims` before calling the bank (`RequestClaims`): the
  first to insert the round's row proceeds, the others wait for its journal row and answer the
  same (`SwitchCore._exactly_once`). The advice of an offline sale detailed in a 0320 is claimed
  as its 0220 is, and released once journalled (`SwitchCore._upload`); a reversal whose purchase
  another worker holds waits for that purchase's journal row, to link to it (`_original_rrn`);
- sends a store-and-forward entry only under a lease (`SafLeases`, rows of `saf_claims`);
- refreshes its set of blocked terminals from the database every second (`refresh_blocks`).

Every table here is append-only, as the rest of the journal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import bindparam, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from switch.controls import blocked_terminals
from switch.hsm import SwitchHsm, WorkingKeys
from switch.journal import FIND_TRANSACTION, PENDING_SAF, Journal, SafEntry, TransactionRecord, saf_acked, saf_cancelled, saf_entry_from_row
from switch.tables import RequestClaim, RequestClaimRelease, SafClaim, SafEntryRow

log = logging.getLogger("switch.workers")

_claims = RequestClaim.__table__
_releases = RequestClaimRelease.__table__
_saf_claims = SafClaim.__table__
_saf = SafEntryRow.__table__

POLL_S = 0.02  # how often a worker waiting for another's answer reads the journal
CLAIM_TRIES = 5  # rounds raced for before giving up (each lost race means another worker won one)

_LATEST_CLAIM = (
    select(
        _claims.c.id, _claims.c.round, _claims.c.request_hash, _claims.c.worker, _claims.c.rrn, _claims.c.at,
        _releases.c.claim_id.label("released"),
    )
    .outerjoin(_releases, _releases.c.claim_id == _claims.c.id)
    .where(
        _claims.c.tid == bindparam("tid"),
        _claims.c.stan == bindparam("stan"),
        _claims.c.transmission_date == bindparam("day"),
        _claims.c.kind == bindparam("kind"),
    )
    .order_by(_claims.c.round.desc())
    .limit(1)
)
_CLAIM_KEY = ("tid", "stan", "transmission_date", "kind", "round")  # uq_request_claims_key
# One statement: the claim's id when this worker inserted the round, no row when another had.
_INSERT_CLAIM = {
    dialect: module.insert(_claims).on_conflict_do_nothing(index_elements=list(_CLAIM_KEY)).returning(_claims.c.id)
    for dialect, module in (("postgresql", postgresql), ("sqlite", sqlite))
}
_INSERT_RELEASE = insert(_releases)
_ANSWERED = select(FIND_TRANSACTION.selected_columns.rrn).where(*FIND_TRANSACTION.whereclause.clauses)
_RELEASED = select(_releases.c.claim_id).where(_releases.c.claim_id == bindparam("claim_id"))


@dataclass(frozen=True, slots=True)
class Claim:
    """Who handles a request: `won` when this worker does (with the RRN it reserved), else the
    winner's claim (its request hash and RRN)."""

    id: int
    won: bool
    request_hash: str
    worker: int
    rrn: str


class RequestClaims:
    """Claims on financial requests in the shared journal (`request_claims`)."""

    def __init__(self, journal: Journal, worker: int, now: Callable[[], datetime], stale_s: float) -> None:
        self._db = journal.db
        self._insert = _INSERT_CLAIM[journal.db.dialect]
        self.worker = worker
        self._now = now
        self._stale = timedelta(seconds=stale_s)

    def claim(self, key: tuple[str, str, date, str], request_hash: str, rrn: str) -> Claim:
        """Claim (tid, STAN, date, kind) with `rrn`, or the claim another worker holds on it.

        A claim older than `stale_s` that was neither released nor answered in the journal
        belongs to a worker that died with the request: it is released and its RRN claimed again
        (the bank knows the request by its key and RRN, so a second send is harmless)."""
        tid, stan, day, kind = key
        first = self._insert_round(key, 0, request_hash, rrn)  # most keys have one round: no read first
        if first is not None:
            return Claim(first, True, request_hash, self.worker, rrn)
        where = {"tid": tid, "stan": stan, "day": day, "kind": kind}
        for _ in range(CLAIM_TRIES):
            with self._db.read() as conn:
                latest = conn.execute(_LATEST_CLAIM, where).one_or_none()
            if latest is not None and latest.released is None:
                if latest.at > self._now() - self._stale or self._answered(key):
                    return Claim(latest.id, False, latest.request_hash, latest.worker, latest.rrn)
                log.warning("claim of %s STAN %s %s by worker %d left unanswered: taken over", tid, stan, kind, latest.worker)
                self.release(latest.id)
                rrn = latest.rrn
                continue
            claim_id = self._insert_round(key, 0 if latest is None else latest.round + 1, request_hash, rrn)
            if claim_id is not None:
                return Claim(claim_id, True, request_hash, self.worker, rrn)
            # another worker took this round: read its claim
        raise RuntimeError(f"no claim on {tid} STAN {stan} {kind} after {CLAIM_TRIES} rounds")

    def held(self, key: tuple[str, str, date, str]) -> Claim | None:
        """The claim a worker holds on `key` now (the latest round, not released), else None."""
        tid, stan, day, kind = key
        with self._db.read() as conn:
            latest = conn.execute(_LATEST_CLAIM, {"tid": tid, "stan": stan, "day": day, "kind": kind}).one_or_none()
        if latest is None or latest.released is not None:
            return None
        return Claim(latest.id, latest.worker == self.worker, latest.request_hash, latest.worker, latest.rrn)

    def _insert_round(self, key: tuple[str, str, date, str], round_: int, request_hash: str, rrn: str) -> int | None:
        """The new claim's id, or None when the round is another worker's already."""
        tid, stan, day, kind = key
        row = {
            "tid": tid, "stan": stan, "transmission_date": day, "kind": kind, "round": round_,
            "request_hash": request_hash, "worker": self.worker, "rrn": rrn, "at": self._now(),
        }  # fmt: skip
        with self._db.begin() as conn:
            return conn.execute(self._insert, row).scalar_one_or_none()

    def _answered(self, key: tuple[str, str, date, str]) -> bool:
        tid, stan, day, kind = key
        with self._db.read() as conn:
            return conn.execute(_ANSWERED, {"tid": tid, "stan": stan, "day": day, "kind": kind}).first() is not None

    def release(self, claim_id: int) -> None:
        """The claim's answer was not final: the key may be claimed again."""
        try:
            with self._db.begin() as conn:
                conn.execute(_INSERT_RELEASE, {"claim_id": claim_id, "at": self._now()})
        except IntegrityError:
            pass  # released already (by another worker taking a stale claim over)

    def released(self, claim_id: int) -> bool:
        with self._db.read() as conn:
            return conn.execute(_RELEASED, {"claim_id": claim_id}).first() is not None


class Peers:
    """What a worker's core asks of the shared journal (`SwitchCore.peers`), off the event loop."""

    def __init__(self, journal: Journal, hsm: SwitchHsm, worker: int, now: Callable[[], datetime], answer_wait_s: float) -> None:
        self._journal = journal
        self._hsm = hsm
        self.claims = RequestClaims(journal, worker, now, stale_s=2 * answer_wait_s)
        self.answer_wait_s = answer_wait_s

    async def keys_of(self, tid: str) -> WorkingKeys | None:
        """The terminal's newest working keys in the journal, None before any key exchange."""
        stored = await asyncio.to_thread(self._journal.working_keys_of, tid)
        return self._hsm.working_keys_from_storage(*stored) if stored is not None else None

    async def claim(self, key: tuple[str, str, date, str], request_hash: str, rrn: str) -> Claim:
        return await asyncio.to_thread(self.claims.claim, key, request_hash, rrn)

    async def release(self, claim_id: int) -> None:
        await asyncio.to_thread(self.claims.release, claim_id)

    async def claimed_record(self, key: tuple[str, str, date, str]) -> TransactionRecord | None:
        """The journal row of a request another worker holds a claim on (in flight there), waited
        for as `winner_record` waits; None when no other worker holds one."""
        claim = await asyncio.to_thread(self.claims.held, key)
        if claim is None or claim.won:
            return None
        return await self.winner_record(key, claim)

    async def winner_record(self, key: tuple[str, str, date, str], claim: Claim) -> TransactionRecord | None:
        """The journal row of the request `claim` won, polled every POLL_S for at most
        `answer_wait_s`; None when the claim is released first (no final answer) or time is up."""
        deadline = asyncio.get_running_loop().time() + self.answer_wait_s
        while True:
            record = await asyncio.to_thread(self._journal.find, *key)
            if record is not None:
                return record
            if await asyncio.to_thread(self.claims.released, claim.id):
                return None
            if asyncio.get_running_loop().time() >= deadline:
                log.warning("no answer from worker %d to %s STAN %s %s within %.1f s", claim.worker, key[0], key[1], key[3], self.answer_wait_s)
                return None
            await asyncio.sleep(POLL_S)


# -- store and forward under leases -------------------------------------------------------------

_LEASED_BY_OTHERS = select(_saf_claims.c.saf_id).where(
    _saf_claims.c.saf_id.in_(bindparam("ids", expanding=True)),
    _saf_claims.c.until > bindparam("now"),
    _saf_claims.c.worker != bindparam("worker"),
)
_CLAIMABLE_SAF = (
    select(_saf.c.id)
    .where(
        ~saf_acked(),
        ~saf_cancelled(),
        ~select(_saf_claims.c.id)
        .where(_saf_claims.c.saf_id == _saf.c.id, _saf_claims.c.until > bindparam("now"), _saf_claims.c.worker != bindparam("worker"))
        .exists(),
    )
    .order_by(_saf.c.id)
    .limit(bindparam("limit"))
    .with_for_update(of=_saf, skip_locked=True)
)
_INSERT_SAF_CLAIM = insert(_saf_claims)
_SAF_ENTRIES = PENDING_SAF.where(_saf.c.id.in_(bindparam("ids", expanding=True)))


class SafLeases:
    """Leases on store-and-forward entries (`saf_claims`), `lease_ms` long."""

    def __init__(self, journal: Journal, worker: int, lease_ms: int, now: Callable[[], datetime], send_ms: int) -> None:
        self._journal = journal
        self.worker = worker
        self.lease = timedelta(milliseconds=lease_ms)
        self._now = now
        self._send = timedelta(milliseconds=send_ms)

    def may_send(self, until: datetime) -> bool:
        """Whether a send started now (lasting at most `send_ms`) ends within the lease."""
        return self._now() + self._send < until

    def claim(self, limit: int) -> tuple[list[SafEntry], datetime]:
        """Pending entries this worker may send now (at most `limit`, oldest first, leased to it
        until the time returned): none leased to another worker, and none another worker is
        claiming at this moment (their rows are locked: skipped)."""
        now = self._now()
        until = now + self.lease
        with self._journal.db.begin() as conn:
            ids = list(conn.execute(_CLAIMABLE_SAF, {"limit": limit, "now": now, "worker": self.worker}).scalars())
            if ids:
                # Again, in a new statement: it sees the leases of a worker that committed between
                # our first look and our lock (the statement above saw its snapshot's).
                taken = set(conn.execute(_LEASED_BY_OTHERS, {"ids": ids, "now": now, "worker": self.worker}).scalars())
                ids = [i for i in ids if i not in taken]
            if ids:
                conn.execute(_INSERT_SAF_CLAIM, [{"saf_id": i, "worker": self.worker, "until": until, "at": now} for i in ids])
                rows = conn.execute(_SAF_ENTRIES, {"ids": ids, "limit": limit}).all()
            else:
                rows = []
        return [saf_entry_from_row(row, self._journal.pan_cipher) for row in rows], until


# -- blocked terminals ------------------------------------------------------------------------------


async def refresh_blocks(journal: Journal, blocked: set[str], interval_s: float) -> None:
    """Keep `blocked` (the core's set, changed in place) as the database holds it, every
    `interval_s`: a block recorded by the ops API of worker 0 takes effect here within that."""
    while True:
        try:
            now_blocked = await asyncio.to_thread(blocked_terminals, journal.db)
        except Exception:  # noqa: BLE001 - keep the last known set; try again next round
            log.exception("blocked terminals not refreshed")
        else:
            blocked.difference_update(blocked - now_blocked)
            blocked.update(now_blocked)
        await asyncio.sleep(interval_s)
