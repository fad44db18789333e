"""The switch's message processing: one ISO 8583 request in, one answer out.

For each financial request the switch checks the terminal and its MAC, answers duplicates from
memory, assigns an RRN, routes by BIN to the issuing bank, translates the PIN block from the
terminal's PIN key to the bank's zone PIN key, and answers with the bank's response code. When
the bank cannot be reached it answers 91; when the bank may have posted (the request left but
no answer came back), a store-and-forward reversal is persisted before the terminal is told.
Every request and answer goes to the journal, with the PAN masked.

Settlement (0500) and batch upload (0320) go through the same checks (terminal, MAC, format,
exactly once) and are decided by `switch.batches` on the journal; a 0320 of an offline sale the
switch never had a bank answer for is forwarded to the bank as that advice. Without `batches`
(no journal to decide on) both are answered 12.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date, datetime

from shared import iso8583, protocol, rc
from shared.banks import bank_for_pan
from shared.cards import mask_pan
from shared.iso8583 import Message, MessageError, Tpdu

from switch import batches as batchlib
from switch.bank_client import BankClient, BankReply, BankUnavailable
from switch.batches import Batches
from switch.card_list import CardListPages
from switch.hsm import SwitchHsm, WorkingKeys
from switch.journal import MessageRecord, TerminalRecord, TransactionRecord
from switch.workers import Claim, Peers

log = logging.getLogger("switch")

# What the journal sink gives back: a future that turns True once the record is committed, False
# when its batch failed, None when not confirmed within the writer's bound (the journal writer,
# switch.journal_writer); or None when the sink keeps records itself (test harnesses).
Written = asyncio.Future | None

KINDS = {
    iso8583.INQUIRY: "inquiry",
    iso8583.PURCHASE: "purchase",
    iso8583.ADVICE: "advice",
    iso8583.REVERSAL: "reversal",
    iso8583.REVERSAL_REPEAT: "reversal",
    iso8583.BATCH_UPLOAD: "upload",
    iso8583.SETTLEMENT: "settlement",
}
BATCH_KINDS = ("upload", "settlement")  # decided by switch.batches; no transaction row of their own
PEER_KEYS_REREAD_S = 1.0  # after a read of a terminal's keys that found none newer, no other for this long
PEER_KEY_READS_MAX = 100_000  # terminals whose last read is remembered (oldest forgotten first)
CLAIMED_KINDS = ("inquiry", "purchase", "advice", "reversal")  # claimed across workers before the bank is called
BLOCKED_KINDS = ("inquiry", "purchase", "advice", "upload")  # refused at a blocked terminal; reversals, settlements pass
REQUIRED = {
    "inquiry": ("2", "3", "7", "11", "41", "42", "52"),
    "purchase": ("2", "3", "4", "7", "11", "41", "42", "52"),
    "advice": ("2", "3", "4", "7", "11", "12", "13", "41", "42"),
    "reversal": ("2", "4", "7", "11", "41", "42", "90"),
    "upload": ("2", "3", "4", "7", "11", "41", "42", "60", "62"),
    "settlement": ("3", "7", "11", "41", "42", "60", "63"),
}
HIDDEN_FIELDS = ("p", "1", "52", "64", "128")  # never journalled
# Fields of a financial request that hold only digits (a letter there is a format error, 30).
NUMERIC_FIELDS = ("2", "3", "4", "7", "11", "12", "13", "22", "24", "49", "60", "90")
REASON_CHARS_MAX = 200  # of a refusal's reason, as journalled


@dataclass(frozen=True, slots=True)
class Answer:
    """A computed answer, remembered for duplicates: the response fields and the request hash."""

    request_hash: str
    response: Message


@dataclass
class Outcome:
    """What processing one financial request produced, before encoding."""

    response: Message
    bank_code: str | None = None
    rrn: str | None = None
    bank_latency_ms: int | None = None
    bank_messages: tuple[MessageRecord, ...] = ()
    original_rrn: str | None = None
    advice: Outcome | None = None  # a 0320's offline sale forwarded to the bank as its advice
    claim_id: int | None = None  # a claim across workers to release once this is journalled


def journal_fields(doc: Message) -> dict:
    """Message fields as the journal keeps them: PAN masked, no PIN block, MAC or bitmaps."""
    fields = {k: v for k, v in doc.items() if k not in HIDDEN_FIELDS}
    if "2" in fields:
        fields["2"] = mask_pan(str(fields["2"]))
    return fields


class SwitchCore:
    def __init__(
        self,
        hsm: SwitchHsm,
        banks: BankClient,
        terminals: list[TerminalRecord],
        working_keys: dict[str, WorkingKeys],
        last_rrn: int,
        now: Callable[[], datetime],
        journal_sink: Callable[[TransactionRecord | None, list[MessageRecord]], Written],
        persist_keys: Callable[[str, str, str], Awaitable[None]],
        enqueue_saf: Callable[[str, str, dict], Awaitable[None]],
        duplicates_max: int = 200_000,
        batches: Batches | None = None,
        card_lists: CardListPages | None = None,
        rrn_step: int = 1,
        rrn_offset: int = 0,
        peers: Peers | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hsm = hsm
        self.banks = banks
        self.terminals = {t.tid: t for t in terminals}
        self.keys = working_keys
        # Worker i of N (switch.workers) numbers RRNs congruent to i mod N, past `last_rrn`.
        self._rrn_step = rrn_step
        self._rrn = last_rrn if rrn_step == 1 else last_rrn - (last_rrn - rrn_offset) % rrn_step
        # The other switch processes on this database (switch.workers); None for a single switch.
        self.peers = peers
        self._monotonic = monotonic
        # tid -> when a read of its keys from the journal last found none newer (peers only).
        self._peer_key_reads: OrderedDict[str, float] = OrderedDict()
        self.now = now
        self._sink = journal_sink
        self._persist_keys = persist_keys
        self._enqueue_saf = enqueue_saf
        self._answers: OrderedDict[tuple, Answer] = OrderedDict()
        self._inflight: dict[tuple, asyncio.Future[Answer]] = {}
        self._challenges = Challenges()
        self._duplicates_max = duplicates_max
        self.dropped = 0  # frames left unanswered: no response MTI exists
        self.batches = batches
        self.card_lists = card_lists  # pages of the banks' offline card lists (0800 code 360)
        # (tid, STAN, date) -> RRN of each advice sent to a bank: a repeat (its 0220 again, or
        # the 0320 detailing it) goes with the same RRN, so the bank sees the same request.
        self._advice_rrns: OrderedDict[tuple, str] = OrderedDict()
        # tid -> key of the terminal's last transaction row handed to the journal writer.
        self._last_journalled: dict[str, tuple] = {}
        # Terminals blocked by operations staff (switch.controls): spending refused with 58.
        self.blocked_terminals: set[str] = set()

    # -- entry point ------------------------------------------------------------------------

    async def handle(self, body: bytes) -> bytes | None:
        """The answer frame body (TPDU + message) for one frame body, or None to stay silent.

        Total: never raises. A frame whose MTI has a response MTI (iso8583.response_mti_or_none)
        is answered (30 when it does not decode); any other frame is dropped with one warning.
        Malformed input is logged as one line; only a fault of the switch itself (an
        exception while processing) is logged with its traceback, and answered 96."""
        try:
            tpdu, message = iso8583.split_frame(body)
        except iso8583.FrameError as exc:
            return self._format_error(Tpdu(0, 1), iso8583.peek_mti(body[iso8583.TPDU_BYTES :]), str(exc))
        try:
            doc = iso8583.decode(message)
        except MessageError as exc:
            return self._format_error(tpdu.reply(), exc.mti, str(exc))
        if iso8583.response_mti_or_none(str(doc["t"])) is None:
            return self._format_error(tpdu.reply(), str(doc["t"]), "not a request")
        try:
            answer = await self._dispatch(doc, message)
        except Exception:  # noqa: BLE001 - one bad request must not take the connection down
            log.exception("failed to process %s from %s stan %s", doc.get("t"), doc.get("41"), doc.get("11"))
            answer = self._system_error(doc)
        return None if answer is None else tpdu.reply().to_bytes() + answer

    def _format_error(self, tpdu: Tpdu, mti: str | None, reason: str) -> bytes | None:
        """RC 30 (no MAC: the sender is not known) when `mti` has a response MTI, else None."""
        answer_mti = iso8583.response_mti_or_none(mti)
        if answer_mti is None:
            self.dropped += 1
            log.warning("dropped a frame: MTI %r has no response MTI: %s", mti, reason)
            return None
        log.warning("format error in %s: %s", mti, reason)
        return tpdu.to_bytes() + iso8583.encode({"t": answer_mti, "39": rc.FORMAT_ERROR})

    def _signed_on_keys(self, doc: Message) -> WorkingKeys | None:
        """The working keys of the signed-on terminal a request names (41 and 42), else None."""
        terminal = self.terminals.get(str(doc.get("41", "")))
        if terminal is None or doc.get("42") != terminal.mid:
            return None
        return self.keys.get(terminal.tid)

    def _system_error(self, doc: Message) -> bytes | None:
        """RC 96 for a request whose processing failed: MACed when it is financial and its
        terminal has keys; with only 39 when the echoed fields do not encode; never raises."""
        keys = self._signed_on_keys(doc) if str(doc["t"]) in KINDS else None
        answer_mti = iso8583.response_mti_or_none(str(doc["t"]))
        for build in (lambda: protocol.response(doc, rc.SYSTEM_ERROR), lambda: {"t": answer_mti, "39": rc.SYSTEM_ERROR}):
            try:
                response = build()
                encoded = self.hsm.encode_with_mac(response, keys.tak) if keys else iso8583.encode(response)
            except Exception:  # noqa: BLE001, S112 - try the plainer answer
                continue
            self._journal_refusal(doc, response, "system error")
            return encoded
        log.error("no answer to %s from %s: even RC 96 does not encode", doc.get("t"), doc.get("41"))
        return None

    def _refuse(self, doc: Message, code: str, reason: str, keys: WorkingKeys | None) -> bytes:
        """Answer `code` without processing (MACed when `keys`), logged as one line and
        journalled as a message pair without RRN (no transaction row: the request's key stays
        free for a corrected retry)."""
        response = protocol.response(doc, code)
        # One template per code: a flood of one kind (30s) does not hide another (bad MACs, 12)
        # from the log's rate limit.
        log.warning(f"refused with {code}: %s from %s stan %s: %s", doc.get("t"), doc.get("41"), doc.get("11"), reason)
        self._journal_refusal(doc, response, reason)
        return self.hsm.encode_with_mac(response, keys.tak) if keys else iso8583.encode(response)

    def _journal_refusal(self, doc: Message, response: Message, reason: str) -> None:
        """The request and its refusal in the message trail, for a terminal this switch knows
        (frames naming unknown terminals are only logged: strangers do not fill the journal)."""
        tid = str(doc.get("41", ""))
        if tid not in self.terminals:
            return
        stan, at = str(doc.get("11", "")), self.now()
        reason_fields = {"reason": reason[:REASON_CHARS_MAX]}
        try:
            self._sink(
                None,
                [
                    MessageRecord(None, tid, stan, str(doc["t"]), "terminal_in", None, journal_fields(doc), at),
                    MessageRecord(None, tid, stan, str(response["t"]), "terminal_out", str(response["39"]), {**journal_fields(response), **reason_fields}, at),
                ],
            )
        except Exception:  # noqa: BLE001 - the answer goes out even when the journal is stuck
            log.exception("refusal of %s from %s not journalled", doc.get("t"), tid)

    async def _dispatch(self, doc: Message, message: bytes) -> bytes:
        mti = str(doc["t"])
        if mti == iso8583.NETWORK:
            return await self._network(doc, message)
        kind = KINDS.get(mti)
        if kind is None or (kind in BATCH_KINDS and self.batches is None):
            return self._refuse(doc, rc.INVALID_TRANSACTION, "MTI not served", self._signed_on_keys(doc))
        return await self._financial(kind, doc, message)

    # -- network management -----------------------------------------------------------------

    async def _network(self, doc: Message, message: bytes) -> bytes:
        terminal = self.terminals.get(str(doc.get("41", "")))
        code = str(doc.get("70", ""))
        extra: dict[str, str] = {}
        if terminal is None or doc.get("42") != terminal.mid:
            answer = rc.NOT_PERMITTED_TERMINAL
        elif code == iso8583.SIGN_ON:
            answer, extra = rc.APPROVED, {"48": self._challenges.issue(terminal.tid)}
        elif code == iso8583.ECHO:
            answer = rc.APPROVED
        elif code == iso8583.KEY_EXCHANGE:
            answer, extra = await self._key_exchange(terminal, doc, message)
        elif code == iso8583.CARD_LIST and self.card_lists is not None:
            # A page of the offline card list (switch.card_list), MACed under the terminal's TAK.
            page = await self.card_lists.answer(terminal, self.keys.get(terminal.tid), doc, message)
            self._journal_network(doc, page.journalled())
            return self.hsm.encode_with_mac(page.response, page.mac_key) if page.mac_key else iso8583.encode(page.response)
        else:
            answer = rc.INVALID_TRANSACTION
        response = protocol.response(doc, answer, **extra)
        if code != iso8583.ECHO:  # echoes are heartbeats, not journalled
            self._journal_network(doc, response)
        return iso8583.encode(response)

    async def _key_exchange(self, terminal: TerminalRecord, doc: Message, message: bytes) -> tuple[str, dict[str, str]]:
        """New working keys only for the holder of the terminal's master key, answering the
        challenge of its last sign-on (once): a stranger or a replay gets 63 and changes nothing."""
        challenge_ok = self._challenges.take(terminal.tid, str(doc.get("48", "")))
        if not challenge_ok or not self.hsm.key_exchange_authentic(message, doc, terminal.tmk_lmk):
            log.warning("key exchange refused for %s: %s", terminal.tid, "bad MAC" if challenge_ok else "no valid challenge")
            return rc.SECURITY_VIOLATION, {}
        exchange = self.hsm.exchange_keys(terminal.tmk_lmk)
        await self._persist_keys(terminal.tid, exchange.tpk_lmk, exchange.tak_lmk)
        self.keys[terminal.tid] = exchange.keys
        return rc.APPROVED, {"48": exchange.for_terminal}

    def _journal_network(self, doc: Message, response: Message) -> None:
        at = self.now()
        tid, stan = str(doc.get("41", "")), str(doc.get("11", ""))
        response_fields = {k: v for k, v in response.items() if k != "48"}  # keys stay out of the journal
        self._sink(
            None,
            [
                MessageRecord(None, tid, stan, str(doc["t"]), "terminal_in", None, journal_fields(doc), at),
                MessageRecord(None, tid, stan, str(response["t"]), "terminal_out", str(response["39"]), response_fields, at),
            ],
        )

    # -- financial messages -----------------------------------------------------------------

    async def _financial(self, kind: str, doc: Message, message: bytes) -> bytes:
        terminal = self.terminals.get(str(doc.get("41", "")))
        keys = self.keys.get(terminal.tid) if terminal else None
        mac_ok = keys is not None and self.hsm.mac_ok(message, doc, keys.tak)
        if not mac_ok and self.peers is not None and terminal is not None and doc.get("42") == terminal.mid:
            keys, mac_ok = await self._keys_from_peers(terminal.tid, keys, doc, message)
        if terminal is None or keys is None or doc.get("42") != terminal.mid:
            return self._refuse(doc, rc.NOT_PERMITTED_TERMINAL, "unknown terminal or not signed on", None)
        if not mac_ok:
            return self._refuse(doc, rc.INVALID_TRANSACTION, "bad MAC", keys)
        if terminal.tid in self.blocked_terminals and kind in BLOCKED_KINDS:
            return self._refuse(doc, rc.NOT_PERMITTED_TERMINAL, "terminal blocked by operations staff", keys)
        reason = _format_problem(kind, doc)
        if reason:
            return self._refuse(doc, rc.FORMAT_ERROR, reason, keys)
        try:
            day = protocol.transmission_date(str(doc["7"]), self.now().date())
        except MessageError as exc:
            return self._refuse(doc, rc.FORMAT_ERROR, str(exc), keys)
        answer = await self._exactly_once(kind, doc, message, terminal, keys, day)
        return self.hsm.encode_with_mac(answer.response, keys.tak)

    async def _keys_from_peers(self, tid: str, keys: WorkingKeys | None, doc: Message, message: bytes) -> tuple[WorkingKeys | None, bool]:
        """The terminal's keys as the journal holds them now (it may have signed on at another
        worker), read once, and whether the request's MAC holds under them. A read that found no
        newer keys is not repeated for PEER_KEYS_REREAD_S: a flood of bad MACs costs one read a
        second, not one each (a terminal signing on anew meanwhile is heard once that passes)."""
        assert self.peers is not None
        fruitless_s = self._peer_key_reads.get(tid)
        if fruitless_s is not None and self._monotonic() - fruitless_s < PEER_KEYS_REREAD_S:
            return keys, False
        fresh = await self.peers.keys_of(tid)
        if fresh is None or fresh == keys:
            self._note_fruitless_key_read(tid)
            return keys, False
        self._peer_key_reads.pop(tid, None)
        self.keys[tid] = fresh
        return fresh, self.hsm.mac_ok(message, doc, fresh.tak)

    def _note_fruitless_key_read(self, tid: str) -> None:
        self._peer_key_reads[tid] = self._monotonic()
        self._peer_key_reads.move_to_end(tid)
        while len(self._peer_key_reads) > PEER_KEY_READS_MAX:
            self._peer_key_reads.popitem(last=False)

    async def _exactly_once(
        self, kind: str, doc: Message, message: bytes, terminal: TerminalRecord, keys: WorkingKeys, day: date
    ) -> Answer:
        key = (terminal.tid, str(doc["11"]), day, kind)
        request_hash = request_digest(doc, message)
        known = self._answers.get(key)
        if known is None and key in self._inflight:
            known = await asyncio.shield(self._inflight[key])
        if known is not None:
            if known.request_hash == request_hash:
                return known
            return Answer(request_hash, protocol.response(doc, rc.DUPLICATE))
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            if self.peers is None or kind not in CLAIMED_KINDS:
                answer, final = await self._process(kind, doc, terminal, keys, day, request_hash), True
            else:
                answer, final = await self._claimed(key, kind, doc, terminal, keys, day, request_hash)
            if final and not _retryable(kind, answer.response):
                self._remember(key, answer)
            future.set_result(answer)
            return answer
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiting duplicates re-raise it themselves
            raise
        finally:
            del self._inflight[key]

    async def _claimed(
        self, key: tuple, kind: str, doc: Message, terminal: TerminalRecord, keys: WorkingKeys, day: date, request_hash: str
    ) -> tuple[Answer, bool]:
        """With other workers on this database: process the request when this worker claims it
        first, else answer as the winner did (from its journal row). Returns the answer and
        whether it is final (to remember for repeats)."""
        assert self.peers is not None
        claim = await self.peers.claim(key, request_hash, self.next_rrn())
        if not claim.won:
            return await self._as_loser(claim, key, doc, request_hash)
        try:
            answer = await self._process(kind, doc, terminal, keys, day, request_hash, claim.rrn)
        except BaseException:
            await asyncio.shield(self.peers.release(claim.id))  # no answer: the key is free again
            raise
        if _retryable(kind, answer.response):
            await self.peers.release(claim.id)
        return answer, True

    async def _as_loser(self, claim: Claim, key: tuple, doc: Message, request_hash: str) -> tuple[Answer, bool]:
        """The answer to a request another worker claimed: its journalled answer when the same
        request (field 2 as the terminal sent it: the journal keeps it masked), 94 for another
        request under the key; 91 with the winner's RRN when the winner's answer was not final
        or does not come within the wait (not remembered: a repeat asks again)."""
        assert self.peers is not None
        record = await self.peers.winner_record(key, claim)
        if record is not None:
            if record.request_hash != request_hash:
                return Answer(request_hash, protocol.response(doc, rc.DUPLICATE)), True
            response = dict(record.response)
            if "2" in response and "2" in doc:
                response["2"] = doc["2"]
            return Answer(request_hash, response), True
        if claim.request_hash != request_hash:
            return Answer(request_hash, protocol.response(doc, rc.DUPLICATE)), False
        return Answer(request_hash, protocol.response(doc, rc.ISSUER_UNAVAILABLE, **{"37": claim.rrn})), False

    def _remember(self, key: tuple, answer: Answer) -> None:
        self._answers[key] = answer
        while len(self._answers) > self._duplicates_max:
            self._answers.popitem(last=False)

    def next_rrn(self) -> str:
        self._rrn += self._rrn_step
        return f"{self._rrn % 10**12:012d}"

    async def _process(
        self, kind: str, doc: Message, terminal: TerminalRecord, keys: WorkingKeys, day: date, request_hash: str,
        rrn: str | None = None,
    ) -> Answer:
        """`rrn`: the one reserved by this worker's claim (switch.workers), else a new one."""
        received_at = self.now()
        handler = {
            "inquiry": self._inquiry,
            "purchase": self._purchase,
            "advice": self._advice,
            "reversal": self._reversal,
            "upload": self._upload,
            "settlement": self._settlement,
        }[kind]
        try:
            outcome = await (handler(doc, terminal, keys, day) if rrn is None else handler(doc, terminal, keys, day, rrn))
        except MessageError:
            outcome = Outcome(protocol.response(doc, rc.FORMAT_ERROR))
        if kind in BATCH_KINDS:
            written = self._journal_batch_message(doc, terminal, day, request_hash, outcome, received_at)
        elif _retryable(kind, outcome.response):
            written = self._journal_trail(doc, terminal, outcome, received_at)
        else:
            written = self._journal(kind, doc, terminal, day, request_hash, outcome, received_at)
        await self._journalled(written, terminal.tid, str(doc["11"]))
        if outcome.advice is not None and outcome.advice.claim_id is not None:
            assert self.peers is not None
            await self.peers.release(outcome.advice.claim_id)
        return Answer(request_hash, outcome.response)

    async def _journalled(self, written: Written, tid: str, stan: str) -> None:
        """Wait until the journal holds the answer's record, so that a switch killed after
        answering has it (the writer bounds the wait). A failed or slow write is logged; the
        answer still goes out: the bank has applied it, and the terminal must hear so."""
        if written is None:
            return
        committed = await written
        if committed is None:
            log.error("journal write of %s STAN %s not confirmed in time; answering anyway", tid, stan)
        elif not committed:
            log.error("journal write of %s STAN %s failed; answering anyway", tid, stan)

    def _journal(
        self, kind: str, doc: Message, terminal: TerminalRecord, day: date, request_hash: str, outcome: Outcome, at: datetime
    ) -> Written:
        record = self._transaction_record(kind, doc, terminal, day, request_hash, outcome, at)
        return self._sink_transaction(record, doc, outcome, outcome.response, at)

    def _sink_transaction(self, record: TransactionRecord, doc: Message, outcome: Outcome, answer: Message, at: datetime) -> Written:
        """Hand a transaction row and its trail (`doc` in, the bank legs, `answer` out) to the
        journal, and note it as the terminal's latest row (settlement waits for it)."""
        stan, tid = str(doc["11"]), record.tid
        messages = [
            MessageRecord(record.rrn, tid, stan, str(doc["t"]), "terminal_in", None, journal_fields(doc), at),
            *(m if m.rrn else MessageRecord(record.rrn, m.tid, m.stan, m.mti, m.direction, m.rc, m.fields, m.at) for m in outcome.bank_messages),
            MessageRecord(record.rrn, tid, stan, str(answer["t"]), "terminal_out", str(answer["39"]), journal_fields(answer), self.now()),
        ]
        written = self._sink(record, messages)
        self._last_journalled[tid] = (tid, record.stan, record.transmission_date, record.kind)
        return written

    def _journal_trail(self, doc: Message, terminal: TerminalRecord, outcome: Outcome, at: datetime) -> Written:
        """Only the message trail (no transaction row) of an answer that is not final: the key
        stays free, so the terminal's repeat is processed and journalled anew."""
        tid, stan, rrn = terminal.tid, str(doc["11"]), outcome.rrn
        return self._sink(
            None,
            [
                MessageRecord(rrn, tid, stan, str(doc["t"]), "terminal_in", None, journal_fields(doc), at),
                *outcome.bank_messages,
                MessageRecord(rrn, tid, stan, str(outcome.response["t"]), "terminal_out", str(outcome.response["39"]), journal_fields(outcome.response), self.now()),
            ],
        )

    def _journal_batch_message(
        self, doc: Message, terminal: TerminalRecord, day: date, request_hash: str, outcome: Outcome, at: datetime
    ) -> Written:
        """A 0500 or 0320 and its answer in the message trail; a 0320's forwarded offline sale
        also as an advice transaction (MTI 0320), unless the bank could not be asked (91: the
        key stays free for the upload's retry)."""
        advice = outcome.advice
        if advice is not None and advice.response.get("39") != rc.ISSUER_UNAVAILABLE:
            record = self._transaction_record("advice", batchlib.advice_of_upload(doc), terminal, day, request_hash, advice, at)
            return self._sink_transaction(replace(record, mti=str(doc["t"])), doc, advice, outcome.response, at)
        rrn = advice.rrn if advice is not None else None
        tid, stan = terminal.tid, str(doc["11"])
        return self._sink(
            None,
            [
                MessageRecord(rrn, tid, stan, str(doc["t"]), "terminal_in", None, journal_fields(doc), at),
                *(advice.bank_messages if advice is not None else ()),
                MessageRecord(rrn, tid, stan, str(outcome.response["t"]), "terminal_out", str(outcome.response["39"]), journal_fields(outcome.response), self.now()),
            ],
        )

    def _transaction_record(
        self, kind: str, doc: Message, terminal: TerminalRecord, day: date, request_hash: str, outcome: Outcome, at: datetime
    ) -> TransactionRecord:
        response = outcome.response
        rrn = outcome.rrn or str(response.get("37") or "") or None
        amount = _amount_or_zero(doc) if kind != "inquiry" else 0
        balance = protocol.parse_balance_field(str(response["54"])) if "54" in response else None
        return TransactionRecord(
            rrn=rrn or self.next_rrn(),
            tid=terminal.tid,
            mid=terminal.mid,
            stan=str(doc["11"]),
            transmission_date=day,
            mti=str(doc["t"]),
            kind=kind,
            pan_masked=mask_pan(str(doc.get("2", ""))),
            pan_hash=self.hsm.pan_hash(str(doc.get("2", ""))),
            bank_code=outcome.bank_code,
            amount_idr=amount,
            rc=str(response["39"]),
            approval_code=str(response["38"]) if "38" in response else None,
            balance_idr=balance,
            request_hash=request_hash,
            response=journal_fields(response),
            original_rrn=outcome.original_rrn,
            bank_latency_ms=outcome.bank_latency_ms,
            created_at=at,
            batch=batchlib.batch_of(doc),
        )

    # -- the four operations ------------------------------------------------------------------

    def _route(self, doc: Message):  # noqa: ANN202
        return bank_for_pan(str(doc["2"]))

    async def _call_bank(self, op: str, bank_code: str, body: dict, doc: Message) -> tuple[BankReply | BankUnavailable, tuple[MessageRecord, ...]]:
        tid, stan, mti = str(doc["41"]), str(doc["11"]), str(doc["t"])
        shown = {k: (mask_pan(v) if k == "pan" else v) for k, v in body.items() if k != "pin_block"}
        sent = MessageRecord(body.get("rrn"), tid, stan, mti, "bank_out", None, {"op": op, "bank": bank_code, **shown}, self.now())
        outcome = await self.banks.send(bank_code, op, body)
        if isinstance(outcome, BankReply):
            fields = {"rc": outcome.rc, "approval_code": outcome.approval_code, "balance_idr": outcome.balance_idr}
            got = MessageRecord(body.get("rrn"), tid, stan, mti, "bank_in", outcome.rc, fields, self.now())
        else:
            fields = {"error": outcome.reason, "may_have_posted": outcome.may_have_posted}
            got = MessageRecord(body.get("rrn"), tid, stan, mti, "bank_in", rc.ISSUER_UNAVAILABLE, fields, self.now())
        return outcome, (sent, got)

    def _base_body(self, doc: Message, day: date, rrn: str) -> dict:
        return {
            "terminal_id": str(doc["41"]),
            "stan": str(doc["11"]),
            "transmission_date": day.isoformat(),
            "rrn": rrn,
            "merchant_id": str(doc["42"]),
            "pan": str(doc["2"]),
        }

    @staticmethod
    def _answer_fields(rrn: str, reply: BankReply) -> dict[str, str]:
        fields = {"37": rrn}
        if reply.approval_code:
            fields["38"] = reply.approval_code
        if reply.balance_idr is not None:
            fields["54"] = protocol.balance_field(reply.balance_idr)
        return fields

    async def _with_pin(
        self, op: str, doc: Message, keys: WorkingKeys, day: date, extra: dict, rrn: str | None = None
    ) -> tuple[Outcome, BankReply | BankUnavailable | None]:
        bank = self._route(doc)
        if bank is None:
            return Outcome(protocol.response(doc, rc.INVALID_CARD)), None
        rrn = rrn or self.next_rrn()
        pin_block = self.hsm.translate_pin(str(doc["52"]), str(doc["2"]), keys.tpk, bank.code)
        if pin_block is None:
            return Outcome(protocol.response(doc, rc.WRONG_PIN, **{"37": rrn}), bank.code, rrn), None
        body = {**self._base_body(doc, day, rrn), "pin_block": pin_block, "processing_code": str(doc["3"]), **extra}
        reply, trail = await self._call_bank(op, bank.code, body, doc)
        if isinstance(reply, BankUnavailable):
            response = protocol.response(doc, rc.ISSUER_UNAVAILABLE, **{"37": rrn})
        else:
            response = protocol.response(doc, reply.rc, **self._answer_fields(rrn, reply))
        return Outcome(response, bank.code, rrn, reply.latency_ms, trail), reply

    async def _inquiry(self, doc: Message, terminal: TerminalRecord, keys: WorkingKeys, day: date, rrn: str | None = None) -> Outcome:
        outcome, _ = await self._with_pin("inquiry", doc, keys, day, {}, rrn)
        return outcome

    async def _purchase(self, doc: Message, terminal: TerminalRecord, keys: WorkingKeys, day: date, rrn: str | None = None) -> Outcome:
        amount = protocol.amount_idr(doc)
        outcome, reply = await self._with_pin("purchase", doc, keys, day, {"amount_idr": amount}, rrn)
        if isinstance(reply, BankUnavailable) and reply.may_have_posted:
            # The bank may have debited the card: reverse it for sure before the terminal hears 91.
            body = reversal_body(str(doc["41"]), str(doc["42"]), str(doc["2"]), amount, str(doc["11"]), day)
            await self._enqueue_saf(str(outcome.rrn), str(outcome.bank_code), body)
        return outcome

    async def _advice(self, doc: Message, terminal: TerminalRecord, keys: WorkingKeys, day: date, rrn: str | None = None) -> Outcome:
        bank = self._route(doc)
        if bank is None:
            return Outcome(protocol.response(doc, rc.INVALID_CARD))
        transaction_at = _local_time(doc, self.now().date())
        rrn = await self._advice_rrn(str(doc["41"]), str(doc["11"]), day, rrn)
        body = {
            **self._base_body(doc, day, rrn),
            "amount_idr": protocol.amount_idr(doc),
            "processing_code": str(doc["3"]),
            "transaction_at": transaction_at.isoformat(),
        }
        reply, trail = await self._call_bank("advice", bank.code, body, doc)
        if isinstance(reply, BankUnavailable):
            return Outcome(protocol.response(doc, rc.ISSUER_UNAVAILABLE, **{"37": rrn}), bank.code, rrn, reply.latency_ms, trail)
        return Outcome(protocol.response(doc, reply.rc, **self._answer_fields(rrn, reply)), bank.code, rrn, reply.latency_ms, trail)

    async def _advice_rrn(self, tid: str, stan: str, day: date, reserved: str | None = None) -> str:
        """The RRN an advice goes to the bank with: the one it went with before (remembered, or
        journalled when `batches` can read the journal), else `reserved` or a new one."""
        key = (tid, stan, day)
        rrn = self._advice_rrns.get(key)
        if rrn is None and self.batches is not None:
            journalled = await self.batches.journalled(tid, stan, day, "advice")
            rrn = journalled.rrn if journalled is not None else None
        if key not in self._advice_rrns:  # (another request may have chosen one meanwhile)
            self._advice_rrns[key] = rrn or reserved or self.next_rrn()
            while len(self._advice_rrns) > self._duplicates_max:
                self._advice_rrns.popitem(last=False)
        return self._advice_rrns[key]

    async def _original_rrn(self, tid: str, stan: str, day: date) -> str | None:
        """The RRN of the purchase a reversal undoes: remembered, else (after a restart) from the
        journal, so the reversal is linked to it and counts in its batch's totals. A purchase still
        in flight here (its reversal overtook its answer) is waited for: the reversal then goes to
        the bank after it, and is journalled linked to it; so is a purchase another worker holds."""
        key = (tid, stan, day, "purchase")
        original = self._answers.get(key)
        if original is None and key in self._inflight:
            with contextlib.suppress(Exception):
                original = await asyncio.shield(self._inflight[key])
        if original is not None:
            return str(original.response["37"]) if "37" in original.response else None
        if self.batches is None:
            return None
        journalled = await self.batches.journalled(tid, stan, day, "purchase")
        if journalled is None and self.peers is not None:  # in flight at another worker?
            journalled = await self.peers.claimed_record(key)
        return journalled.rrn if journalled is not None else None

    async def _reversal(self, doc: Message, terminal: TerminalRecord, keys: WorkingKeys, day: date, rrn: str | None = None) -> Outcome:
        bank = self._route(doc)
        if bank is None:
            return Outcome(protocol.response(doc, rc.INVALID_CARD))
        original_mti, original_stan, original_f7 = protocol.parse_original_data(str(doc["90"]))
        original_day = protocol.transmission_date(original_f7, self.now().date())
        original_rrn = await self._original_rrn(terminal.tid, original_stan, original_day)
        rrn = rrn or self.next_rrn()
        body = reversal_body(terminal.tid, terminal.mid, str(doc["2"]), protocol.amount_idr(doc), original_stan, original_day)
        reply, trail = await self._call_bank("reversal", bank.code, body, doc)
        if isinstance(reply, BankUnavailable):
            # Stored and forwarded until the bank acknowledges: the terminal may consider it done.
            await self._enqueue_saf(rrn, bank.code, body)
            response = protocol.response(doc, rc.APPROVED, **{"37": rrn})
        else:
            response = protocol.response(doc, reply.rc, **self._answer_fields(rrn, reply))
        return Outcome(response, bank.code, rrn, reply.latency_ms, trail, original_rrn=original_rrn)

    # -- batches: settlement and batch upload (decided by switch.batches) ---------------------------

    async def _settlement(self, doc: Message, terminal: TerminalRecord, keys: WorkingKeys, day: date) -> Outcome:
        """0500: the batch's totals against the journal's, once the journal holds the
        terminal's last transaction."""
        assert self.batches is not None  # _dispatch refuses batch messages without it
        request = batchlib.parse_settlement(doc)
        await self.batches.caught_up(self._last_journalled.get(terminal.tid))
        code, fields = await self.batches.settle(terminal.tid, str(doc["11"]), request)
        return Outcome(protocol.response(doc, code, **fields))

    async def _upload(self, doc: Message, terminal: TerminalRecord, keys: WorkingKeys, day: date) -> Outcome:
        """0320: record the detailed transaction once; an offline sale the switch has no bank
        answer for goes to the bank first, as its advice (91 when the bank cannot take it: the
        upload is not recorded, and its retry is taken again)."""
        assert self.batches is not None  # _dispatch refuses batch messages without it
        upload = batchlib.parse_upload(doc, terminal.tid, day, self.now())
        refused = await self.batches.upload_refusal(terminal.tid, upload.batch)
        if refused:
            return Outcome(protocol.response(doc, refused))
        advice = None
        if upload.original_mti == iso8583.ADVICE and not await self._advice_answered(terminal.tid, upload.stan, day):
            advice = await self._uploaded_advice(batchlib.advice_of_upload(doc), terminal, keys, day)
            if advice is not None and advice.response.get("39") == rc.ISSUER_UNAVAILABLE:
                return Outcome(protocol.response(doc, rc.ISSUER_UNAVAILABLE), advice=advice)
        code = await self.batches.record_upload(upload)
        return Outcome(protocol.response(doc, code), advice=advice)

    async def _uploaded_advice(self, advice_doc: Message, terminal: TerminalRecord, keys: WorkingKeys, day: date) -> Outcome | None:
        """The bank's answer to the advice of an offline sale a 0320 details. With other workers,
        the advice is claimed first, as its 0220 is (an upload cut and sent again on a new
        connection may reach another worker while the first is still at the bank): None when the
        other worker has answered it, 91 when its answer does not come in time (the terminal
        uploads again). The claim is released once the upload is journalled (`_process`): a
        later 0220 of the sale is then answered from the journal, as with one switch."""
        if self.peers is None:
            return await self._advice(advice_doc, terminal, keys, day)
        key = (terminal.tid, str(advice_doc["11"]), day, "advice")
        claim = await self.peers.claim(key, _doc_digest(advice_doc), self.next_rrn())
        if not claim.won:
            record = await self.peers.winner_record(key, claim)
            if record is not None and record.rc != rc.ISSUER_UNAVAILABLE:
                return None
            return Outcome(protocol.response(advice_doc, rc.ISSUER_UNAVAILABLE))
        try:
            advice = await self._advice(advice_doc, terminal, keys, day, claim.rrn)
        except BaseException:
            await asyncio.shield(self.peers.release(claim.id))  # no answer: the key is free again
            raise
        if _retryable("advice", advice.response):
            await self.peers.release(claim.id)
            return advice
        return replace(advice, claim_id=claim.id)

    async def _advice_answered(self, tid: str, stan: str, day: date) -> bool:
        """Whether the switch has the bank's answer to the advice (tid, STAN, date): in memory
        (answered or in flight here) or in the journal. A 91 is no answer."""
        key = (tid, stan, day, "advice")
        known = self._answers.get(key)
        if known is None and key in self._inflight:
            known = await asyncio.shield(self._inflight[key])
        if known is not None:
            return known.response.get("39") != rc.ISSUER_UNAVAILABLE
        assert self.batches is not None
        journalled = await self.batches.journalled(tid, stan, day, "advice")
        return journalled is not None and journalled.rc != rc.ISSUER_UNAVAILABLE


class Challenges:
    """One-time sign-on challenges, one per terminal, valid for `ttl_s`."""

    def __init__(self, ttl_s: float = 120.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._monotonic = monotonic
        self._issued: dict[str, tuple[str, float]] = {}  # bounded by the number of terminals

    def issue(self, tid: str) -> str:
        challenge = protocol.new_challenge()
        self._issued[tid] = (challenge, self._monotonic())
        return challenge

    def take(self, tid: str, answered: str) -> bool:
        """True once for the challenge last issued to `tid`, within its lifetime."""
        issued = self._issued.pop(tid, None)
        if issued is None:
            return False
        challenge, at_s = issued
        return hmac.compare_digest(challenge, answered) and self._monotonic() - at_s <= self.ttl_s


def request_digest(doc: Message, message: bytes) -> str:
    """SHA-256 (hex) of a request without its MAC, for duplicate detection. A 0401 is the same
    request as the 0400 it repeats (the terminal changes only the MTI): a repeat of a reversal
    whose answer was lost gets that answer again, not 94."""
    body = message[: -iso8583.MAC_BYTES]
    if doc.get("t") == iso8583.REVERSAL_REPEAT and body[:4] == iso8583.REVERSAL_REPEAT.encode():
        body = iso8583.REVERSAL.encode() + body[4:]
    return hashlib.sha256(body).hexdigest()


def _doc_digest(doc: Message) -> str:
    """SHA-256 (hex) of a message's fields, for a request the switch builds itself (the advice
    of an uploaded offline sale), which has no bytes of its own."""
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _retryable(kind: str, response: Message) -> bool:
    """An advice or upload the bank could not be asked about (91) is not final: it is neither
    remembered nor journalled as a transaction, so the terminal's repeat reaches the bank. (A
    purchase answered 91 is final: the terminal reverses it.)"""
    return kind in ("advice", "upload") and response.get("39") == rc.ISSUER_UNAVAILABLE


def _format_problem(kind: str, doc: Message) -> str | None:
    """Why a financial request is malformed (missing or non-numeric fields), or None."""
    missing = [f for f in REQUIRED[kind] if f not in doc]
    if missing:
        return f"missing fields {', '.join(missing)}"
    letters = [f for f in NUMERIC_FIELDS if f in doc and not str(doc[f]).isdigit()]
    if letters:
        return f"non-numeric fields {', '.join(letters)}"
    return None


def _local_time(doc: Message, today: date) -> datetime:
    """The sale's own date and time from fields 13 (MMDD) and 12 (hhmmss); MessageError when
    they hold no real date or time."""
    day = protocol.transmission_date(f"{doc['13']}000000", today)
    try:
        clock = protocol.time_of_day(str(doc["12"]))
    except ValueError:
        raise MessageError(f"field 12 must be a time hhmmss, got {doc['12']!r}") from None
    return datetime.combine(day, clock)


def _amount_or_zero(doc: Message) -> int:
    """Field 4 in rupiah for the journal; a malformed amount was already answered with 30."""
    try:
        return protocol.amount_idr(doc)
    except MessageError:
        return 0


def reversal_body(tid: str, mid: str, pan: str, amount_idr: int, original_stan: str, original_day: date) -> dict:
    """The bank reversal request for a purchase, built only from the purchase itself: the
    terminal's 0400 and the switch's store-and-forward send the very same body, so the bank
    answers both the same way and gives the money back once."""
    return {
        "terminal_id": tid,
        "stan": original_stan,
        "transmission_date": original_day.isoformat(),
        "merchant_id": mid,
        "pan": pan,
        "amount_idr": amount_idr,
        "original_stan": original_stan,
        "original_transmission_date": original_day.isoformat(),
    }
