"""`sembako switch serve`: the switch as one process, or as N worker processes on one port."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from shared import aio
from shared.config import settings_errors
from switch.settings import SwitchSettings

GIL_SWITCH_INTERVAL_S = 0.0005
WORKERS_MAX = 64
WORKER_INDEX_ENV = "SEMBAKO_SWITCH_WORKER_INDEX"  # set by the parent for each worker it starts

switch_app = typer.Typer(help="The switch: ISO 8583 for terminals, routing to banks, ops API.", no_args_is_help=True)


@switch_app.command("serve")
def serve(
    port: Annotated[int, typer.Option("--port", help="ISO 8583 port")] = 8583,
    ops_port: Annotated[int, typer.Option("--ops-port", help="Operations API port")] = 8000,
    host: str = "127.0.0.1",
    data_dir: Annotated[Path, typer.Option("--data-dir", envvar="SEMBAKO_DATA_DIR")] = Path("data"),
    database_url: Annotated[str | None, typer.Option("--database-url", envvar="DATABASE_URL")] = None,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, max=WORKERS_MAX,
        help="Switch processes on one ISO port and one database (above 1: PostgreSQL only)")] = 1,
) -> None:
    """Serve terminals over ISO 8583 and bank operations staff over HTTP until SIGINT/SIGTERM."""
    from shared.clock import clock_for
    from shared.logs import configure_logging
    from switch.runtime import SwitchRuntime

    if workers > 1 and not (database_url or "").startswith("postgres"):
        raise typer.BadParameter("above 1 needs PostgreSQL (--database-url): SQLite has one writer at a time", param_hint="--workers")
    try:
        settings = SwitchSettings(host=host, iso_port=port, ops_port=ops_port, data_dir=data_dir, database_url=database_url, workers=workers)
    except ValidationError as exc:  # e.g. a number that is not one in SEMBAKO_SWITCH_*
        raise typer.BadParameter(settings_errors(exc)) from None
    if workers > 1 and WORKER_INDEX_ENV not in os.environ:
        from switch.supervisor import supervise_workers

        configure_logging("switch", data_dir)
        raise typer.Exit(supervise_workers(settings, worker_command(port, ops_port, host, data_dir, database_url, workers)))
    # data/logs/switch.log (switch-worker-<i>.log for worker i of several), rotated; see shared.logs
    configure_logging("switch" if workers == 1 else f"switch-worker-{settings.worker_index}", data_dir)
    # The journal writer thread must not hold the event loop off the GIL for the default 5 ms.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    aio.run(_serve(SwitchRuntime(settings, clock_for(settings.clock_file).now)))


def worker_command(port: int, ops_port: int, host: str, data_dir: Path, database_url: str | None, workers: int) -> list[str]:
    """The command line of one worker (its index comes in WORKER_INDEX_ENV)."""
    command = [sys.executable, "-m", "sembako", "switch", "serve", "--port", str(port), "--ops-port", str(ops_port),
               "--host", host, "--data-dir", str(data_dir), "--workers", str(workers)]
    return command + (["--database-url", database_url] if database_url else [])


async def _serve(runtime) -> None:  # noqa: ANN001
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await runtime.start()
    try:
        await stop.wait()
    finally:
        await runtime.stop()
