"""`sembako ops`: tokens of the switch's ops API and its audit log, on the switch's database.

- `sembako ops token create --bank bni --role viewer [--expires 30d] [--label TEXT]` prints the
  new token once, on its last line (`--bank switch`: the switch operator, every bank). It
  migrates the switch's database first, as the switch does at start.
- `sembako ops token list` and `sembako ops token revoke ID [--reason TEXT]`.
- `sembako ops audit verify` checks the audit chain, and the anchor file in the data directory
  against it: exit 0 and a one-line summary, or exit 1 naming the first broken record.

Each takes `--data-dir DIR` (the SQLite file `DIR/switch.sqlite3`) or `--database-url URL`
(PostgreSQL, schema SEMBAKO_SWITCH_DB_SCHEMA, default "switch"), like `sembako switch serve`.
What the CLI does is recorded in the audit log as done by "cli".

`ensure_token_file` keeps the switch operator's admin token in `<data-dir>/ops-token` (mode 0600)
for `sembako up` and the tools that call the ops API on the same machine; `ensure_pos_token_files`
keeps a viewer token of each bank in `<data-dir>/pos-token-<bank>` for that bank's e-Warong POS.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError

from shared.clock import SystemClock
from shared.banks import BANK_CODES
from shared.db import Database, sqlite_url
from switch.ops import access, audit
from switch.ops.access import CLI_ACTOR, SWITCH_SCOPE, AccessError, Principal
from switch.tables import ADMIN, VIEWER

TOKEN_FILE_NAME = "ops-token"
POS_TOKEN_FILE_PREFIX = "pos-token-"
TOKEN_FILE_BYTES_MAX = 1_024
_CLOCK = SystemClock()

ops_app = typer.Typer(help="The switch's operations API: tokens and the audit log.", no_args_is_help=True)
token_app = typer.Typer(help="Tokens of the ops API (shown once, stored hashed).", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log of operator and admin actions.", no_args_is_help=True)
ops_app.add_typer(token_app, name="token")
ops_app.add_typer(audit_app, name="audit")

DataDir = Annotated[Path, typer.Option("--data-dir", envvar="SEMBAKO_DATA_DIR", help="Data directory of the switch (SQLite)")]
DatabaseUrl = Annotated[str | None, typer.Option("--database-url", envvar="DATABASE_URL", help="PostgreSQL URL of the switch")]


class OpsCliError(Exception):
    """A plain message for the user; the command exits with status 1."""


# -- the switch's database ----------------------------------------------------------------------------


def _settings(data_dir: Path, database_url: str | None):  # noqa: ANN202
    from switch.settings import SwitchSettings

    return SwitchSettings(data_dir=data_dir, database_url=database_url)


def _where(data_dir: Path, database_url: str | None) -> str:
    return f"PostgreSQL schema {_settings(data_dir, database_url).db_schema}" if database_url else sqlite_url(data_dir, "switch").split("///")[-1]


@contextmanager
def switch_database(data_dir: Path, database_url: str | None, migrate: bool = False) -> Iterator[Database]:
    """The switch's database; `migrate`: brought to the newest schema first (as the switch does,
    with its PAN key), else it must exist already."""
    from switch import migrate as migrations
    from switch.runtime import database_for

    settings = _settings(data_dir, database_url)
    if not migrate and not database_url and not (data_dir / "switch.sqlite3").exists():
        raise OpsCliError(f"no switch database in {data_dir}: start the switch once, or give --data-dir or --database-url")
    db: Database | None = None
    try:
        db = database_for(settings)
        if migrate:
            migrations.upgrade(db, pan_key_hex=settings.pan_key)
        audit.keep_anchor(db, audit.anchor_in(data_dir))
        yield db
    except SQLAlchemyError as exc:
        raise OpsCliError(f"the switch database ({_where(data_dir, database_url)}) cannot be used: {type(exc).__name__}; "
                          "is it migrated? start the switch once") from None
    finally:
        if db is not None:
            db.dispose()


def _run(action: Callable[[], int | None]) -> None:
    try:
        code = action()
    except (OpsCliError, AccessError) as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(1) from None
    raise typer.Exit(code or 0)


# -- tokens -----------------------------------------------------------------------------------------


@token_app.command("create")
def create_command(
    bank: Annotated[str, typer.Option("--bank", help=f"Scope: a bank code (bni, bri, mandiri, btn) or {SWITCH_SCOPE} (every bank)")],
    role: Annotated[str, typer.Option("--role", help="viewer (reads), operator (also acts), admin (also tokens and audit)")],
    expires: Annotated[str | None, typer.Option("--expires", help="Lifetime, e.g. 30d, 12h, 90m (default: never expires)")] = None,
    label: Annotated[str, typer.Option("--label", help="Whose token, or what for")] = "",
    data_dir: DataDir = Path("data"),
    database_url: DatabaseUrl = None,
) -> None:
    """Create a token and print it once, on the last line."""

    def create() -> None:
        scope, chosen_role = access.parse_scope(bank), access.parse_role(role)
        lifetime = access.parse_duration(expires) if expires is not None else None
        with switch_database(data_dir, database_url, migrate=True) as db, db.begin() as conn:
            issued = access.create_token(conn, chosen_role, scope, label, CLI_ACTOR, _CLOCK.now(), lifetime)
        record = issued.record
        until = f"expires {record.expires_at.isoformat(timespec='minutes')} WIB" if record.expires_at else "never expires"
        typer.echo(f"token {record.id}: {record.role} of {record.bank or SWITCH_SCOPE}, {until}; shown this once, keep it safe:")
        typer.echo(issued.token)

    _run(create)


@token_app.command("list")
def list_command(data_dir: DataDir = Path("data"), database_url: DatabaseUrl = None) -> None:
    """Every token, newest first: id, role, scope, state, expiry, label (never the token)."""

    def show() -> None:
        now = _CLOCK.now()
        with switch_database(data_dir, database_url) as db, db.read() as conn:
            records = access.list_tokens(conn)
        if not records:
            typer.echo("no tokens")
        for record in records:
            until = record.expires_at.isoformat(timespec="minutes") if record.expires_at else "never"
            typer.echo(f"{record.id}  {record.role:<8}  {record.bank or SWITCH_SCOPE:<7}  {record.state(now):<7}  "
                       f"expires {until:<16}  {record.label}")

    _run(show)


@token_app.command("revoke")
def revoke_command(
    token_id: Annotated[str, typer.Argument(help="The token's id (12 hex digits, as `list` shows)")],
    reason: Annotated[str, typer.Option("--reason", help="Why; kept in the audit log")] = "revoked with sembako ops token revoke",
    data_dir: DataDir = Path("data"),
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke a token for good: the ops API refuses it (401) from now on."""

    def revoke() -> None:
        with switch_database(data_dir, database_url) as db, db.begin() as conn:
            record = access.revoke_token(conn, token_id.strip().lower(), CLI_ACTOR, reason, _CLOCK.now())
        typer.echo(f"token {record.id} revoked")

    _run(revoke)


# -- audit ------------------------------------------------------------------------------------------


@audit_app.command("verify")
def verify_command(data_dir: DataDir = Path("data"), database_url: DatabaseUrl = None) -> None:
    """Check the audit chain: exit 0 when intact, 1 naming the first broken record."""

    def verify() -> int:
        anchor = audit.anchor_in(data_dir)
        try:
            anchored = anchor.read() if anchor is not None else None  # before the chain: see audit.verify
        except audit.AnchorError as exc:
            raise OpsCliError(str(exc)) from None
        with switch_database(data_dir, database_url) as db, db.read() as conn:
            result = audit.verify(conn, anchored)
        typer.echo(result.summary(), err=not result.ok)
        return 0 if result.ok else 1

    _run(verify)


# -- the switch operator's token file ---------------------------------------------------------------


def token_file(data_dir: Path) -> Path:
    return data_dir / TOKEN_FILE_NAME


def read_token_file(path: Path) -> str | None:
    """The token kept in `path`, None when there is no such file (or it holds no token)."""
    try:
        with path.open("rb") as file:
            text = file.read(TOKEN_FILE_BYTES_MAX).decode("ascii", errors="replace").strip()
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return None
    return text if access.parse_token(text) is not None else None


def write_secret_file(path: Path, text: str) -> None:
    """`text` into `path`, readable by its owner only (0600), replaced atomically."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(descriptor, 0o600)  # whatever the umask
        os.write(descriptor, f"{text}\n".encode())
    finally:
        os.close(descriptor)
    os.replace(temporary, path)


def pos_token_file(data_dir: Path, bank: str) -> Path:
    """Where `sembako up` keeps the token the e-Warong POS of `bank` reports with."""
    return data_dir / f"{POS_TOKEN_FILE_PREFIX}{bank}"


def ensure_token_file(db: Database, data_dir: Path, now: datetime | None = None) -> tuple[Path, bool]:
    """The switch operator's admin token in `<data_dir>/ops-token`: kept when the one there is
    still valid in `db`, else a new one created (audited as "cli") and written there (0600).
    Returns the file and whether a token was created."""
    return _ensure_token(db, token_file(data_dir), ADMIN, None, "the switch operator (sembako up)", now or _CLOCK.now())


def ensure_pos_token_files(db: Database, data_dir: Path, now: datetime | None = None) -> list[tuple[Path, bool]]:
    """A viewer token of each bank in `<data_dir>/pos-token-<bank>`, for its e-Warong's POS to
    report sales refused above HET: scoped to that bank, no operator rights, kept while valid."""
    at = now or _CLOCK.now()
    return [_ensure_token(db, pos_token_file(data_dir, code), VIEWER, code, f"the e-Warong POS of {code} (sembako up)", at)
            for code in BANK_CODES]


def _ensure_token(db: Database, path: Path, role: str, bank: str | None, label: str, at: datetime) -> tuple[Path, bool]:
    kept = read_token_file(path)
    if kept is not None:
        with db.read() as conn:
            principal = access.authenticate(conn, kept, at)
        if isinstance(principal, Principal) and principal.role == role and principal.bank == bank:
            return path, False
    with db.begin() as conn:
        issued = access.create_token(conn, role, bank, label, CLI_ACTOR, at)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_secret_file(path, issued.token)
    return path, True
