"""The EDC fed arbitrary answers (issue 12): property-based, bounded (well under 20 s).

- The client (`SwitchClient`) against a small hostile switch on 127.0.0.1 that answers each
  request with arbitrary bytes, arbitrary frames, mutated valid answers, silence or a closed
  connection: the caller only ever sees an answer to its own (MTI class, STAN), TimeoutError or
  SwitchUnavailable; no waiter is left behind; afterwards the client either answers again or
  says that the connection is lost (never a silent, stalled connection).
- The core (`EdcCore.on_response`) fed mutated and arbitrary answers while a purchase is in
  flight: it never raises, and a purchase without a valid answer (wrong MTI or STAN, bad MAC,
  garbage, nothing) is never approved: it ends reversed, or with its reversal kept pending.
- Both together, as `sembako edc-cli` drives them (`headless.drive`): the same, end to end.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edc_terminal import headless
from edc_terminal.client import (
    ClientConfig,
    Received,
    SwitchClient,
    SwitchUnavailable,
    match_key,
)
from edc_terminal.core import (
    Command,
    CoreConfig,
    EdcCore,
    Finished,
    Outcome,
    Send,
    State,
)
from edc_terminal.store import MemoryStore, TerminalState, WorkingKeys
from shared import keys as keylib
from shared import protocol
from shared.iso8583 import (
    ECHO,
    MessageError,
    Tpdu,
    decode,
    encode,
    encode_with_mac,
    frame,
    read_frame,
    response_mti,
    split_frame,
)
from tests.edc_terminal.conftest import PAN, PIN
from tests.edc_terminal.fakes import FixedClock

TID = "BNI00001"
TMK = bytes.fromhex(keylib.demo_terminal_master_key_hex(TID))
TERMINAL = protocol.Terminal(TID, "EWBNI0000000001")
AT = datetime(2026, 11, 3, 9, 0, 0)
AMOUNT_IDR = 25_000

QUICK = settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
PURE = settings(max_examples=300, deadline=None, database=None)

# -- the hostile switch ----------------------------------------------------------------------------

# What the switch does with one request. Arguments: bytes for "raw"/"frame", (position, value)
# for "mutated", a length offset for "length".
Answer = tuple


def answers() -> st.SearchStrategy[Answer]:
    return st.one_of(
        st.just(("valid",)),
        st.just(("silent",)),
        st.just(("twice",)),
        st.just(("close",)),
        st.just(("other_stan",)),
        st.just(("other_mti",)),
        st.tuples(st.just("raw"), st.binary(min_size=1, max_size=64)),
        st.tuples(st.just("frame"), st.binary(max_size=300)),
        st.tuples(st.just("mutated"), st.integers(0, 10_000), st.integers(0, 255)),
        st.tuples(st.just("length"), st.sampled_from([-3, -2, -1, 1, 2, 3])),
    )


def mutate(data: bytes, position: int, value: int) -> bytes:
    at = position % len(data)
    return data[:at] + bytes([value]) + data[at + 1 :]


@dataclass
class HostileSwitch:
    """Answers the n-th request it reads as `plan[n]` says, then honestly (valid answers).
    `sign` makes the answers to 0200/0400/0401 carry a MAC under that key."""

    plan: list[Answer]
    sign: bytes | None = None
    received: list[dict] = field(default_factory=list)
    handlers: set[asyncio.Task] = field(default_factory=set)
    server: asyncio.AbstractServer | None = None
    port: int = 0

    async def start(self) -> HostileSwitch:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in self.handlers:
            task.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)

    def valid(self, request: dict, stan: str | None = None, mti: str | None = None) -> bytes:
        doc = protocol.response(request, "00", **{"37": "000000000042"})
        if request["t"] == "0200":
            doc.update({"38": "123456", "54": protocol.balance_field(125_000)})
        if stan is not None:
            doc["11"] = stan
        if mti is not None:
            doc["t"] = mti
        if self.sign is not None and request["t"] != "0800":
            return encode_with_mac(doc, self.sign)
        return encode(doc)

    def plan_for(self, request: dict) -> Answer:
        return self.plan[len(self.received) - 1] if len(self.received) <= len(self.plan) else ("valid",)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            while True:
                body = await read_frame(reader, 10_000)
                tpdu, raw = split_frame(body)
                request = decode(raw)
                self.received.append(request)
                kind, *args = self.plan_for(request)
                reply = tpdu.reply()
                out = self._answer(kind, args, request, reply)
                if out is None:
                    writer.close()
                    return
                writer.write(out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def _answer(self, kind: str, args: list, request: dict, reply: Tpdu) -> bytes | None:
        if kind == "close":
            return None
        if kind == "silent":
            return b""
        if kind == "raw":
            return args[0]
        if kind == "frame":
            return struct.pack(">H", len(args[0])) + args[0]
        good = self.valid(request)
        if kind == "valid":
            return frame(reply, good)
        if kind == "twice":
            return frame(reply, good) * 2
        if kind == "other_stan":
            return frame(reply, self.valid(request, stan=f"{(int(request['11']) + 500) % 1_000_000:06d}"))
        if kind == "other_mti":  # the right class and STAN, the wrong origin digit: 0211, 0411, 0811
            return frame(reply, self.valid(request, mti=response_mti(request["t"])[:3] + "1"))
        framed = frame(reply, good)
        if kind == "mutated":  # one byte of the length, the TPDU or the message changed
            return mutate(framed, *args)
        if kind == "length":
            (length,) = struct.unpack(">H", framed[:2])
            return struct.pack(">H", max(0, length + args[0])) + framed[2:]
        raise AssertionError(kind)


# -- (a) the client --------------------------------------------------------------------------------

ROUND_TIMEOUT_MS = 80  # each request of the hostile round
FRAME_TIMEOUT_MS = 150  # a started frame must be whole within this, else the link is lost
CHECK_TIMEOUT_MS = 1_000  # the honest check afterwards


def echo(stan: str) -> bytes:
    return encode(protocol.network_request(TERMINAL, ECHO, stan, AT))


async def ask(client: SwitchClient, stan: str, timeout_ms: int) -> Received | Exception:
    """One echo; only an answer, TimeoutError or SwitchUnavailable may come out."""
    try:
        received = await client.request(echo(stan), "0800", stan, timeout_ms)
    except (TimeoutError, SwitchUnavailable) as exc:
        return exc
    assert match_key(received.message["t"], received.message["11"]) == match_key("0810", stan), received.message
    assert decode(received.raw) == received.message
    return received


def assert_reader_healthy(client: SwitchClient) -> None:
    """The reader task either runs or ended on a lost connection, never on an unexpected error."""
    task = client._reader_task
    if task is not None and task.done() and not task.cancelled():
        assert task.exception() is None, repr(task.exception())


async def client_scenario(plan: list[Answer], together: bool) -> None:
    switch = await HostileSwitch(plan).start()
    config = ClientConfig(connect_timeout_ms=1_000, max_in_flight=4, frame_timeout_ms=FRAME_TIMEOUT_MS)
    client = SwitchClient("127.0.0.1", switch.port, config)
    try:
        await client.connect()
        stans = [f"{n:06d}" for n in range(1, len(plan) + 1)]
        if together:
            calls = [ask(client, stan, ROUND_TIMEOUT_MS) for stan in stans]
            results = await asyncio.gather(*calls)
        else:
            results = [await ask(client, stan, ROUND_TIMEOUT_MS) for stan in stans]
        assert len(results) == len(plan)
        assert client.in_flight == 0  # no waiter left behind
        assert_reader_healthy(client)

        # The switch is honest again: the client answers, or says the connection is lost. A
        # stream put out of step may swallow an answer or two, never all of them.
        for attempt in range(3):
            result = await ask(client, f"{900_000 + attempt:06d}", CHECK_TIMEOUT_MS)
            if isinstance(result, Received):
                break
            if isinstance(result, SwitchUnavailable):
                assert not client.connected
                break
        else:
            pytest.fail(f"the client neither answers nor reports the connection lost: {result!r}")
        assert client.in_flight == 0
        assert_reader_healthy(client)
    finally:
        await client.close()
        await switch.stop()
    assert client.in_flight == 0 and not client.connected


@QUICK
@given(st.lists(answers(), min_size=1, max_size=4), st.booleans())
def test_the_client_survives_any_answer(plan: list[Answer], together: bool) -> None:
    asyncio.run(asyncio.wait_for(client_scenario(plan, together), 10))


def test_a_frame_that_never_completes_loses_the_connection_quickly() -> None:
    """A length that announces more bytes than ever come (the stream is out of step): the
    client gives up the connection after its frame timeout instead of stalling for minutes."""

    async def scenario() -> tuple[Received | Exception, float, bool]:
        switch = await HostileSwitch([("raw", b"\x00\x50\x60")]).start()
        client = SwitchClient("127.0.0.1", switch.port, ClientConfig(frame_timeout_ms=FRAME_TIMEOUT_MS))
        try:
            await client.connect()
            loop = asyncio.get_running_loop()
            started = loop.time()
            first = await ask(client, "000001", 3_000)
            return first, loop.time() - started, client.connected
        finally:
            await client.close()
            await switch.stop()

    first, elapsed_s, connected = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert isinstance(first, SwitchUnavailable) and not connected, first
    assert elapsed_s < 1.5


# -- (b) the core ----------------------------------------------------------------------------------

TPK, TAK = bytes(range(16)), bytes(range(16, 32))


def keyed_state() -> TerminalState:
    """A terminal that signed on before: its working keys stored wrapped under its TMK."""
    wrapped = WorkingKeys(keylib.wrap(TMK, TPK), keylib.wrap(TMK, TAK), keylib.kcv(TPK), keylib.kcv(TAK))
    return TerminalState(tid=TID, keys=wrapped)


def new_core(timeout_ms: int = 100, repeats: int = 1) -> EdcCore:
    state = keyed_state()
    core = EdcCore.for_demo_terminal(TID, state, MemoryStore(state), FixedClock(), CoreConfig.uniform(timeout_ms, repeats))
    assert core.has_keys
    return core


def only(commands: list[Command], kind: type) -> list:
    return [c for c in commands if isinstance(c, kind)]


def start_purchase(core: EdcCore) -> Send:
    core.insert_card(PAN)
    core.choose_purchase()
    core.enter_amount(str(AMOUNT_IDR))
    [send] = only(core.enter_pin(PIN), Send)
    assert send.message["t"] == "0200" and core.state is State.PROCESSING
    return send


def valid_answer(send: Send, rc: str = "00", **fields: str) -> bytes:
    extra = {"37": "000000000042", "38": "123456", "54": protocol.balance_field(125_000)} if rc == "00" else {"37": "000000000042"}
    return encode_with_mac(protocol.response(send.message, rc, **{**extra, **fields}), TAK)


def deliver(core: EdcCore, send: Send, raw: bytes) -> list[Command]:
    """What the driver does with bytes received for `send`: an undecodable answer is dropped by
    the client (no answer, so a timeout); a decoded one goes to the core; an answer the core
    ignores is no answer either."""
    try:
        message = decode(raw)
    except MessageError:
        return core.on_timeout(send.stan)
    commands = core.on_response(message, raw)
    return commands if commands else core.on_timeout(send.stan)


def finish_reversals(core: EdcCore, commands: list[Command], reversal_answers: list[str]) -> Outcome:
    """Drive the rest of the flow: reversal attempts answered 'ok' (00), 'busy' (91), or not."""
    attempt = 0
    while not only(commands, Finished):
        [send] = only(commands, Send)
        assert send.message["t"] in ("0400", "0401"), send.message
        choice = reversal_answers[attempt] if attempt < len(reversal_answers) else "none"
        attempt += 1
        if choice == "none":
            commands = core.on_timeout(send.stan)
        else:
            commands = deliver(core, send, valid_answer(send, "00" if choice == "ok" else "91"))
        assert attempt < 10, "the reversal never ends"
    [finished] = only(commands, Finished)
    return finished.outcome


def assert_reversed_not_approved(core: EdcCore, purchase: Send, outcome: Outcome) -> None:
    assert outcome.flow.value == "bayar" and not outcome.approved, outcome
    assert outcome.rc == "91" and outcome.reversal in ("reversed", "pending"), outcome
    assert core.stored.last_purchase is None and core.stored.in_flight_purchase is None
    assert not [e for e in core.stored.journal if e.kind == "purchase"]
    kept = [p for p in core.stored.pending_reversals if p.original_data == protocol.original_data(purchase.message)]
    assert len(kept) == (1 if outcome.reversal == "pending" else 0), core.stored.pending_reversals
    assert core.state is State.RESULT


REVERSAL_ANSWERS = st.lists(st.sampled_from(["ok", "busy", "none"]), max_size=3)


@PURE
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=3), st.sampled_from(["00", "51"]), REVERSAL_ANSWERS)
def test_a_mutated_purchase_answer_is_never_approved(mutations: list, rc: str, reversal_answers: list[str]) -> None:
    core = new_core()
    purchase = start_purchase(core)
    good = valid_answer(purchase, rc)
    raw = good
    for position, value in mutations:
        raw = mutate(raw, position, value)
    commands = deliver(core, purchase, raw)
    if raw == good:  # the mutations changed nothing: this is the switch's own answer
        [finished] = only(commands, Finished)
        assert finished.outcome.rc == rc and finished.outcome.reversal is None
        return
    assert_reversed_not_approved(core, purchase, finish_reversals(core, commands, reversal_answers))


@PURE
@given(st.binary(max_size=200), REVERSAL_ANSWERS)
def test_garbage_for_a_purchase_answer_is_never_approved(raw: bytes, reversal_answers: list[str]) -> None:
    core = new_core()
    purchase = start_purchase(core)
    commands = deliver(core, purchase, raw)
    assert_reversed_not_approved(core, purchase, finish_reversals(core, commands, reversal_answers))


PRINTABLE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
ANSWER_FIELDS = st.dictionaries(st.sampled_from(["t", "11", "37", "38", "39", "54", "41", "60"]), PRINTABLE, max_size=5)


@PURE
@given(ANSWER_FIELDS, st.booleans(), REVERSAL_ANSWERS)
def test_any_answer_under_the_right_mac_never_crashes_the_core(changes: dict, signed: bool, reversal_answers: list[str]) -> None:
    """A switch holding the keys may still send nonsense: the core takes it without raising;
    only an answer with our MTI and STAN, a right MAC and RC 00 approves the purchase."""
    core = new_core()
    purchase = start_purchase(core)
    doc = {**protocol.response(purchase.message, "00", **{"37": "000000000042", "38": "123456"}), **changes}
    try:
        raw = encode_with_mac(doc, TAK if signed else bytes(16))
    except MessageError:
        return  # not even encodable
    message = decode(raw)
    commands = deliver(core, purchase, raw)
    ours = message.get("t") == "0210" and message.get("11") == purchase.stan and signed
    if ours:
        [finished] = only(commands, Finished)
        assert finished.outcome.rc == message.get("39") and finished.outcome.reversal is None
        assert finished.outcome.approved == (message.get("39") == "00")
        assert (core.stored.last_purchase is not None) == finished.outcome.approved
        return
    assert_reversed_not_approved(core, purchase, finish_reversals(core, commands, reversal_answers))


@PURE
@given(st.sampled_from(["0211", "0212", "0200", "0230", "0110", "0410", "0810", "021", "02100"]))
def test_our_stan_under_another_mti_is_no_answer(mti: str) -> None:
    """The client matches answers by MTI class and STAN, so 0211 reaches the core for 0200: the
    core must take it as no answer (and reverse), never leave the purchase hanging."""
    core = new_core()
    purchase = start_purchase(core)
    doc = {**protocol.response(purchase.message, "00", **{"37": "000000000042", "38": "123456"}), "t": mti}
    try:
        raw = encode_with_mac(doc, TAK)
    except MessageError:
        return
    commands = core.on_response(decode(raw), raw)
    assert commands, "an answer with our STAN was silently ignored: the purchase would hang"
    assert_reversed_not_approved(core, purchase, finish_reversals(core, commands, ["ok"]))


@PURE
@given(ANSWER_FIELDS)
def test_answers_while_nothing_is_in_flight_are_ignored(changes: dict) -> None:
    core = new_core()
    doc = {"t": "0210", "11": "000001", "39": "00", **changes}
    try:
        raw = encode_with_mac(doc, TAK)
    except MessageError:
        return
    assert core.on_response(decode(raw), raw) == []
    assert core.state is State.IDLE and core.stored.last_purchase is None


# -- (c) both, as the headless driver runs them ------------------------------------------------------

DRIVE = settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
PURCHASE_ANSWERS = st.one_of(
    st.sampled_from([("silent",), ("close",), ("other_stan",), ("other_mti",)]),
    st.tuples(st.just("raw"), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("frame"), st.binary(max_size=200)),
    st.tuples(st.just("mutated"), st.integers(0, 10_000), st.integers(0, 255)),
    st.tuples(st.just("length"), st.sampled_from([-3, -1, 1, 3])),
)
REVERSAL_PLAN = st.lists(st.sampled_from([("valid",), ("silent",), ("mutated", 40, 0x7E)]), max_size=2)


async def driven(purchase_answer: Answer, reversal_plan: list[Answer]) -> tuple[EdcCore, Send, Outcome, list[dict]]:
    switch = await HostileSwitch([purchase_answer, *reversal_plan], sign=TAK).start()
    client = SwitchClient("127.0.0.1", switch.port, ClientConfig(connect_timeout_ms=1_000, frame_timeout_ms=FRAME_TIMEOUT_MS))
    core = new_core(timeout_ms=ROUND_TIMEOUT_MS, repeats=1)
    try:
        await client.connect()
        commands = core.insert_card(PAN) + core.choose_purchase() + core.enter_amount(str(AMOUNT_IDR)) + core.enter_pin(PIN)
        [purchase] = only(commands, Send)
        outcome = await headless.drive(core, client, commands)
    finally:
        await client.close()
        await switch.stop()
    return core, purchase, outcome, switch.received


@DRIVE
@given(PURCHASE_ANSWERS, REVERSAL_PLAN)
def test_a_purchase_without_a_valid_answer_is_reversed_end_to_end(purchase_answer: Answer, reversal_plan: list[Answer]) -> None:
    core, purchase, outcome, received = asyncio.run(asyncio.wait_for(driven(purchase_answer, reversal_plan), 10))
    kind, *args = purchase_answer
    if kind == "mutated":
        good = frame(Tpdu(0, 1), HostileSwitch([], sign=TAK).valid(purchase.message))
        mutated = mutate(good, *args)
        if mutated[:3] == good[:3] and mutated[7:] == good[7:]:
            return  # nothing changed, or only the TPDU's addresses: the switch's own, valid answer
    assert_reversed_not_approved(core, purchase, outcome)
    assert [m["t"] for m in received][:1] == ["0200"]
    if outcome.reversal == "reversed":
        assert any(m["t"] in ("0400", "0401") for m in received)
