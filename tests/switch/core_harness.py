"""A SwitchCore in process, without a database or banks: a signed-on demo terminal with known
working keys, a bank that answers as told, and a journal that is a list. For tests that feed
the handler exact bytes (property tests, malformed frames)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime

from shared import iso8583, pinblock, protocol
from shared.banks import BANKS, get_bank
from shared.keys import demo_key_hex, demo_terminal_master_key_hex

from switch.bank_client import BankReply, BankUnavailable
from switch.core import SwitchCore
from switch.hsm import SwitchHsm, WorkingKeys
from switch.journal import MessageRecord, TerminalRecord, TransactionRecord

BNI = get_bank("bni")
TID, MID = BNI.terminal_id(1), BNI.merchant_id(1)
PAN = "9360000900000014"
NOW = datetime(2026, 11, 3, 9, 0, 0)
TPK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
TAK = bytes.fromhex("89ABCDEF0123456776543210FEDCBA98")
REQUEST_TPDU = iso8583.Tpdu(1, 0)
HANDLE_TIMEOUT_S = 5.0


@dataclass
class FakeBanks:
    """Answers every request with `rc` (or raises `fault`, to stand for a bug of the switch)."""

    rc: str = "00"
    fault: Exception | None = None
    calls: list[tuple[str, str, dict]] = field(default_factory=list)

    async def send(self, bank_code: str, op: str, body: dict) -> BankReply | BankUnavailable:
        self.calls.append((bank_code, op, body))
        if self.fault is not None:
            raise self.fault
        return BankReply(self.rc, "123456" if self.rc == "00" else None, 150_000, 1)


@dataclass
class Harness:
    core: SwitchCore
    banks: FakeBanks
    journal: list[tuple[TransactionRecord | None, list[MessageRecord]]]

    def handle(self, body: bytes) -> bytes | None:
        async def run() -> bytes | None:
            return await asyncio.wait_for(self.core.handle(body), HANDLE_TIMEOUT_S)

        return asyncio.run(run())

    def send(self, message: bytes) -> tuple[bytes, dict] | None:
        """The answer message (bytes, decoded) to one message, or None when dropped."""
        answer = self.handle(REQUEST_TPDU.to_bytes() + message)
        if answer is None:
            return None
        tpdu, reply = iso8583.split_frame(answer)
        assert tpdu == REQUEST_TPDU.reply()
        return reply, iso8583.decode(reply)

    def messages(self) -> list[MessageRecord]:
        return [m for _, ms in self.journal for m in ms]

    def transactions(self) -> list[TransactionRecord]:
        return [t for t, _ in self.journal if t is not None]


def make_harness(banks: FakeBanks | None = None) -> Harness:
    hsm = SwitchHsm(demo_key_hex("switch", "lmk"), {code: demo_key_hex(code, "zpk") for code in BANKS})
    tmk = bytes.fromhex(demo_terminal_master_key_hex(TID))
    terminal = TerminalRecord(TID, MID, "bni", "EDC BNI e-Warong 1", hsm.wrap_for_storage(tmk))
    journal: list = []
    banks = banks or FakeBanks()

    async def persist_keys(tid: str, tpk: str, tak: str) -> None:
        return None

    async def enqueue_saf(rrn: str, bank_code: str, body: dict) -> None:
        return None

    core = SwitchCore(
        hsm=hsm,
        banks=banks,  # type: ignore[arg-type]
        terminals=[terminal],
        working_keys={TID: WorkingKeys(TPK, TAK)},
        last_rrn=0,
        now=lambda: NOW,
        journal_sink=lambda record, messages: journal.append((record, list(messages))),
        persist_keys=persist_keys,
        enqueue_saf=enqueue_saf,
    )
    return Harness(core, banks, journal)


_stans = iter(range(1, 10**6))


def purchase_doc(amount_idr: int = 10_000, stan: str | None = None) -> dict:
    block = pinblock.encipher(TPK, "123456", PAN).hex().upper()
    return protocol.purchase_request(protocol.Terminal(TID, MID), stan or f"{next(_stans):06d}", NOW, PAN, amount_idr, block, 1)


def advice_doc(stan: str | None = None, **fields: str) -> dict:
    doc = {k: v for k, v in purchase_doc(stan=stan).items() if k != "52"}
    return {**doc, "t": iso8583.ADVICE, "38": "654321", **fields}


def echo_doc() -> dict:
    return protocol.network_request(protocol.Terminal(TID, MID), iso8583.ECHO, f"{next(_stans):06d}", NOW)


def maced(doc: dict) -> bytes:
    return iso8583.encode_with_mac(doc, TAK)


class Records(logging.Handler):
    """Collects the log records of the switch's loggers while installed."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> Records:
        logger = logging.getLogger("switch")
        self._level = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logger = logging.getLogger("switch")
        logger.removeHandler(self)
        logger.setLevel(self._level)

    @property
    def tracebacks(self) -> list[logging.LogRecord]:
        return [r for r in self.records if r.exc_info]

