"""Lessons 2-9 played to the end in the training app, as a participant following the guidance
plays them: at each step the guidance names what to do (the card, the keys, the PIN or NIK, the
goods), the test does just that with the same widgets and keys, and the guidance moves on to the
next step; after the last step the check (F7) is answered and the score kept for the participant.
Each lesson runs on its own sandbox network; every wait is bounded."""

from __future__ import annotations

import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from training.app import TrainingApp

from tests.apps import eventually
from tests.training.play import (
    SIZE, STEP_S, Player, edc_status, guidance_cut, guidance_do, guidance_text, saved_progress, training_app,
)

Act = Callable[[Player], Awaitable[None]]
Seen = Callable[[TrainingApp], bool]


@dataclass(frozen=True)
class Step:
    """One lesson step as the participant plays it."""

    title: str
    mentions: tuple[str, ...]  # what the guidance's "Lakukan sekarang" names (templates: {siti.pin})
    act: Act
    seen: Seen | None = None  # what the counter shows once the step is done
    wait_s: float = STEP_S


def cek(card: str) -> Act:
    async def act(player: Player) -> None:
        await player.keys("f1", *player.card(card).pin, "enter")

    return act


def pin_typed(pin: str) -> Act:
    async def act(player: Player) -> None:
        await player.keys("f1", *pin, "enter")

    return act


def pay_with_pin(card: str) -> Act:
    async def act(player: Player) -> None:
        await player.pay(*player.card(card).pin)

    return act


def slot(card: str) -> Act:
    return lambda player: player.slot_card(card)


def typed(card: str) -> Act:
    return lambda player: player.type_card(card)


def goods(name: str, qty: int) -> Act:
    return lambda player: player.goods(name, qty)


def then(*acts: Act) -> Act:
    async def act(player: Player) -> None:
        for one in acts:
            await one(player)

    return act


def take_card() -> Act:
    return lambda player: player.keys("enter")


def balance_is(amount_idr: int) -> Seen:
    return lambda app: app.counter.view().balance_idr == amount_idr


def shop_says(text: str) -> Seen:
    return lambda app: text in (app.counter.view().message or "")


def slip_says(text: str) -> Seen:
    return lambda app: bool(app.terminal.printer) and text in app.terminal.printer[-1]


def sold(app: TrainingApp) -> bool:
    return app.counter.view().last_sale is not None


async def upload_when_online(player: Player) -> None:
    """Once the EDC's status line shows the signal back: ENTER (take the card), MENU, 6 (KIRIM OFFLINE)."""
    assert await eventually(lambda: "OFFLINE" not in edc_status(player.app), STEP_S), edc_status(player.app)
    await player.keys("enter", "m", "6")


SITI_COMES = Step("Datang", ('"normal"', "{siti.kks_masked}", "Masukkan kartu"), slot("siti"))
SITI_CEK = Step("Cek saldo", ("F1", "{siti.pin}", "ENTER"), cek("siti"), balance_is(150_000))
SITI_PAYS = Step("Bayar", ("F9", "{siti.pin}", "ENTER"), pay_with_pin("siti"), sold)

SCRIPTS: dict[str, tuple[Step, ...]] = {
    "saldo-nol": (
        Step("Datang", ('"zero_balance"', "{sumiati.kks_masked}", "Masukkan kartu"), slot("sumiati")),
        Step("Cek saldo", ("F1", "{sumiati.pin}", "ENTER"), cek("sumiati"), balance_is(0)),
        Step("Coba pilih barang", ("Beras medium", "jumlah 1", "Enter"), goods("Beras medium", 1), shop_says("saldo")),
    ),
    "pin-terblokir": (
        Step("Datang", ("{partini.kks}", "atau ketik nomor KKS", "Enter"), typed("partini")),
        Step("PIN salah pertama", ("F1", "111111", "ENTER"), pin_typed("111111"), shop_says("PIN")),
        Step("PIN salah kedua", ("ENTER (ambil kartu)", "{partini.kks}", "F1", "222222"),
             then(take_card(), typed("partini"), pin_typed("222222"))),  # fmt: skip
        Step("PIN salah ketiga", ("ENTER", "masukkan lagi ({partini.kks})", "F1", "333333"),
             then(take_card(), typed("partini"), pin_typed("333333")), slip_says("75")),  # fmt: skip
    ),
    "kartu-hilang": (
        Step("Kartu yang hilang datang", ("{yohanes.kks}", "atau ketik nomor KKS", "Enter"), typed("yohanes")),
        Step("Cek saldo kartu hilang", ("F1", "123456", "ENTER"), pin_typed("123456"), slip_says("41")),  # not the owner's PIN
        Step("Kartu pengganti", ("ENTER (ambil kartu)", "{yohanes_baru.kks}", "Enter"), then(take_card(), typed("yohanes_baru"))),
        Step("Cek saldo kartu pengganti", ("F1", "{yohanes_baru.pin}", "ENTER"), cek("yohanes_baru"), balance_is(150_000)),
    ),
    "barang-salah": (
        SITI_COMES,
        SITI_CEK,
        Step("KPM minta gula", ("Gula pasir", "jumlah 1", "Enter"), goods("Gula pasir", 1), shop_says("Gula")),
        Step("Bahan pangan yang boleh", ("Telur ayam ras 10",), goods("Telur ayam ras", 10)),
        SITI_PAYS,
    ),
    "harga-di-atas-het": (
        SITI_COMES,
        SITI_CEK,
        Step("Beras di atas HET", ("Beras medium", "jumlah 5", "Enter"), goods("Beras medium", 5), shop_says("HET")),
        Step("Barang dengan harga wajar", ("Telur ayam ras", "jumlah 20", "Enter"), goods("Telur ayam ras", 20)),
        SITI_PAYS,
    ),
    "sinyal-hilang": (
        SITI_COMES,
        SITI_CEK,
        Step("Pilih barang", ("Beras medium 2 kg",), goods("Beras medium", 2)),
        Step("Bayar saat sinyal hilang", ("F9", "{siti.pin}", "ENTER", "jangan cabut kartu"), pay_with_pin("siti"),
             lambda app: not sold(app) and shop_says("Pembayaran gagal")(app)),  # fmt: skip
        Step("Pastikan saldo kembali", ("ENTER (ambil kartu)", "masukkan kartu lagi", "F1", "{siti.pin}"),
             then(take_card(), lambda player: player.reinsert_card(), cek("siti")), balance_is(150_000)),  # fmt: skip
        Step("Bayar ulang", ("F9", "{siti.pin}", "ENTER"), pay_with_pin("siti"), balance_is(150_000 - 26_000)),
    ),
    "daerah-offline": (
        Step("Datang tanpa sinyal", ("MODE OFFLINE", "{siti.kks_masked}", "Masukkan kartu"), slot("siti"),
             lambda app: app.terminal.status().offline and app.counter.view().balance_idr is not None),  # fmt: skip
        Step("Pilih barang", ("Beras medium 2 kg",), goods("Beras medium", 2)),
        Step("Bayar offline dengan NIK", ("F9", "NIK", "{siti.nik}", "ENTER"),
             lambda player: player.pay(*player.card("siti").nik), slip_says("TRANSAKSI OFFLINE")),  # fmt: skip
        Step("Sinyal kembali", ("ENTER (ambil kartu)", "MENU (m)", "6 (KIRIM OFFLINE)"), upload_when_online,
             lambda app: app.terminal.status().advices_pending == 0),  # fmt: skip
    ),
    "vsat": (
        Step("Datang", ("VSAT", "{siti.kks_masked}", "Masukkan kartu"), slot("siti")),
        Step("Cek saldo lewat VSAT", ("F1", "{siti.pin}", "ENTER", "sisa waktu"), cek("siti"), balance_is(150_000)),
        Step("Pilih barang", ("Telur ayam ras 10",), goods("Telur ayam ras", 10)),
        Step("Bayar lewat VSAT", ("F9", "{siti.pin}", "ENTER", "Mohon tunggu"), pay_with_pin("siti"), sold),
    ),
}
AfterStep = Callable[[TrainingApp, int], Awaitable[None]]


def cards_named(template: str) -> set[str]:
    return {name.partition(".")[0] for _, name, _, _ in string.Formatter().parse(template) if name}


async def guidance_names(player: Player, mentions: tuple[str, ...]) -> bool:
    """The guidance's "Lakukan sekarang" names each of `mentions`, cards filled in (a card a
    world step issues is known once that step has played)."""
    app = player.app

    def named() -> bool:
        run = app.lesson_run
        if run is None or any(card not in run.cards for m in mentions for card in cards_named(m)):
            return False
        return all(player.fill(m) in guidance_do(app) for m in mentions)

    return await eventually(named, STEP_S)


async def play_lesson(lesson_id: str, tmp_path: Path, after_step: AfterStep | None = None) -> None:
    """Lesson `lesson_id` from the list to the score; `after_step(app, index)` runs after each
    step's outcome is shown (index 0-based)."""
    app = training_app(tmp_path)
    row = next(i for i, lesson in enumerate(app.lessons) if lesson.id == lesson_id)
    lesson, script = app.lessons[row], SCRIPTS[lesson_id]
    assert [step.title for step in script] == [step.title for step in lesson.steps]
    async with app.run_test(size=SIZE) as pilot:
        player = Player(app, pilot)
        await player.open_lesson(row)
        total = len(script)
        for index, step in enumerate(script):
            assert await player.at_step(index + 1, total, step.title), guidance_text(app)
            assert await guidance_names(player, step.mentions), f"step {index + 1}: {step.mentions} not in {guidance_do(app)!r}"
            assert not guidance_cut(app), f"step {index + 1}: the panel cuts {guidance_do(app)!r}"
            await step.act(player)
            if index + 1 < total:
                ended = await player.at_step(index + 2, total, script[index + 1].title, step.wait_s)
            else:
                ended = await player.at_check(step.wait_s)
            assert ended, f"step {index + 1} ({step.title}) did not end: {guidance_text(app)}"
            assert step.seen is None or await eventually(lambda: step.seen(app)), f"step {index + 1} ({step.title})"
            if after_step is not None:
                await after_step(app, index)
        choices = [1 if question.answer != 1 else 2 for question in lesson.check[:1]]  # the first one wrong
        choices += [question.answer for question in lesson.check[1:]]
        await player.answer_check(choices)
        assert app.sandbox is None  # the lesson's network is stopped
        right, count = len(lesson.check) - 1, len(lesson.check)
        assert (await player.list_row(row))[1:] == [lesson.title, f"selesai, skor {right}/{count}"]
    saved = saved_progress(tmp_path)[lesson_id]
    assert (saved.status, saved.right, saved.total) == ("done", right, count)
    assert not list(tmp_path.glob("sembako-training-*"))  # the sandbox's directory is gone


@pytest.mark.parametrize("lesson_id", list(SCRIPTS))
async def test_lesson_played_to_the_end_in_the_app(lesson_id: str, tmp_path: Path) -> None:
    await play_lesson(lesson_id, tmp_path)
