"""`sembako switch serve`: the switch as one process."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from shared import aio
from switch.settings import SwitchSettings

GIL_SWITCH_INTERVAL_S = 0.0005

switch_app = typer.Typer(help="The switch: ISO 8583 for terminals, routing to banks, ops API.", no_args_is_help=True)


@switch_app.command("serve")
def serve(
    port: Annotated[int, typer.Option("--port", help="ISO 8583 port")] = 8583,
    ops_port: Annotated[int, typer.Option("--ops-port", help="Operations API port")] = 8000,
    host: str = "127.0.0.1",
    data_dir: Annotated[Path, typer.Option("--data-dir", envvar="SEMBAKO_DATA_DIR")] = Path("data"),
    database_url: Annotated[str | None, typer.Option("--database-url", envvar="DATABASE_URL")] = None,
) -> None:
    """Serve terminals over ISO 8583 and bank operations staff over HTTP until SIGINT/SIGTERM."""
    from shared.clock import clock_for
    from shared.logs import configure_logging
    from switch.runtime import SwitchRuntime

    configure_logging("switch", data_dir)  # data/logs/switch.log, rotated; see shared.logs
    # The journal writer thread must not hold the event loop off the GIL for the default 5 ms.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    settings = SwitchSettings(host=host, iso_port=port, ops_port=ops_port, data_dir=data_dir, database_url=database_url)
    aio.run(_serve(SwitchRuntime(settings, clock_for(settings.clock_file).now)))


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
