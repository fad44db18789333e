"""`sembako edc`: open the EDC emulator (Textual) on a demo terminal."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer

from edc_terminal.cli import LinkOpt, LinkSeedOpt, parse_switch
from edc_terminal.headless import DEFAULT_TIMEOUT_MS, InputError
from edc_terminal.linking import link_profile
from shared.clock import SystemClock


def edc_command(
    terminal: Annotated[str, typer.Option("--terminal", help="TID terminal demo, mis. BNI00001")] = "BNI00001",
    switch: Annotated[str, typer.Option("--switch", help="Alamat switch HOST:PORT")] = "127.0.0.1:8583",
    data_dir: Annotated[Path, typer.Option("--data-dir", envvar="SEMBAKO_DATA_DIR", help="Direktori data")] = Path("data"),
    timeout_ms: Annotated[int, typer.Option("--timeout-ms", min=1, help="Batas waktu jawaban switch")] = DEFAULT_TIMEOUT_MS,
    link: LinkOpt = None,
    link_seed: LinkSeedOpt = 0,
) -> None:
    """Emulator EDC (layar, keypad, slot kartu, printer, inspektur pesan)."""
    from edc_terminal.app import EdcApp, EdcOptions, build_terminal

    warnings.filterwarnings("ignore", message=".*TripleDES.*")
    try:
        host, port = parse_switch(switch)
        options = EdcOptions(terminal, host, port, data_dir, timeout_ms, link=link_profile(link), link_seed=link_seed)
        edc = build_terminal(options, SystemClock())
    except (InputError, ValueError) as exc:
        typer.echo(f"Gagal: {exc}", err=True)
        raise typer.Exit(2) from None
    EdcApp(edc, options=options).run()
