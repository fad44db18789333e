"""`sembako edc-cli ...`: one EDC command per run, headless. All terminal logic is in the core.

Exit codes: 0 approved; 1 answered but not approved, or no answer (rc 91: reversal done or
stored; for settle/upload: something is left for the next attempt); 2 bad input; 3 the switch
cannot be reached.

`settle` sends the pending reversals and the stored offline sales (0220), then closes every
batch not closed yet (0500, with a detail upload after a 95); `upload` sends only the offline
sales. `bayar --nik NIK --link offline` is a sale the terminal approves offline from the card
list a `signon` stored.
"""

from __future__ import annotations

import asyncio
import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from edc_terminal.client import SwitchUnavailable
from edc_terminal.core import parse_amount
from edc_terminal.batchjob import DEFAULT_WINDOW, WINDOW_MAX
from edc_terminal.headless import DEFAULT_TIMEOUT_MS, JOB_COMMANDS, InputError, run
from edc_terminal.linking import link_profile
from shared.clock import ClockFileError, clock_for

EXIT_DECLINED = 1
EXIT_INPUT = 2
EXIT_UNREACHABLE = 3

edc_app = typer.Typer(
    help="EDC terminal tanpa layar (headless): sign-on, echo, cek saldo, bayar (online/offline), pembatalan, upload, settlement.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

CardOpt = Annotated[str | None, typer.Option("--card", help="Nomor kartu KKS (PAN)")]
PinOpt = Annotated[str | None, typer.Option("--pin", help="PIN 6 digit")]
AmountOpt = Annotated[str | None, typer.Option("--amount", help="Nominal pembelian dalam rupiah, mis. 50000")]
NikOpt = Annotated[
    str | None, typer.Option("--nik", help="NIK pemegang kartu (KTP/KK, 16 digit): bayar offline dengan --link offline")
]
WindowOpt = Annotated[
    int, typer.Option("--window", min=1, max=WINDOW_MAX, help="Pesan yang boleh menunggu jawaban bersamaan (upload/settle)")
]
TerminalOpt = Annotated[str, typer.Option("--terminal", help="TID terminal demo, mis. BNI00001")]
SwitchOpt = Annotated[str, typer.Option("--switch", help="Alamat switch HOST:PORT")]
DataDirOpt = Annotated[Path, typer.Option("--data-dir", envvar="SEMBAKO_DATA_DIR", help="Direktori data (status EDC di edc/)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Cetak satu objek JSON")]
TimeoutOpt = Annotated[int, typer.Option("--timeout-ms", min=1, help="Batas waktu menunggu jawaban switch")]
LinkOpt = Annotated[str | None, typer.Option("--link", help="Lewat simulator link: online, vsat atau offline (bawaan: langsung)")]
LinkSeedOpt = Annotated[int, typer.Option("--link-seed", help="Seed simulator link (perilaku yang sama dapat diulang)")]
ClockFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--clock-file", envvar="SEMBAKO_CLOCK_FILE", help="Waktu simulasi dari file jam jaringan skenario (bawaan: jam sistem)"
    ),
]
TraceOpt = Annotated[
    bool, typer.Option("--trace", help="Cetak setiap pesan ISO 8583 ke stderr (PIN block, MAC dan PAN disamarkan)")
]


def parse_switch(address: str) -> tuple[str, int]:
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65_536:
        raise InputError(f"Alamat switch harus HOST:PORT, bukan {address!r}")
    return host.strip("[]"), int(port_text)


def parse_cli_amount(text: str | None) -> int | None:
    if text is None:
        return None
    amount, error = parse_amount(text)
    if error:
        raise InputError(error)
    return amount


def _fail(message: str, code: int, as_json: bool, context: dict[str, Any]) -> None:
    if as_json:
        typer.echo(json.dumps({**context, "error": message}))
    else:
        typer.echo(f"Gagal: {message}", err=True)
    raise typer.Exit(code)


def _report(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(result))
    elif result["command"] in JOB_COMMANDS:
        _report_job(result)
    else:
        typer.echo(result["receipt"] or f"{result['message']} (RC {result['rc']})", nl=not result["receipt"])
        if result["pending_reversals"]:
            typer.echo(f"Pembatalan tertunda: {result['pending_reversals']}", err=True)
    raise typer.Exit(0 if result["approved"] else EXIT_DECLINED)


def _report_job(result: dict[str, Any]) -> None:
    """Settle/upload as text: the outcome, each 0500, the counts and the exceptions."""
    typer.echo(f"{result['message']} (RC {result['rc']})")
    for step in result["steps"]:
        typer.echo(f"  batch {step['batch']:06d} {step['processing']}: RC {step['rc'] or '-'}")
    counts = result["counts"]
    typer.echo(
        f"  offline terkirim {counts['advices_sent']} (disetujui {counts['advices_approved']}, kirim ulang"
        f" {result['uploads_retried']}, tertunda {result['pending_advices']}); detail {counts['details_sent']};"
        f" batch terbuka {result['open_batch']:06d}"
    )
    for item in result["exceptions"]:
        typer.echo(f"  pengecualian: batch {item['batch']:06d} STAN {item['stan']} {item['pan_masked']} RC {item['rc']}")
    if result["pending_reversals"]:
        typer.echo(f"Pembatalan tertunda: {result['pending_reversals']}", err=True)


@dataclass(frozen=True, slots=True)
class CliOptions:
    card: str | None
    pin: str | None
    amount: str | None
    terminal: str
    switch: str
    data_dir: Path
    as_json: bool
    timeout_ms: int
    trace: bool = False
    link: str | None = None
    link_seed: int = 0
    nik: str | None = None
    window: int = DEFAULT_WINDOW
    clock_file: Path | None = None


def execute(command: str, options: CliOptions) -> None:
    warnings.filterwarnings("ignore", message=".*TripleDES.*")
    context = {"command": command, "tid": options.terminal}
    try:
        result = asyncio.run(_run(command, options))
    except InputError as exc:
        _fail(str(exc), EXIT_INPUT, options.as_json, context)
    except SwitchUnavailable as exc:
        _fail(str(exc), EXIT_UNREACHABLE, options.as_json, context)
    except OSError as exc:  # e.g. the data directory cannot be written
        _fail(f"{type(exc).__name__}: {exc}", EXIT_INPUT, options.as_json, context)
    else:
        _report(result, options.as_json)


async def _run(command: str, options: CliOptions) -> dict[str, Any]:
    host, port = parse_switch(options.switch)
    amount_idr = parse_cli_amount(options.amount)
    try:
        link = link_profile(options.link)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    try:
        clock = clock_for(options.clock_file)
    except ClockFileError as exc:
        raise InputError(str(exc)) from None
    return await run(
        command, options.terminal, host, port, options.data_dir,
        pan=options.card, pin=options.pin, amount_idr=amount_idr, timeout_ms=options.timeout_ms,
        trace=sys.stderr if options.trace else None, link=link, link_seed=options.link_seed,
        nik=options.nik, window=options.window, clock=clock,
    )  # fmt: skip


COMMAND_HELP = {
    "signon": "Sign-on lalu tukar kunci kerja (TPK, TAK).",
    "echo": "Tes koneksi ke switch (echo).",
    "cek": "Cek saldo kartu KKS (--card, --pin).",
    "bayar": "Pembelian sembako (--card, --pin, --amount), online; offline (--link offline): --nik, tanpa PIN.",
    "reversal": "Batalkan pembelian terakhir yang disetujui di terminal ini.",
    "upload": "Kirim transaksi offline yang tersimpan (0220) ke switch.",
    "settle": "Settlement: kirim pembatalan dan transaksi offline, lalu tutup setiap batch (0500, upload detail bila 95).",
}


def _register(name: str) -> None:
    def command(
        card: CardOpt = None,
        pin: PinOpt = None,
        amount: AmountOpt = None,
        terminal: TerminalOpt = "BNI00001",
        switch: SwitchOpt = "127.0.0.1:8583",
        data_dir: DataDirOpt = Path("data"),
        as_json: JsonOpt = False,
        timeout_ms: TimeoutOpt = DEFAULT_TIMEOUT_MS,
        trace: TraceOpt = False,
        link: LinkOpt = None,
        link_seed: LinkSeedOpt = 0,
        nik: NikOpt = None,
        window: WindowOpt = DEFAULT_WINDOW,
        clock_file: ClockFileOpt = None,
    ) -> None:
        options = CliOptions(
            card, pin, amount, terminal, switch, data_dir, as_json, timeout_ms, trace, link, link_seed, nik, window, clock_file
        )
        execute(name, options)

    command.__doc__ = COMMAND_HELP[name]
    edc_app.command(name)(command)


for _name in COMMAND_HELP:
    _register(_name)
