"""`sembako ewarong ...`: the e-Warong cashier screen, its daily report and its price board.

Without a subcommand the cashier screen starts (`ewarong_pos.app.run_app`). Exit codes:
0 done; 2 bad input (date, e-Warong, terminal, switch address); 3 the database cannot be used.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError

from edc_terminal.cli import LinkOpt, LinkSeedOpt
from edc_terminal.linking import link_profile
from ewarong_pos.demo import demo_ewarong, demo_terminal_for
from ewarong_pos.report import price_board, report_csv, report_table
from ewarong_pos.settings import DEFAULT_EWARONG, DEFAULT_SWITCH, ShopOptions
from ewarong_pos.store import ShopError, ShopStore
from shared.banks import demo_terminal

EXIT_INPUT = 2
EXIT_DATABASE = 3

_EWARONG = re.compile(r"[A-Z0-9]{15}")
_TERMINAL = re.compile(r"[A-Z0-9]{8}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
FORMATS = ("csv", "table")

__all__ = ["ShopOptions", "ewarong_app"]

ewarong_app = typer.Typer(
    help="Kasir e-Warong: keranjang sembako, HET, stok; laporan harian dan papan harga.",
    invoke_without_command=True,
    pretty_exceptions_enable=False,
)


class InputError(ValueError):
    """Input the operator must correct; the message is shown as is."""


EwarongOpt = Annotated[str, typer.Option("--ewarong", help="ID e-Warong (15 karakter), mis. EWBNI0000000001")]
SubEwarongOpt = Annotated[str | None, typer.Option("--ewarong", help="ID e-Warong; bawaan: dari perintah induk")]
TerminalOpt = Annotated[str | None, typer.Option("--terminal", help="TID EDC; bawaan: terminal demo e-Warong ini")]
SwitchOpt = Annotated[str, typer.Option("--switch", help="Alamat switch HOST:PORT")]
DataDirOpt = Annotated[Path, typer.Option("--data-dir", envvar="SEMBAKO_DATA_DIR", help="Direktori data (ewarong.sqlite3)")]
DatabaseOpt = Annotated[str | None, typer.Option("--database-url", envvar="DATABASE_URL", help="URL PostgreSQL (opsional)")]


def _fail(message: str, code: int = EXIT_INPUT) -> None:
    typer.echo(f"Gagal: {message}", err=True)
    raise typer.Exit(code)


def parse_switch(address: str) -> tuple[str, int]:
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65_536:
        raise InputError(f"Alamat switch harus HOST:PORT, bukan {address!r}")
    return host.strip("[]"), int(port_text)


def parse_day(text: str) -> date:
    """A business day written YYYY-MM-DD."""
    try:
        if not _DATE.fullmatch(text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"Tanggal harus berformat YYYY-MM-DD (mis. 2026-11-03), bukan {text!r}") from None


def check_ewarong_id(ewarong_id: str) -> str:
    if not _EWARONG.fullmatch(ewarong_id):
        raise InputError(f"ID e-Warong harus 15 huruf besar/angka (mis. {DEFAULT_EWARONG}), bukan {ewarong_id!r}")
    return ewarong_id


def terminal_for(ewarong_id: str, terminal_id: str | None) -> str:
    """The given terminal (checked against the e-Warong when it is a demo one) or the demo
    terminal standing in the e-Warong."""
    if terminal_id is None:
        found = demo_terminal_for(ewarong_id)
        if found is None:
            raise InputError(f"e-Warong {ewarong_id} tidak punya terminal demo; sebutkan --terminal")
        return found
    if not _TERMINAL.fullmatch(terminal_id):
        raise InputError(f"TID harus 8 huruf besar/angka (mis. BNI00001), bukan {terminal_id!r}")
    demo = demo_terminal(terminal_id)
    if demo is not None and demo[1] != ewarong_id:
        raise InputError(f"Terminal {terminal_id} milik e-Warong {demo[1]}, bukan {ewarong_id}")
    return terminal_id


@contextmanager
def open_shop(options: ShopOptions, ewarong_id: str) -> Iterator[ShopStore]:
    """The store with `ewarong_id` ready: a demo e-Warong is seeded on first use; any other
    must already be in the books."""
    try:
        store = ShopStore.open(options.settings())
    except (SQLAlchemyError, OSError) as exc:
        _fail(f"basis data e-Warong tidak dapat dibuka ({type(exc).__name__}: {exc})", EXIT_DATABASE)
    try:
        if demo_ewarong(ewarong_id) is not None:
            store.ensure_demo(ewarong_id)
        elif not store.is_known(ewarong_id):
            raise InputError(f"e-Warong {ewarong_id} tidak dikenal")
        yield store
    except ShopError as exc:
        raise InputError(str(exc)) from None
    except SQLAlchemyError as exc:
        _fail(f"basis data e-Warong gagal ({type(exc).__name__})", EXIT_DATABASE)
    finally:
        store.close()


def _options(ctx: typer.Context) -> ShopOptions:
    options = ctx.find_object(ShopOptions)
    assert options is not None, "the ewarong callback sets the options"
    return options


@ewarong_app.callback()
def ewarong_main(
    ctx: typer.Context,
    ewarong: EwarongOpt = DEFAULT_EWARONG,
    terminal: TerminalOpt = None,
    switch: SwitchOpt = DEFAULT_SWITCH,
    data_dir: DataDirOpt = Path("data"),
    database_url: DatabaseOpt = None,
    link: LinkOpt = None,
    link_seed: LinkSeedOpt = 0,
) -> None:
    """Kasir e-Warong (layar Textual) bila tanpa subperintah."""
    try:
        check_ewarong_id(ewarong)
        host, port = parse_switch(switch)
        check_link(link)
        # The terminal matters to the cashier screen only; subcommands ignore it.
        terminal_id = terminal_for(ewarong, terminal) if ctx.invoked_subcommand is None else (terminal or "")
    except InputError as exc:
        _fail(str(exc))
    options = ShopOptions(ewarong, terminal_id, host, port, data_dir, database_url, link, link_seed)
    ctx.obj = options
    if ctx.invoked_subcommand is None:
        _start_screen(options)


def check_link(link: str | None) -> None:
    try:
        link_profile(link)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _start_screen(options: ShopOptions) -> None:
    try:
        with open_shop(options, options.ewarong_id):
            pass  # seeds a demo e-Warong and checks the id before the screen opens
    except InputError as exc:
        _fail(str(exc))
    _load_run_app()(options)


def _load_run_app() -> Callable[[ShopOptions], object]:
    """The cashier screen, imported only when it is started (Textual is heavy)."""
    from ewarong_pos.app import run_app

    return run_app


@ewarong_app.command("report")
def report_command(
    ctx: typer.Context,
    day: Annotated[str | None, typer.Option("--date", help="Hari usaha (WIB), YYYY-MM-DD")] = None,
    ewarong: SubEwarongOpt = None,
    output: Annotated[str, typer.Option("--format", help="csv (bawaan) atau table")] = "csv",
) -> None:
    """Laporan penjualan harian: barang, jumlah, nilai, KPM dilayani, RRN."""
    options = _options(ctx)
    try:
        ewarong_id = check_ewarong_id(ewarong or options.ewarong_id)
        if day is None:
            raise InputError("Sebutkan hari laporan: --date YYYY-MM-DD")
        business_day = parse_day(day)
        if output not in FORMATS:
            raise InputError(f"Format harus csv atau table, bukan {output!r}")
        with open_shop(options, ewarong_id) as store:
            report = store.daily_report(ewarong_id, business_day)
    except InputError as exc:
        _fail(str(exc))
    typer.echo(report_csv(report) if output == "csv" else report_table(report), nl=False)


@ewarong_app.command("harga")
def price_board_command(ctx: typer.Context, ewarong: SubEwarongOpt = None) -> None:
    """Papan harga e-Warong: harga dan HET per satuan, per kelompok pangan."""
    options = _options(ctx)
    try:
        ewarong_id = check_ewarong_id(ewarong or options.ewarong_id)
        with open_shop(options, ewarong_id) as store:
            board = price_board(store.products(ewarong_id), title=f"{store.shop_name(ewarong_id)} - {ewarong_id}")
    except InputError as exc:
        _fail(str(exc))
    typer.echo(board, nl=False)
