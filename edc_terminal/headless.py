"""The headless EDC: drives the core over a SwitchClient for one command and reports a dict.

`drive` and `perform` are the driver loop the Textual UI reuses: they carry each `Send` of the
core to the switch and feed the answer (or the timeout) back into the core. Given an
`Inspector`, each exchange (request and answer bytes, round trip) is recorded there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from edc_terminal.client import ClientConfig, SwitchClient, SwitchUnavailable
from edc_terminal.core import (
    NO_ANSWER_RC,
    Command,
    CoreConfig,
    EdcCore,
    Finished,
    Outcome,
    Reject,
    Send,
    amount_error,
    pan_error,
    pin_error,
)
from edc_terminal.inspector import (
    STATUS_ANSWERED,
    STATUS_LOST,
    STATUS_TIMEOUT,
    Inspector,
    trace_writer,
)
from edc_terminal.linking import PROXY_HOST, start_proxy
from edc_terminal.store import StoreError, TerminalStore
from linksim import LinkProfile
from shared.clock import Clock, SystemClock

COMMANDS = ("signon", "echo", "cek", "bayar", "reversal")
DEFAULT_TIMEOUT_MS = 30_000


class InputError(ValueError):
    """The command cannot run with these inputs (message in Bahasa Indonesia)."""


@dataclass(frozen=True, slots=True)
class Request:
    """One headless command and what the cashier and the KPM would key in."""

    command: str
    pan: str | None = None
    pin: str | None = None
    amount_idr: int | None = None


async def perform(core: EdcCore, client: SwitchClient, send: Send, inspector: Inspector | None = None) -> list[Command]:
    """Send one message and hand its answer, or its absence, to the core (and the inspector)."""
    sent_at = inspector.now() if inspector is not None else None
    started_s = inspector.timer() if inspector is not None else 0.0
    try:
        received = await client.request(send.data, send.message["t"], send.stan, send.timeout_ms)
    except (TimeoutError, SwitchUnavailable) as exc:
        if inspector is not None:
            status = STATUS_TIMEOUT if isinstance(exc, TimeoutError) else STATUS_LOST
            inspector.record(send.data, None, status, at=sent_at)
        return core.on_timeout(send.stan)
    if inspector is not None:
        rtt_ms = (inspector.timer() - started_s) * 1000
        inspector.record(send.data, received.raw, STATUS_ANSWERED, rtt_ms=rtt_ms, at=sent_at)
    return core.on_response(received.message, received.raw)


async def drive(core: EdcCore, client: SwitchClient, commands: list[Command], inspector: Inspector | None = None) -> Outcome:
    """Run a flow started by `commands` to its end; returns the outcome (core is in RESULT)."""
    while True:
        if finished := _first(commands, Finished):
            return finished.outcome
        if rejected := _first(commands, Reject):
            raise InputError(rejected.reason)
        send = _first(commands, Send)
        if send is None:
            raise RuntimeError(f"the flow stopped without a message to send: {commands}")
        commands = await perform(core, client, send, inspector)


async def complete(core: EdcCore, client: SwitchClient, commands: list[Command], inspector: Inspector | None = None) -> Outcome:
    """`drive`, then acknowledge the result so the core is IDLE again."""
    outcome = await drive(core, client, commands, inspector)
    core.finish()
    return outcome


def _first(commands: list[Command], kind: type) -> Any:
    return next((c for c in commands if isinstance(c, kind)), None)


def _accepted(commands: list[Command]) -> list[Command]:
    if rejected := _first(commands, Reject):
        raise InputError(rejected.reason)
    return commands


def check_inputs(request: Request) -> None:
    """Refuse a command whose inputs are missing or invalid, before any connection."""
    if request.command not in COMMANDS:
        raise InputError(f"Perintah tidak dikenal {request.command!r}: pilih salah satu dari {', '.join(COMMANDS)}")
    if request.command not in ("cek", "bayar"):
        return
    if not request.pan:
        raise InputError("Nomor kartu wajib diisi (--card)")
    if not request.pin:
        raise InputError("PIN wajib diisi (--pin)")
    error = pan_error(request.pan) or pin_error(request.pin)
    if request.command == "bayar" and not error:
        error = "Nominal wajib diisi (--amount)" if request.amount_idr is None else amount_error(request.amount_idr)
    if error:
        raise InputError(error)


def open_core(tid: str, data_dir: Path | str, clock: Clock, config: CoreConfig) -> EdcCore:
    try:
        store = TerminalStore(data_dir, tid)
        return EdcCore.for_demo_terminal(tid, store.load(), store, clock, config)
    except StoreError as exc:
        raise InputError(f"Data terminal tidak dapat dibaca: {exc}") from None
    except ValueError as exc:
        raise InputError(str(exc)) from None


def card_steps(core: EdcCore, request: Request) -> list[Command]:
    """Datang (card), Cek or Bayar (amount), PIN: the commands that start the card flow."""
    assert request.pan is not None and request.pin is not None
    _accepted(core.insert_card(request.pan))
    if request.command == "cek":
        _accepted(core.choose_inquiry())
    else:
        _accepted(core.choose_purchase())
        _accepted(core.enter_amount(str(request.amount_idr)))
    return _accepted(core.enter_pin(request.pin))


async def _main_flow(core: EdcCore, client: SwitchClient, request: Request, inspector: Inspector | None) -> Outcome:
    if request.command == "echo":
        return await complete(core, client, core.echo(), inspector)
    if request.command == "reversal":
        return await complete(core, client, core.reverse_last(), inspector)
    return await complete(core, client, card_steps(core, request), inspector)


async def flush_pending(core: EdcCore, client: SwitchClient, inspector: Inspector | None = None) -> Outcome | None:
    """Send the reversals stored from earlier connections, if any."""
    if not core.pending_reversals or not core.has_keys:
        return None
    return await complete(core, client, core.send_pending_reversals(), inspector)


async def session(core: EdcCore, client: SwitchClient, request: Request, inspector: Inspector | None = None) -> Outcome:
    """Sign on when needed, send stored reversals, run the command. The command's outcome."""
    command = request.command
    if command == "signon" or not core.has_keys:
        signed_on = await complete(core, client, core.sign_on(), inspector)
        if not signed_on.approved:
            return signed_on
        if command == "signon":
            await flush_pending(core, client, inspector)
            return signed_on
    if command != "reversal":
        await flush_pending(core, client, inspector)
    outcome = await _main_flow(core, client, request, inspector)
    if not core.has_keys:
        await recover_keys(core, client, inspector)
    elif command == "reversal" and outcome.rc != NO_ANSWER_RC:
        await flush_pending(core, client, inspector)
    return outcome


async def recover_keys(core: EdcCore, client: SwitchClient, inspector: Inspector | None = None) -> bool:
    """An answer failed its MAC, so the core dropped its working keys: sign on and exchange keys
    again, then send the reversals kept meanwhile, without a person. True when keys are back."""
    signed_on = await complete(core, client, core.sign_on(), inspector)
    if signed_on.approved and core.has_keys:
        await flush_pending(core, client, inspector)
    return core.has_keys


def result_dict(command: str, core: EdcCore, outcome: Outcome) -> dict[str, Any]:
    return {
        "command": command,
        "tid": core.terminal.tid,
        "merchant_id": core.terminal.mid,
        "flow": str(outcome.flow),
        "rc": outcome.rc,
        "rc_text": outcome.rc_text,
        "approved": outcome.approved,
        "message": outcome.message,
        "stan": outcome.stan,
        "rrn": outcome.rrn,
        "approval_code": outcome.approval_code,
        "amount": outcome.amount,
        "balance": outcome.balance,
        "card": outcome.pan_masked,
        "reversal": outcome.reversal,
        "pending_reversals": core.pending_reversals,
        "receipt": outcome.receipt,
    }


async def run(
    command: str,
    tid: str,
    switch_host: str,
    switch_port: int,
    data_dir: Path | str,
    pan: str | None = None,
    pin: str | None = None,
    amount_idr: int | None = None,
    clock: Clock | None = None,
    timeout_ms: int = DEFAULT_TIMEOUT_MS,
    connect_timeout_ms: int = 5_000,
    reversal_repeats: int = 2,
    trace: TextIO | None = None,
    inspector: Inspector | None = None,
    link: LinkProfile | None = None,
    link_seed: int = 0,
) -> dict[str, Any]:
    """Run one command (signon, echo, cek, bayar, reversal) on terminal `tid`.

    Raises InputError for bad inputs or an unknown terminal (nothing is sent) and
    SwitchUnavailable when the switch cannot be reached. Answers, declines and timeouts come
    back as the dict (rc 91 when the switch did not answer). Each exchange is recorded in
    `inspector` and, with `trace`, written there (masked) as it happens."""
    request = Request(command, pan.strip() if pan else pan, pin, amount_idr)
    check_inputs(request)
    config = CoreConfig.uniform(timeout_ms, reversal_repeats)
    clock = clock or SystemClock()
    core = open_core(tid, data_dir, clock, config)
    if command == "reversal" and core.stored.last_purchase is None:
        raise InputError(f"Tidak ada transaksi pembelian terminal {tid} yang dapat dibatalkan")
    if trace is not None and inspector is None:
        inspector = Inspector(clock)
    unsubscribe = inspector.subscribe(trace_writer(trace)) if inspector is not None and trace is not None else None
    proxy = await start_proxy(link, link_seed, switch_host, switch_port) if link is not None else None
    host, port = (PROXY_HOST, proxy.port) if proxy is not None else (switch_host, switch_port)
    client = SwitchClient(host, port, ClientConfig(connect_timeout_ms=connect_timeout_ms))
    try:
        async with client:
            outcome = await session(core, client, request, inspector)
    finally:
        if unsubscribe:
            unsubscribe()
        if proxy is not None:
            await proxy.stop()
    result = result_dict(command, core, outcome)
    return result | {"link": proxy.state} if proxy is not None else result
