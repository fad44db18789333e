"""The lesson files, the loader's errors, and the lesson state machine fed events (no UI, no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.lesson import CardFacts, Event, LessonError, LessonRun, Phase
from training.loader import LESSONS_DIR, load_lesson, load_lessons
from training.loader import LessonError as LessonFileError

EXPECTED_IDS = [
    "pembelian-normal", "saldo-nol", "pin-terblokir", "kartu-hilang", "barang-salah", "harga-di-atas-het",
    "sinyal-hilang", "daerah-offline", "vsat",
]  # fmt: skip
SITI = CardFacts("9360000900000014", "936000******0014", "123456", "3273000000000001", "Siti Aminah")


@pytest.fixture(scope="module")
def lessons() -> dict:
    return {lesson.id: lesson for lesson in load_lessons()}


def test_the_nine_lessons_load_in_order(lessons: dict) -> None:
    assert list(lessons) == EXPECTED_IDS
    for lesson in lessons.values():
        assert 2 <= len(lesson.check) <= 3
        assert all(1 <= q.answer <= len(q.choices) for q in lesson.check)
        assert lesson.scenario().network.terminals[0].tid == lesson.terminal_id


def test_normal_purchase_walked_from_events(lessons: dict) -> None:
    run = LessonRun(lessons["pembelian-normal"], {"siti": SITI})
    first = run.guidance()
    assert (first.step_number, first.step_total, first.step_title) == (1, 4, "Datang")
    assert "9360000900000014" in first.do_now and first.happened is None
    assert not run.feed(Event("card_inserted", card="somebody_else"))
    assert run.feed(Event("card_inserted", card="siti"))
    assert run.guidance().step_title == "Cek saldo" and "123456" in run.guidance().do_now
    assert not run.feed(Event("balance", rc="55", approved=False))  # explained, the step stays
    off = run.guidance()
    assert not off.on_track and off.rc_meaning == "RC 55: PIN salah" and "3 kali salah" in (off.kpm_next or "")
    assert run.feed(Event("balance", rc="00", approved=True, balance_idr=150_000))
    assert run.guidance().on_track and run.guidance().rc_meaning == "RC 00: Transaksi berhasil"
    assert not run.feed(Event("cart_refused", refusal="forbidden", reason="Gula pasir tidak boleh dibeli"))
    assert "Gula pasir" in (run.guidance().happened or "")
    assert run.feed(Event("cart_item"))
    assert run.guidance().step_title == "Bayar"
    assert not run.feed(Event("purchase", rc="91", approved=False, reversed=True))
    assert run.feed(Event("purchase", rc="00", approved=True, amount_idr=26_000))
    done = run.guidance()
    assert run.phase is Phase.CHECK and done.phase is Phase.CHECK and "Pembayaran disetujui" in (done.happened or "")
    assert run.feed(Event("purchase", rc="00", approved=True)) is False  # nothing after the steps
    with pytest.raises(LessonError):
        run.finish()  # questions not answered
    assert run.answer(0, 2) and run.answer(1, 1) and not run.answer(2, 3)
    score = run.finish()
    assert (score.right, score.total, run.phase) == (2, 3, Phase.DONE)


def test_pin_blocked_walked_from_events(lessons: dict) -> None:
    partini = CardFacts("9360000900007014", "936000******7014", "135790", "3273000000000009", "Partini Wibowo")
    run = LessonRun(lessons["pin-terblokir"], {"partini": partini})
    assert "9360000900007014" in run.guidance().do_now
    with pytest.raises(LessonError):
        run.answer(0, 1)  # the check comes after the steps
    assert run.feed(Event("card_inserted", card="partini"))
    assert not run.feed(Event("balance", rc="00", approved=True, balance_idr=150_000))  # the right PIN is not this step
    assert run.feed(Event("balance", rc="55", approved=False))
    assert run.guidance().step_title == "PIN salah kedua"
    assert run.feed(Event("balance", rc="55", approved=False))
    assert run.guidance().step_title == "PIN salah ketiga"
    assert run.feed(Event("balance", rc="75", approved=False))
    end = run.guidance()
    assert run.phase is Phase.CHECK
    assert "KKS dan KTP" in (end.kpm_next or "") and end.rc_meaning == "RC 75: PIN terblokir, hubungi bank"
    for index, question in enumerate(run.lesson.check):
        assert run.answer(index, question.answer)
    assert run.finish().right == len(run.lesson.check)


def test_world_steps_are_handed_out_once(lessons: dict) -> None:
    run = LessonRun(lessons["kartu-hilang"])
    assert run.due_world() == ()
    run.feed(Event("card_inserted", card="yohanes"))
    run.feed(Event("balance", rc="41", approved=False))
    world = run.due_world()
    assert [step.action for step in world] == ["replace"] and run.due_world() == ()
    assert "?" in run.guidance().do_now  # the replacement card has no number before the bank issues it




def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = (LESSONS_DIR / "01_pembelian_normal.yaml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "01_broken.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        ("until: {event: cart_item}", "until: {event: cart_itme}", "steps[2].until.event", "expecting a lesson event"),
        ("    answer: 2\n", "    answer: 2\n    hint: nope\n", "check[0].hint", "unknown key \"hint\"; expected one of: question, choices, answer"),
        ("    answer: 1\n", "    answer: 4\n", "check[1].answer", "answer 4 but there are 3 choices"),
        ("({siti.kks_masked})", "({sito.kks_masked})", "steps[0].do", "unknown placeholder {sito.kks_masked}"),
        ("kpm: siti", "kpm: budi", "kpm", "card budi is not in people"),
        ("  - disburse: {period: \"2026-11\", amount: 150000}",
         "  - cek: {card: siti, terminal: BNI00001}", "setup[0].cek", "uses the EDC, which is the participant's"),
    ],
)
def test_a_broken_lesson_names_file_line_and_field(tmp_path: Path, old: str, new: str, where: str, message: str) -> None:
    path = _broken(tmp_path, old, new)
    with pytest.raises(LessonFileError) as caught:
        load_lesson(path)
    error = caught.value
    assert error.file == str(path) and error.line is not None
    assert (error.path, message in error.message) == (where, True), str(error)
    assert str(error).startswith(f"{path}:{error.line}:")
    with pytest.raises(LessonFileError):
        load_lessons(tmp_path)
