"""`sembako edc`: open the EDC emulator (Textual) on a demo terminal."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer

from shared.clock import SystemClock

from edc_terminal.cli import parse_switch
from edc_terminal.headless import DEFAULT_TIMEOUT_MS, InputError


def edc_command(
    terminal: Annotated[str, typer.Option("--terminal", help="TID terminal demo, mis. BNI00001")] = "BNI00001",
    switch: Annotated[str, typer.Option("--switch", help="Alamat switch HOST:PORT")] = "127.0.0.1:8583",
    data_dir: Annotated[Path, typer.Option("--data-dir", envvar="SEMBAKO_DATA_DIR", help="Direktori data")] = Path("data"),
    timeout_ms: Annotated[int, typer.Option("--timeout-ms", min=1, help="Batas waktu jawaban switch")] = DEFAULT_TIMEOUT_MS,
) -> None:
    """Emulator EDC (layar, keypad, slot kartu, printer, inspektur pesan)."""
    from edc_terminal.app import EdcApp, EdcOptions, build_terminal

    warnings.filterwarnings("ignore", message=".*TripleDES.*")
    try:
        host, port = parse_switch(switch)
        options = EdcOptions(terminal, host, port, data_dir, timeout_ms)
        edc = build_terminal(options, SystemClock())
    except InputError as exc:
        typer.echo(f"Gagal: {exc}", err=True)
        raise typer.Exit(2) from None
    EdcApp(edc).run()
