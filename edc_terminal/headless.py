"""The headless EDC: drives the core over a SwitchClient for one command and reports a dict.

`drive` and `perform` are the driver loop the Textual UI reuses: they carry each `Send` of the
core to the switch and feed the answer (or the timeout) back into the core. Given an
`Inspector`, each exchange (request and answer bytes, round trip) is recorded there.

`run_job` drives an upload or settlement job (`edc_terminal.batchjob.BatchJob`) with up to
`window` messages in flight; the client must allow as many (`ClientConfig.max_in_flight`).

With a link that is not there at all (`--link offline`), `cek` and `bayar` run in the core's
offline mode without connecting: Cek is refused, Bayar takes the holder's NIK (`--nik`) and is
decided by the terminal from the card list a `signon` stored earlier.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from edc_terminal.batchjob import DEFAULT_WINDOW, WINDOW_MAX, BatchJob, JobResult, JobSend
from edc_terminal.client import ClientConfig, Received, SwitchClient, SwitchUnavailable
from edc_terminal.core import (
    NO_ANSWER_RC,
    Command,
    CoreConfig,
    EdcCore,
    Finished,
    Outcome,
    Reject,
    Send,
    State,
    amount_error,
    pan_error,
    pin_error,
)
from edc_terminal.offline import nik_error
from edc_terminal.inspector import (
    STATUS_ANSWERED,
    STATUS_LOST,
    STATUS_TIMEOUT,
    Inspector,
    trace_writer,
)
from edc_terminal.linking import PROXY_HOST, core_config, start_proxy
from edc_terminal.store import StoreError, TerminalStore
from linksim import LinkProfile
from shared.clock import Clock, SystemClock

COMMANDS = ("signon", "echo", "cek", "bayar", "reversal", "settle", "upload")
CARD_COMMANDS = ("cek", "bayar")
JOB_COMMANDS = ("settle", "upload")
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
    nik: str | None = None  # offline Bayar: the holder's NIK (KTP/KK) instead of the PIN


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


async def _exchange(client: SwitchClient, send: JobSend, inspector: Inspector | None) -> Received | None:
    """One request of a job: its answer, or None when none came in time (or the link failed)."""
    sent_at = inspector.now() if inspector is not None else None
    started_s = inspector.timer() if inspector is not None else 0.0
    try:
        received = await client.request(send.data, send.message["t"], send.stan, send.timeout_ms)
    except (TimeoutError, SwitchUnavailable) as exc:
        if inspector is not None:
            inspector.record(send.data, None, STATUS_TIMEOUT if isinstance(exc, TimeoutError) else STATUS_LOST, at=sent_at)
        return None
    if inspector is not None:
        rtt_ms = (inspector.timer() - started_s) * 1000
        inspector.record(send.data, received.raw, STATUS_ANSWERED, rtt_ms=rtt_ms, at=sent_at)
    return received


async def run_job(job: BatchJob, client: SwitchClient, window: int = DEFAULT_WINDOW, inspector: Inspector | None = None) -> JobResult:
    """Run an upload or settlement job to its end with up to `window` messages in flight, each
    through `client.request` with its own timeout. The core shows the job's result (RESULT)."""
    window = max(1, min(window, WINDOW_MAX))
    flying: dict[asyncio.Task, JobSend] = {}
    ended: asyncio.Queue[asyncio.Task] = asyncio.Queue()  # holds at most `window` tasks
    try:
        while True:
            for send in job.poll(window - len(flying)):
                task = asyncio.create_task(_exchange(client, send, inspector))
                task.add_done_callback(ended.put_nowait)
                flying[task] = send
            if not flying:
                break
            task = await ended.get()
            while True:  # every exchange that ended, before the window is filled again
                _hand_over(job, flying.pop(task), task.result())
                if ended.empty():
                    break
                task = ended.get_nowait()
    finally:
        for task in flying:
            task.cancel()
        if flying:
            await asyncio.gather(*flying, return_exceptions=True)
    if job.result is None:
        raise RuntimeError(f"the job stopped in phase {job.phase} with nothing to send")
    return job.result


def _hand_over(job: BatchJob, send: JobSend, received: Received | None) -> None:
    if received is None:
        job.on_timeout(send)
    else:
        job.on_response(received.message, received.raw)


def _first(commands: list[Command], kind: type) -> Any:
    return next((c for c in commands if isinstance(c, kind)), None)


def _accepted(commands: list[Command]) -> list[Command]:
    if rejected := _first(commands, Reject):
        raise InputError(rejected.reason)
    return commands


def check_inputs(request: Request, offline: bool = False) -> None:
    """Refuse a command whose inputs are missing or invalid, before any connection. Offline,
    Bayar needs the holder's NIK instead of the PIN."""
    if request.command not in COMMANDS:
        raise InputError(f"Perintah tidak dikenal {request.command!r}: pilih salah satu dari {', '.join(COMMANDS)}")
    if request.nik is not None and request.command != "bayar":
        raise InputError("--nik hanya untuk bayar (transaksi offline)")
    if request.command not in CARD_COMMANDS or (offline and request.command == "cek"):
        return  # offline, the core itself refuses Cek, with its reason
    if not request.pan:
        raise InputError("Nomor kartu wajib diisi (--card)")
    if offline and not request.nik:
        raise InputError("NIK pemegang kartu wajib diisi (--nik) untuk transaksi offline")
    if not offline and not request.pin:
        raise InputError("PIN wajib diisi (--pin)")
    error = pan_error(request.pan) or (nik_error(request.nik or "") if offline else pin_error(request.pin or ""))
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
    """Datang (card), Cek or Bayar (amount), PIN (offline: the NIK): the commands that start
    the card flow (offline, they already hold its end)."""
    assert request.pan is not None
    _accepted(core.insert_card(request.pan))
    if request.command == "cek":
        _accepted(core.choose_inquiry())
    else:
        _accepted(core.choose_purchase())
        _accepted(core.enter_amount(str(request.amount_idr)))
    if core.state is State.ID:
        if not request.nik:
            raise InputError("Terminal offline: NIK pemegang kartu wajib diisi (--nik)")
        return _accepted(core.enter_nik(request.nik))
    if request.pin is None:
        raise InputError("PIN wajib diisi (--pin)")
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


def _head(command: str, core: EdcCore, outcome: Outcome) -> dict[str, Any]:
    """What every command's JSON starts with: the terminal and how the flow ended."""
    return {
        "command": command,
        "tid": core.terminal.tid,
        "merchant_id": core.terminal.mid,
        "flow": str(outcome.flow),
        "rc": outcome.rc,
        "rc_text": outcome.rc_text,
        "approved": outcome.approved,
        "message": outcome.message,
    }


def result_dict(command: str, core: EdcCore, outcome: Outcome) -> dict[str, Any]:
    return {
        **_head(command, core, outcome),
        "stan": outcome.stan,
        "rrn": outcome.rrn,
        "approval_code": outcome.approval_code,
        "amount": outcome.amount,
        "balance": outcome.balance,
        "card": outcome.pan_masked,
        "reversal": outcome.reversal,
        "offline": outcome.offline,
        "warning": outcome.warning,
        "pending_reversals": core.pending_reversals,
        "receipt": outcome.receipt,
    }


def job_result_dict(command: str, core: EdcCore, outcome: Outcome, result: JobResult) -> dict[str, Any]:
    """The JSON of `settle` and `upload`: batches settled, RC per step, counts, exceptions."""
    summary = core.batch_summary()
    data = result.to_dict()
    return {
        **_head(command, core, outcome),
        "batches_settled": data["batches_settled"],
        "steps": data["steps"],
        "counts": {
            "reversals_sent": result.reversals_sent,
            "reversals_left": result.reversals_left,
            "advices_sent": result.advices_sent,
            "advices_approved": result.advices_approved,
            "advices_left": result.advices_left,
            "details_sent": result.details_sent,
        },
        "uploads_retried": result.uploads_retried,
        "exceptions": data["exceptions"],
        "open_batch": summary.open_batch,
        "pending_advices": summary.pending_advices,
        "pending_reversals": core.pending_reversals,
        "receipt": None,
    }


async def job_session(
    core: EdcCore, client: SwitchClient, command: str, window: int, inspector: Inspector | None = None
) -> tuple[Outcome, JobResult | None]:
    """Sign on when needed, then run the upload or settlement job. (outcome, job result); the
    result is None when the sign-on failed."""
    if not core.has_keys:
        signed_on = await complete(core, client, core.sign_on(), inspector)
        if not signed_on.approved:
            return signed_on, None
    job = core.start_settlement() if command == "settle" else core.start_upload()
    if isinstance(job, Reject):
        raise InputError(job.reason)
    result = await run_job(job, client, window, inspector)
    outcome = core.outcome
    assert outcome is not None
    core.finish()
    if not core.has_keys:
        await recover_keys(core, client, inspector)
    return outcome, result


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
    nik: str | None = None,
    window: int = DEFAULT_WINDOW,
) -> dict[str, Any]:
    """Run one command (signon, echo, cek, bayar, reversal, settle, upload) on terminal `tid`.

    `signon` also fetches the offline card list. `settle` and `upload` run a job with up to
    `window` messages in flight. With a link profile that has no link at all, `cek` and `bayar`
    run offline without connecting (Bayar with `nik`).

    Raises InputError for bad inputs or an unknown terminal (nothing is sent) and
    SwitchUnavailable when the switch cannot be reached. Answers, declines and timeouts come
    back as the dict (rc 91 when the switch did not answer). Each exchange is recorded in
    `inspector` and, with `trace`, written there (masked) as it happens."""
    offline = link is not None and not link.available and command in CARD_COMMANDS
    request = Request(command, pan.strip() if pan else pan, pin, amount_idr, nik.strip() if nik else nik)
    check_inputs(request, offline)
    # Every sign-on loads the offline card list; the link's own delays lengthen each timeout.
    config = core_config(link, CoreConfig.uniform(timeout_ms, reversal_repeats, card_list=True, job_window=window))
    clock = clock or SystemClock()
    core = open_core(tid, data_dir, clock, config)
    try:
        if offline:
            return await _offline_run(core, request, link)
        return await _online_run(core, request, switch_host, switch_port, connect_timeout_ms, clock, trace, inspector, link, link_seed)
    finally:
        core.close()


async def _offline_run(core: EdcCore, request: Request, link: LinkProfile | None) -> dict[str, Any]:
    """Cek or Bayar with no link at all: the core decides (Cek refused, Bayar by the card list)."""
    core.set_link_state(False)
    outcome = await complete(core, None, card_steps(core, request))  # type: ignore[arg-type]  # nothing is sent
    result = result_dict(request.command, core, outcome)
    return result | {"link": link.label} if link is not None else result


async def _online_run(
    core: EdcCore,
    request: Request,
    switch_host: str,
    switch_port: int,
    connect_timeout_ms: int,
    clock: Clock,
    trace: TextIO | None,
    inspector: Inspector | None,
    link: LinkProfile | None,
    link_seed: int,
) -> dict[str, Any]:
    command, tid = request.command, core.terminal.tid
    if command == "reversal" and core.stored.last_purchase is None:
        raise InputError(f"Tidak ada transaksi pembelian terminal {tid} yang dapat dibatalkan")
    if trace is not None and inspector is None:
        inspector = Inspector(clock)
    unsubscribe = inspector.subscribe(trace_writer(trace)) if inspector is not None and trace is not None else None
    proxy = await start_proxy(link, link_seed, switch_host, switch_port) if link is not None else None
    host, port = (PROXY_HOST, proxy.port) if proxy is not None else (switch_host, switch_port)
    window = core.config.job_window
    in_flight = ClientConfig().max_in_flight
    if command in JOB_COMMANDS:
        in_flight = max(in_flight, window)  # the job keeps up to `window` requests in flight
    client = SwitchClient(host, port, ClientConfig(connect_timeout_ms=connect_timeout_ms, max_in_flight=in_flight))
    job: JobResult | None = None
    try:
        async with client:
            if command in JOB_COMMANDS:
                outcome, job = await job_session(core, client, command, window, inspector)
            else:
                outcome = await session(core, client, request, inspector)
    finally:
        if unsubscribe:
            unsubscribe()
        if proxy is not None:
            await proxy.stop()
    result = job_result_dict(command, core, outcome, job) if job is not None else result_dict(command, core, outcome)
    return result | {"link": proxy.state} if proxy is not None else result
