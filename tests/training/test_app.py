"""The normal-purchase lesson played as a participant plays it, in the training app against the
lesson's own sandbox network: the list, the card, CEK and PIN, the goods, BAYAR and PIN, the
guidance changing at each step, the check answered and the score kept for the participant."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Input, RadioButton, RadioSet, Select, Static

from shared.clock import FixedClock
from training.app import CheckScreen, GuidancePanel, LessonListScreen, TrainingApp
from training.loader import load_lessons
from training.progress import ProgressStore

from tests.apps import eventually, settle
from tests.conftest import BUSINESS_START

SIZE = (140, 45)
START_S = 60.0  # the lesson's network: banks and the switch forked, seeded, signed on


def guidance_text(app: TrainingApp) -> str:
    panel = app.query_one(GuidancePanel)
    return " ".join(str(panel.query_one(f"#guidance-{part}", Static).render()) for part in ("step", "do", "result"))


async def test_normal_purchase_lesson_in_the_app(tmp_path: Path) -> None:
    store = ProgressStore(tmp_path / "progress", FixedClock(BUSINESS_START))
    app = TrainingApp(load_lessons(), store, "Ani", FixedClock(BUSINESS_START), sandbox_root=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        assert await eventually(lambda: isinstance(app.screen, LessonListScreen))
        table = app.screen.query_one("#lessons-table", DataTable)
        assert table.get_row_at(0)[1:] == ["Pembelian normal", "belum dimulai"]
        await pilot.press("enter")  # the first lesson
        assert await eventually(lambda: bool(app.query(GuidancePanel)) and app.lesson_run is not None, START_S)
        await settle(pilot, app.terminal)
        assert "langkah 1/4 - Datang" in guidance_text(app)
        siti = app.sandbox.cards["siti"]
        assert siti.pan in guidance_text(app)  # the card number to type, filled in

        # Datang: the demo card picked in the slot and inserted with a click
        app.query_one("#edc-card-select", Select).value = siti.pan
        await pilot.click("#slot-insert")
        await settle(pilot, app.terminal)
        assert "langkah 2/4 - Cek saldo" in guidance_text(app)
        assert "Kartu terbaca" in guidance_text(app)

        # Cek: F1, the KPM's PIN, ENTER
        await pilot.press("f1", *siti.pin, "enter")
        await settle(pilot, app.terminal)
        assert await eventually(lambda: "langkah 3/4 - Pilih barang" in guidance_text(app))
        assert "RC 00: Transaksi berhasil" in guidance_text(app)
        assert app.counter.view().balance_idr == 150_000

        # Pilih: rice into the cart
        catalogue = app.query_one("#shop-catalogue", DataTable)
        catalogue.move_cursor(row=catalogue.get_row_index("BRS-MED"))
        quantity = app.query_one("#shop-qty", Input)
        quantity.value = "2"
        quantity.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert "langkah 4/4 - Bayar" in guidance_text(app)

        # Bayar: F9, the PIN on the EDC, ENTER
        await pilot.press("f9")
        await pilot.pause()
        await pilot.press(*siti.pin, "enter")
        await settle(pilot, app.terminal)
        assert await eventually(lambda: "Soal penutup" in guidance_text(app))
        assert "Pembayaran disetujui bank" in guidance_text(app)
        assert app.counter.view().last_sale is not None

        # the check: two right answers, one wrong
        await pilot.press("f7")
        assert await eventually(lambda: isinstance(app.screen, CheckScreen))
        for index, choice in enumerate((2, 1, 1)):  # right, right, wrong (the third's answer is 2)
            buttons = list(app.screen.query_one(f"#check-q{index}", RadioSet).query(RadioButton))
            buttons[choice - 1].value = True
        await pilot.pause()
        await pilot.click("#check-done")
        assert await eventually(lambda: isinstance(app.screen, LessonListScreen), 30)
        assert app.sandbox is None  # the lesson's network is stopped
        table = app.screen.query_one("#lessons-table", DataTable)
        assert await eventually(lambda: table.row_count == len(app.lessons))
        assert table.get_row_at(0)[2] == "selesai, skor 2/3"
    saved = ProgressStore(tmp_path / "progress", FixedClock(BUSINESS_START)).of("ani")
    assert (saved["pembelian-normal"].status, saved["pembelian-normal"].right, saved["pembelian-normal"].total) == ("done", 2, 3)
    assert not list(tmp_path.glob("sembako-training-*"))  # the sandbox's directory is gone
