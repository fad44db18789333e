"""The normal-purchase lesson played as a participant plays it, in the training app against the
lesson's own sandbox network: the list, the card, CEK and PIN, the goods, BAYAR and PIN, the
guidance changing at each step, the check answered and the score kept for the participant."""

from __future__ import annotations

from pathlib import Path

from tests.training.play import SIZE, Player, guidance_text, saved_progress, training_app


async def test_normal_purchase_lesson_in_the_app(tmp_path: Path) -> None:
    app = training_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        player = Player(app, pilot)
        assert (await player.list_row(0))[1:] == ["Pembelian normal", "belum dimulai"]
        await player.open_lesson(0)
        assert "langkah 1/4 - Datang" in guidance_text(app)
        siti = app.sandbox.cards["siti"]
        assert siti.pan in guidance_text(app)  # the card number to type, filled in

        # Datang: the demo card picked in the slot and inserted with a click
        await player.slot_card("siti")
        assert "langkah 2/4 - Cek saldo" in guidance_text(app)
        assert "Kartu terbaca" in guidance_text(app)

        # Cek: F1, the KPM's PIN, ENTER
        await player.keys("f1", *siti.pin, "enter")
        assert await player.at_step(3, 4, "Pilih barang")
        assert "RC 00: Transaksi berhasil" in guidance_text(app)
        assert app.counter.view().balance_idr == 150_000

        # Pilih: rice into the cart
        await player.goods("Beras medium", 2)
        assert "langkah 4/4 - Bayar" in guidance_text(app)

        # Bayar: F9, the PIN on the EDC, ENTER
        await player.pay(*siti.pin)
        assert await player.at_check()
        assert "Pembayaran disetujui bank" in guidance_text(app)
        assert app.counter.view().last_sale is not None

        # the check: two right answers, one wrong (the third's answer is 2)
        await player.answer_check([2, 1, 1])
        assert app.sandbox is None  # the lesson's network is stopped
        assert (await player.list_row(0))[2] == "selesai, skor 2/3"
    saved = saved_progress(tmp_path)["pembelian-normal"]
    assert (saved.status, saved.right, saved.total) == ("done", 2, 3)
    assert not list(tmp_path.glob("sembako-training-*"))  # the sandbox's directory is gone
