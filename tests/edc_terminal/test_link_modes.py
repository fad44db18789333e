"""The EDC through the link simulator (`--link`): the same flows over a seeded VSAT link, no link
at all offline, and the status line showing the link and its state."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edc_terminal.app import EdcApp, EdcOptions, build_terminal
from edc_terminal.headless import run
from linksim import OFFLINE, VSAT

from tests.apps import settle
from tests.edc_terminal.conftest import PAN, PIN, START_BALANCE
from tests.edc_terminal.fakes import FakeSwitch, FixedClock

TID = "BNI00001"
SEED = 2  # on this seed no frame of the flows below is lost (seed 1 loses the Cek: 91)


def headless(switch: FakeSwitch, data_dir: Path, command: str, link, **inputs) -> dict:  # noqa: ANN001
    coroutine = run(command, TID, "127.0.0.1", switch.port, data_dir, clock=FixedClock(), timeout_ms=3_000,
                    link=link, link_seed=SEED, **inputs)  # fmt: skip
    return asyncio.run(asyncio.wait_for(coroutine, 60))


def test_cek_over_vsat_takes_its_round_trips_and_says_so(fake_switch: FakeSwitch, tmp_path: Path) -> None:
    from edc_terminal.inspector import Inspector

    inspector = Inspector()
    result = asyncio.run(asyncio.wait_for(run(
        "cek", TID, "127.0.0.1", fake_switch.port, tmp_path, pan=PAN, pin=PIN, clock=FixedClock(),
        timeout_ms=3_000, inspector=inspector, link=VSAT, link_seed=SEED,
    ), 60))  # fmt: skip
    assert (result["rc"], result["balance"], result["link"]) == ("00", START_BALANCE, "VSAT ~600 ms")
    rtts = [e.rtt_ms for e in inspector.exchanges]
    assert len(rtts) == 4 and all(rtt is not None and rtt >= 400 for rtt in rtts), rtts  # sign-on, keys, card list, cek


def test_offline_there_is_no_link_and_nothing_is_answered(fake_switch: FakeSwitch, tmp_path: Path) -> None:
    result = headless(fake_switch, tmp_path, "signon", OFFLINE)
    assert (result["rc"], result["link"]) == ("91", "OFFLINE")
    assert fake_switch.received == []


async def test_the_status_line_shows_the_link_and_its_state(fake_switch: FakeSwitch, tmp_path: Path) -> None:
    options = EdcOptions(TID, "127.0.0.1", fake_switch.port, tmp_path, 3_000, link=VSAT, link_seed=SEED)
    app = EdcApp(build_terminal(options, FixedClock()), options=options)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app.terminal)
        assert app.terminal.core.has_keys
        assert "| VSAT ~600 ms: ONLINE |" in app.terminal.status().line()


def test_each_profile_waits_longer_by_what_its_link_adds() -> None:
    from edc_terminal.core import CoreConfig
    from edc_terminal.linking import core_config
    from linksim import ONLINE

    base = CoreConfig(30_000, 15_000, 15_000)
    direct, online, vsat = core_config(None, base), core_config(ONLINE, base), core_config(VSAT, base)
    assert direct == base and core_config(OFFLINE, base) == base
    assert base.response_timeout_ms < online.response_timeout_ms < vsat.response_timeout_ms
    # VSAT: three of its worst round trips (700 ms) and 600 bytes at 4,096 bytes/s on every wait.
    assert vsat.response_timeout_ms - base.response_timeout_ms == 3 * 700 + 147
    assert vsat.network_timeout_ms - base.network_timeout_ms == vsat.reversal_timeout_ms - base.reversal_timeout_ms == 2_247
