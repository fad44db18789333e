"""Test doubles for the EDC: a fixed clock and a small fake switch on 127.0.0.1.

The fake switch speaks the real protocol (shared.protocol, shared.iso8583): sign-on, key
exchange with fresh keys wrapped under each demo terminal's master key, echo, inquiry, purchase
and reversal against an in-memory balance per card. It checks every MAC and deciphers every PIN
block, and it can stay silent, answer late, answer with a broken MAC or drop the connection.
It runs its own event loop in a thread so that synchronous code (CliRunner) can call it;
`answer_now` answers one encoded request in the caller's thread (no network at all).

It also serves the offline card list (0800 code 360: `offline_cards` PAN -> NIK, `hot_pans`,
`offline_limit_idr`, pages of `refs_per_page`), takes offline advices (0220, idempotent per
terminal, STAN and field 7; `advice_rcs` answers chosen STANs otherwise), batch uploads (0320)
and settlements (0500: its own totals of the batch from what it approved; 95 with its totals
when they differ, or once for each batch in `force_95_batches`; 960000 closes).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from edc_terminal.batchjob import BatchJob, JobResult
from edc_terminal.core import Command, EdcCore, Finished, Outcome, Reject, Send

from shared import keys as keylib
from shared import offline, pinblock, protocol
from shared.banks import demo_terminal
from shared.iso8583 import Message, decode, encode, encode_with_mac, frame, mac_valid, read_frame, split_frame

FAKE_LIST_KEY = offline.list_key(bytes.fromhex(keylib.demo_key_hex("bni", "zpk")), "bni")

BUSINESS_START = datetime(2026, 11, 3, 9, 0, 0)


@dataclass
class FixedClock:
    at: datetime = BUSINESS_START

    def now(self) -> datetime:
        return self.at


@dataclass
class Account:
    pin: str
    balance: int


@dataclass
class Keys:
    tpk: bytes
    tak: bytes


@dataclass
class Journal:
    pan: str
    amount: int
    approved: bool
    reversed: bool = False
    batch: int = 0
    advice: bool = False


@dataclass
class FakeSwitch:
    accounts: dict[str, Account]
    unknown_tids: set[str] = field(default_factory=set)
    silent_mtis: set[str] = field(default_factory=set)  # processed, never answered
    silent_stans: set[str] = field(default_factory=set)
    lost_mtis: set[str] = field(default_factory=set)  # lost on the way in: neither processed nor answered
    bad_mac_mtis: set[str] = field(default_factory=set)  # answered with a broken MAC
    delays_ms: dict[str, int] = field(default_factory=dict)  # STAN -> answer delay
    drop_on_stans: set[str] = field(default_factory=set)  # close the connection instead
    keys: dict[str, Keys] = field(default_factory=dict)
    challenges: dict[str, str] = field(default_factory=dict)  # the last sign-on's, per terminal
    received: list[Message] = field(default_factory=list)
    mac_failures: int = 0
    pin_failures: int = 0
    port: int = 0
    received_raw: list[bytes] = field(default_factory=list)
    # offline card list (0800 code 360)
    offline_cards: dict[str, str] = field(default_factory=dict)  # PAN -> NIK of the holder
    hot_pans: set[str] = field(default_factory=set)
    offline_limit_idr: int = 150_000
    refs_per_page: int = offline.REFS_PER_PAGE_MAX
    list_key: bytes = FAKE_LIST_KEY
    card_list_rc: str | None = None  # answer every page with this RC instead
    list_key_wrapped_under: bytes | None = None  # wrap the list key under this key, not the TMK
    # advices, uploads, settlement
    advice_rcs: dict[str, str] = field(default_factory=dict)  # STAN -> RC of its 0220
    advice_answers: dict[tuple[str, str, str], Message] = field(default_factory=dict)
    uploads: list[Message] = field(default_factory=list)
    force_95_batches: set[int] = field(default_factory=set)
    closed_batches: dict[tuple[str, int], str] = field(default_factory=dict)  # -> totals field
    _journal: dict[tuple[str, str], Journal] = field(default_factory=dict)
    _rrn: int = 0

    # -- lifecycle (a thread with its own loop) ------------------------------------------------

    def start(self) -> FakeSwitch:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-switch", daemon=True)
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def _call(self, coroutine):  # noqa: ANN001, ANN202
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(5)

    async def _shutdown(self) -> None:
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def mtis(self) -> list[str]:
        return [m["t"] for m in self.received]

    # -- connection ----------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                body = await read_frame(reader, 10_000)
                tpdu, raw = split_frame(body)
                message = decode(raw)
                self.received.append(message)
                self.received_raw.append(raw)
                if message.get("11") in self.drop_on_stans:
                    return
                answer = self._answer(message, raw)
                if answer is not None:
                    delay = self.delays_ms.get(message.get("11", ""), 0)
                    asyncio.create_task(self._reply(writer, frame(tpdu.reply(), answer), delay))
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()

    async def _reply(self, writer: asyncio.StreamWriter, data: bytes, delay_ms: int) -> None:
        await asyncio.sleep(delay_ms / 1000)
        with contextlib.suppress(ConnectionError):
            writer.write(data)
            await writer.drain()

    def answer_now(self, data: bytes) -> bytes | None:
        """Process one encoded request here and now: its encoded answer, or None (silent, lost)."""
        message = decode(data)
        self.received.append(message)
        self.received_raw.append(data)
        return self._answer(message, data)

    # -- processing ------------------------------------------------------------------------------

    def _answer(self, message: Message, raw: bytes) -> bytes | None:
        mti = message["t"]
        if mti in self.lost_mtis:
            return None
        if mti == "0800":
            if mti in self.silent_mtis or message["11"] in self.silent_stans:
                return None
            answer = self._network(message, raw)
            return answer if isinstance(answer, bytes) else encode(answer)
        keys = self.keys.get(message.get("41", ""))
        if keys is None:
            return encode(protocol.response(message, "58"))
        if not mac_valid(raw, message, keys.tak):
            self.mac_failures += 1
            return encode_with_mac(protocol.response(message, "12"), keys.tak)
        handler = {
            "0100": self._inquiry,
            "0200": self._purchase,
            "0220": self._advice,
            "0320": self._upload,
            "0400": self._reversal,
            "0401": self._reversal,
            "0500": self._settlement,
        }[mti]
        response = handler(message, keys)
        if mti in self.silent_mtis or message["11"] in self.silent_stans:
            return None
        data = encode_with_mac(response, keys.tak)
        if protocol.response_mti(mti) in self.bad_mac_mtis:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        return data

    def _network(self, message: Message, raw: bytes) -> Message | bytes:
        tid = message["41"]
        if demo_terminal(tid) is None or tid in self.unknown_tids:
            return protocol.response(message, "58")
        if message["70"] == "001":
            self.challenges[tid] = protocol.new_challenge()
            return protocol.response(message, "00", **{"48": self.challenges[tid]})
        if message["70"] == "360":
            return self._card_list_page(message, raw)
        if message["70"] != "101":
            return protocol.response(message, "00")
        tmk = bytes.fromhex(keylib.demo_terminal_master_key_hex(tid))
        challenge = self.challenges.pop(tid, None)
        if challenge != message.get("48") or not mac_valid(raw, message, keylib.key_exchange_key(tmk)):
            return protocol.response(message, "63")
        tpk, tak = keylib.new_key(), keylib.new_key()
        self.keys[tid] = Keys(tpk, tak)
        field48 = protocol.keys_field(keylib.wrap(tmk, tpk), keylib.wrap(tmk, tak), keylib.kcv(tpk), keylib.kcv(tak))
        return protocol.response(message, "00", **{"48": field48})

    def _next_rrn(self) -> str:
        self._rrn += 1
        return f"{self._rrn:012d}"

    def _verify(self, message: Message, keys: Keys) -> tuple[Account | None, str | None]:
        """(account, None) when the card and PIN are right, else (None, rc)."""
        pan = message["2"]
        account = self.accounts.get(pan)
        if account is None:
            return None, "14"
        pin = pinblock.decipher(keys.tpk, bytes.fromhex(message["52"]), pan)
        if pin != account.pin:
            self.pin_failures += 1
            return None, "55"
        return account, None

    def _inquiry(self, message: Message, keys: Keys) -> Message:
        account, rc = self._verify(message, keys)
        if account is None:
            return protocol.response(message, rc or "96", **{"37": self._next_rrn()})
        return protocol.response(message, "00", **{"37": self._next_rrn(), "54": protocol.balance_field(account.balance)})

    def _purchase(self, message: Message, keys: Keys) -> Message:
        account, rc = self._verify(message, keys)
        amount = protocol.amount_idr(message)
        if account is not None and amount > account.balance:
            account, rc = None, "51"
        approved = account is not None
        self._journal[(message["41"], message["11"])] = Journal(message["2"], amount, approved, batch=int(message["60"]))
        if account is None:
            return protocol.response(message, rc or "96", **{"37": self._next_rrn()})
        account.balance -= amount
        fields = {"37": self._next_rrn(), "38": f"{self._rrn % 1_000_000:06d}", "54": protocol.balance_field(account.balance)}
        return protocol.response(message, "00", **fields)

    def _reversal(self, message: Message, keys: Keys) -> Message:
        _, original_stan, _ = protocol.parse_original_data(message["90"])
        entry = self._journal.get((message["41"], original_stan))
        if entry is not None and entry.approved and not entry.reversed:
            entry.reversed = True
            self.accounts[entry.pan].balance += entry.amount
        return protocol.response(message, "00", **{"37": self._next_rrn()})

    # -- offline card list, advices, uploads, settlement --------------------------------------------

    def _card_list_page(self, message: Message, raw: bytes) -> Message | bytes:
        keys = self.keys.get(message["41"])
        if keys is None:
            return protocol.response(message, "58")
        if not mac_valid(raw, message, keys.tak):
            return protocol.response(message, "63")
        rc, fields = self._page(message)
        return encode_with_mac(protocol.response(message, rc, **fields), keys.tak)  # type: ignore[return-value]

    def _page(self, message: Message) -> tuple[str, dict[str, str]]:
        if self.card_list_rc is not None:
            return self.card_list_rc, {}
        page = offline.parse_page_field(message["60"])
        hot = sorted({offline.hot_ref(self.list_key, pan) for pan in self.hot_pans})
        ids = sorted({offline.id_ref(self.list_key, pan, nik) for pan, nik in self.offline_cards.items()})
        per = self.refs_per_page
        pages = max(1, -(-len(hot) // per), -(-len(ids) // per))
        if page > pages:
            return "12", {}
        tmk = self.list_key_wrapped_under or bytes.fromhex(keylib.demo_terminal_master_key_hex(message["41"]))
        header = offline.ListHeader(
            keylib.wrap(tmk, self.list_key), offline.list_key_check(self.list_key), self.offline_limit_idr, pages
        )
        chunk = slice((page - 1) * per, page * per)
        fields = {"48": offline.list_header_field(header), "61": "".join(hot[chunk]), "62": "".join(ids[chunk])}
        return "00", {k: v for k, v in fields.items() if v}

    def _advice(self, message: Message, keys: Keys) -> Message:
        key = (message["41"], message["11"], message["7"])
        if key in self.advice_answers:  # a repeat: the same answer
            return self.advice_answers[key]
        rc = self.advice_rcs.get(message["11"], "00")
        amount = protocol.amount_idr(message)
        self._journal[(message["41"], message["11"])] = Journal(
            message["2"], amount, rc == "00", batch=int(message["60"]), advice=True
        )
        account = self.accounts.get(message["2"])
        if rc == "00" and account is not None:
            account.balance -= amount
        answer = protocol.response(message, rc, **{"37": self._next_rrn(), "38": message["38"]})
        if rc not in ("91", "96", "30"):
            self.advice_answers[key] = answer
        return answer

    def _upload(self, message: Message, keys: Keys) -> Message:
        self.uploads.append(message)
        return protocol.response(message, "00")

    def batch_totals(self, tid: str, batch: int) -> protocol.BatchTotals:
        """What this switch approved in a terminal's batch (as the real switch sums it)."""
        entries = [j for (t, _), j in self._journal.items() if t == tid and j.batch == batch and j.approved]
        voided = [j for j in entries if j.reversed and not j.advice]
        return protocol.BatchTotals(
            len(entries), sum(j.amount for j in entries), len(voided), sum(j.amount for j in voided)
        )

    def _settlement(self, message: Message, keys: Keys) -> Message:
        tid, batch = message["41"], int(message["60"])
        ours = protocol.totals_field(self.batch_totals(tid, batch))
        closed = self.closed_batches.get((tid, batch))
        if closed is not None:
            return protocol.response(message, "00" if closed == message["63"] else "94")
        if message["3"] == protocol.PROCESSING_SETTLEMENT_AFTER_UPLOAD:
            self.closed_batches[(tid, batch)] = message["63"]
            return protocol.response(message, "00")
        if message["63"] != ours or batch in self.force_95_batches:
            self.force_95_batches.discard(batch)
            return protocol.response(message, "95", **{"63": ours})
        self.closed_batches[(tid, batch)] = message["63"]
        return protocol.response(message, "00")


# -- driving the core against the fake in one thread (no network) ---------------------------------


def drive_sync(
    core: EdcCore, commands: list[Command], switch: FakeSwitch, tamper: Callable[[bytes], bytes] | None = None
) -> Outcome:
    """Run a flow of the core to its end, each Send answered at once by `switch.answer_now`
    (no answer: a timeout). `tamper` may change each answer's bytes. Returns the outcome."""
    for _ in range(1_000):
        if finished := [c for c in commands if isinstance(c, Finished)]:
            return finished[0].outcome
        if rejected := [c for c in commands if isinstance(c, Reject)]:
            raise AssertionError(f"refused: {rejected[0].reason}")
        send = next(c for c in commands if isinstance(c, Send))
        raw = switch.answer_now(send.data)
        if raw is not None and tamper is not None:
            raw = tamper(raw)
        commands = core.on_timeout(send.stan) if raw is None else core.on_response(decode(raw), raw)
    raise AssertionError("the flow did not end")


def run_job_sync(job: BatchJob, switch: FakeSwitch, window: int = 32, reverse: bool = True) -> JobResult:
    """Run a job to its end: each round sends up to `window` messages, the fake processes them
    in order, and the answers come back in reverse order (`reverse`), as pipelining allows."""
    for _ in range(100_000):
        if job.done:
            break
        sends = job.poll(window)
        assert sends, f"the job is stuck in phase {job.phase}"
        assert len(sends) <= window
        answers = [(send, switch.answer_now(send.data)) for send in sends]
        for send, raw in reversed(answers) if reverse else answers:
            if raw is None:
                job.on_timeout(send)
            else:
                job.on_response(decode(raw), raw)
    assert job.result is not None
    return job.result

