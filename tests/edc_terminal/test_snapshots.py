"""Snapshots of the EDC's main screens (pytest-textual-snapshot): idle, menu, PIN, processing,
approved slip, declined slip and the inspector. The fake switch answers deterministically, the
clock and the timer are fixed, so a screen only changes when the code does.
Update after a deliberate change with `pytest --snapshot-update` and look at the SVGs."""

from __future__ import annotations

from pathlib import Path

import pytest

from edc_terminal.app import EdcApp, EdcOptions, build_terminal
from edc_terminal.terminal import EdcTerminal

from tests.edc_terminal.conftest import PAN, PIN, POOR_PAN, POOR_PIN
from tests.edc_terminal.fakes import FakeSwitch, FixedClock

SIZE = (120, 40)
FROZEN_S = 1_000.0


def frozen() -> float:
    return FROZEN_S


def edc_app(switch: FakeSwitch, data_dir: Path) -> EdcApp:
    options = EdcOptions("BNI00001", "127.0.0.1", switch.port, data_dir, 30_000)
    return EdcApp(build_terminal(options, FixedClock(), monotonic=frozen))


async def settle(pilot) -> None:  # noqa: ANN001
    terminal: EdcTerminal = pilot.app.terminal
    for _ in range(500):
        await pilot.pause(0.01)
        if not terminal.busy:
            return
    raise AssertionError("the terminal is still busy")


async def card_in(pilot, pan: str = PAN) -> None:  # noqa: ANN001
    await settle(pilot)
    pilot.app.query_one("#edc").insert_card(pan)
    await settle(pilot)


async def cek(pilot, pan: str = PAN, pin: str = PIN) -> None:  # noqa: ANN001
    await card_in(pilot, pan)
    await pilot.press("f1", *pin, "enter")
    await settle(pilot)


@pytest.fixture
def app(fake_switch: FakeSwitch, tmp_path: Path) -> EdcApp:
    return edc_app(fake_switch, tmp_path)


def test_idle(snap_compare, app: EdcApp) -> None:  # noqa: ANN001
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


def test_menu(snap_compare, app: EdcApp) -> None:  # noqa: ANN001
    async def run_before(pilot) -> None:  # noqa: ANN001
        await settle(pilot)
        await pilot.press("m")

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_pin_shows_only_asterisks(snap_compare, app: EdcApp) -> None:  # noqa: ANN001
    async def run_before(pilot) -> None:  # noqa: ANN001
        await card_in(pilot)
        await pilot.press("f2", *"35000", "enter", *PIN[:4])

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_processing_shows_the_spinner_and_the_time_left(snap_compare, app: EdcApp, fake_switch: FakeSwitch) -> None:  # noqa: ANN001
    fake_switch.silent_mtis = {"0100"}

    async def run_before(pilot) -> None:  # noqa: ANN001
        await card_in(pilot)
        await pilot.press("f1", *PIN, "enter")
        await pilot.pause(0.1)
        assert pilot.app.terminal.busy

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_approved_slip(snap_compare, app: EdcApp) -> None:  # noqa: ANN001
    async def run_before(pilot) -> None:  # noqa: ANN001
        await card_in(pilot)
        await pilot.press("f2", *"35000", "enter", *PIN, "enter")
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_declined_slip(snap_compare, app: EdcApp) -> None:  # noqa: ANN001
    async def run_before(pilot) -> None:  # noqa: ANN001
        await card_in(pilot, POOR_PAN)
        await pilot.press("f2", *"10000", "enter", *POOR_PIN, "enter")
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_inspector(snap_compare, app: EdcApp) -> None:  # noqa: ANN001
    async def run_before(pilot) -> None:  # noqa: ANN001
        await cek(pilot)
        await pilot.press("f8")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_no_snapshot_or_screenshot_holds_a_pin_or_a_full_card_number() -> None:
    root = Path(__file__).parents[2]
    files = [*root.glob("tests/*/__snapshots__/*/*.svg"), *root.glob("docs/screenshots/*.svg")]
    assert len(files) >= 9
    pins, pans = (PIN, POOR_PIN), (PAN, POOR_PAN, "9360000900000014", "9360000900000022")
    for path in files:
        # A training lesson's guidance tells the participant, who plays the KPM too, the demo
        # card's PIN to type: its screens may show the PIN, never a full card number.
        secrets = pans if "training" in path.parts else pins + pans
        text = path.read_text(encoding="utf-8")
        assert not [s for s in secrets if s in text], path
