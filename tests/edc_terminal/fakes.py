"""Test doubles for the EDC: a fixed clock and a small fake switch on 127.0.0.1.

The fake switch speaks the real protocol (shared.protocol, shared.iso8583): sign-on, key
exchange with fresh keys wrapped under each demo terminal's master key, echo, inquiry, purchase
and reversal against an in-memory balance per card. It checks every MAC and deciphers every PIN
block, and it can stay silent, answer late, answer with a broken MAC or drop the connection.
It runs its own event loop in a thread so that synchronous code (CliRunner) can call it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field
from datetime import datetime

from shared import keys as keylib
from shared import pinblock, protocol
from shared.banks import demo_terminal
from shared.iso8583 import Message, decode, encode, encode_with_mac, frame, mac_valid, read_frame, split_frame

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

    # -- processing ------------------------------------------------------------------------------

    def _answer(self, message: Message, raw: bytes) -> bytes | None:
        mti = message["t"]
        if mti in self.lost_mtis:
            return None
        if mti == "0800":
            silent = mti in self.silent_mtis or message["11"] in self.silent_stans
            return None if silent else encode(self._network(message, raw))
        keys = self.keys.get(message.get("41", ""))
        if keys is None:
            return encode(protocol.response(message, "58"))
        if not mac_valid(raw, message, keys.tak):
            self.mac_failures += 1
            return encode_with_mac(protocol.response(message, "12"), keys.tak)
        handler = {"0100": self._inquiry, "0200": self._purchase, "0400": self._reversal, "0401": self._reversal}[mti]
        response = handler(message, keys)
        if mti in self.silent_mtis or message["11"] in self.silent_stans:
            return None
        data = encode_with_mac(response, keys.tak)
        if protocol.response_mti(mti) in self.bad_mac_mtis:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        return data

    def _network(self, message: Message, raw: bytes) -> Message:
        tid = message["41"]
        if demo_terminal(tid) is None or tid in self.unknown_tids:
            return protocol.response(message, "58")
        if message["70"] == "001":
            self.challenges[tid] = protocol.new_challenge()
            return protocol.response(message, "00", **{"48": self.challenges[tid]})
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
        self._journal[(message["41"], message["11"])] = Journal(message["2"], amount, approved)
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
