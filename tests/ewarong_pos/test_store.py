"""A KPM pays at the e-Warong: the cart becomes a payment, the EDC approves or declines, the
sale and its stock movements are written once; declines and crashes leave stock untouched."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from ewarong_pos import rules
from ewarong_pos.catalogue import DEMO_STOCK
from ewarong_pos.recovery import ApprovedPurchase
from ewarong_pos.rules import Cart, CartLine, Refusal
from ewarong_pos.store import PAYMENT_OPEN, Payment, PaymentStateError, ShopError, ShopStore, UnknownEwarong
from ewarong_pos.tables import products, sale_voids, sales, stock_movements
from shared.clock import FixedClock
from tests.ewarong_pos.conftest import EWARONG, TERMINAL

PAN = "9360000912345678"
MASKED = "936000******5678"
OPENING = {p.sku: qty for p, qty in DEMO_STOCK}
BALANCE_IDR = 150_000


def fill(store: ShopStore, *items: tuple[str, int], balance_idr: int = BALANCE_IDR) -> Cart:
    cart = Cart()
    for sku, qty in items:
        result = store.add_to_cart(EWARONG, cart, sku, qty, balance_idr)
        assert isinstance(result, Cart), result
        cart = result
    return cart


def begin(store: ShopStore, cart: Cart, terminal_id: str = TERMINAL) -> Payment:
    payment = store.begin_payment(EWARONG, terminal_id, cart)
    assert isinstance(payment, Payment), payment
    return payment


def approve(store: ShopStore, payment: Payment, rrn: str, stan: str = "000001", at: datetime | None = None):  # noqa: ANN201
    return store.complete_payment(payment.id, rrn, "AB12CD", stan, MASKED, at or store.clock.now(), pan=PAN)


def count(store: ShopStore, table) -> int:  # noqa: ANN001
    with store.db.read() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_a_sale_voided_at_the_edc_puts_its_goods_back_once_and_leaves_the_report(store: ShopStore) -> None:
    kept = approve(store, begin(store, fill(store, ("BRS-MED", 2))), "000000000001", "000001")
    voided = approve(store, begin(store, fill(store, ("BRS-MED", 5), ("TLR-AYM", 10))), "000000000002", "000002")
    assert store.void_sale(TERMINAL, "000000000002", store.clock.now()) == voided
    assert store.void_sale(TERMINAL, "000000000002", store.clock.now()) == voided  # the same void again
    stock = store.stock(EWARONG)
    assert (stock["BRS-MED"], stock["TLR-AYM"]) == (OPENING["BRS-MED"] - 2, OPENING["TLR-AYM"])
    assert store.is_voided(TERMINAL, "000000000002") and not store.is_voided(TERMINAL, "000000000001")
    assert count(store, sale_voids) == 1 and count(store, sales) == 2  # appended, nothing deleted
    report = store.daily_report(EWARONG, store.clock.now().date())
    assert (report.rrns, report.total_idr) == (("000000000001",), kept.amount_idr)


def test_a_void_of_a_purchase_the_shop_never_sold_changes_nothing(store: ShopStore) -> None:
    assert store.void_sale(TERMINAL, "000000000077", store.clock.now()) is None
    assert store.stock(EWARONG) == OPENING and count(store, sale_voids) == 0
    with pytest.raises(ShopError):
        store.void_sale(TERMINAL, "not-an-rrn", store.clock.now())


def test_demo_shop_is_seeded_once_with_the_same_catalogue_everywhere(store: ShopStore) -> None:
    assert store.ensure_demo(EWARONG) is False
    assert store.stock(EWARONG) == OPENING
    assert {p.sku for p in store.products(EWARONG)} == set(OPENING)
    assert store.product(EWARONG, "GULA").forbidden_reason  # stocked but flagged
    assert count(store, products) == len(OPENING)
    assert store.ensure_demo("EWBRI0000000048") is True
    assert store.stock("EWBRI0000000048") == OPENING
    with pytest.raises(UnknownEwarong):
        store.ensure_demo("EWBNI0000000049")


def test_a_kpm_buys_beras_and_telur(store: ShopStore) -> None:
    cart = fill(store, ("BRS-MED", 5), ("TLR-AYM", 10))
    payment = begin(store, cart)
    store.payment_sent(payment.id, "000001")
    sale = approve(store, payment, "000000000001")
    assert (sale.amount_idr, sale.rrn, sale.pan_masked, sale.lines) == (85_000, "000000000001", MASKED, cart.lines)
    assert store.payment_status(payment.id) == "approved"
    stock = store.stock(EWARONG)
    assert (stock["BRS-MED"], stock["TLR-AYM"]) == (OPENING["BRS-MED"] - 5, OPENING["TLR-AYM"] - 10)


def test_recording_the_same_sale_twice_stores_it_once(store: ShopStore) -> None:
    payment = begin(store, fill(store, ("BRS-MED", 2)))
    first = approve(store, payment, "000000000001")
    again = approve(store, payment, "000000000001")
    assert again == first
    assert count(store, sales) == 1
    assert store.stock(EWARONG)["BRS-MED"] == OPENING["BRS-MED"] - 2
    other = begin(store, fill(store, ("TEMPE", 1)))
    with pytest.raises(PaymentStateError):  # the RRN belongs to another payment
        approve(store, other, "000000000001")


def test_the_full_pan_is_never_stored(store: ShopStore) -> None:
    payment = begin(store, fill(store, ("TAHU", 4)))
    with pytest.raises(ShopError):
        store.complete_payment(payment.id, "000000000001", "AB12CD", "000001", PAN, store.clock.now())
    approve(store, payment, "000000000001")
    with store.db.read() as conn:
        row = conn.execute(select(sales)).one()
    assert PAN not in repr(tuple(row)) and row.pan_masked == MASKED and len(row.card_ref) == 64


def test_a_declined_payment_leaves_stock_and_sales_untouched(store: ShopStore) -> None:
    payment = begin(store, fill(store, ("DGG-SPI", 1)))
    assert store.available(EWARONG)["DGG-SPI"] == OPENING["DGG-SPI"] - 1  # held while at the EDC
    store.payment_sent(payment.id, "000001")
    store.fail_payment(payment.id, "51", "Saldo tidak cukup")
    store.fail_payment(payment.id, "51", "Saldo tidak cukup")  # a repeat changes nothing
    assert store.payment_status(payment.id) == "declined"
    assert store.stock(EWARONG) == OPENING == store.available(EWARONG)
    assert count(store, sales) == 0
    with pytest.raises(PaymentStateError):
        approve(store, payment, "000000000001")
    with pytest.raises(PaymentStateError):
        store.payment_sent(payment.id, "000002")


def test_a_reversed_or_cancelled_payment_closes_without_a_sale(store: ShopStore) -> None:
    reversed_payment = begin(store, fill(store, ("TEMPE", 2)))
    store.fail_payment(reversed_payment.id, "91", "Tidak ada jawaban; pembelian dibatalkan", reversal=True)
    cancelled = begin(store, fill(store, ("TEMPE", 2)))
    store.cancel_payment(cancelled.id)
    assert (store.payment_status(reversed_payment.id), store.payment_status(cancelled.id)) == ("reversed", "abandoned")
    assert store.stock(EWARONG) == OPENING and count(store, sales) == 0


def test_an_approved_payment_cannot_be_failed_afterwards(store: ShopStore) -> None:
    payment = begin(store, fill(store, ("TEMPE", 1)))
    approve(store, payment, "000000000001")
    with pytest.raises(PaymentStateError):
        store.fail_payment(payment.id, "05", "terlambat")


def test_one_payment_at_a_time_per_terminal(store: ShopStore) -> None:
    first = begin(store, fill(store, ("TEMPE", 1)))
    refusal = store.begin_payment(EWARONG, TERMINAL, fill(store, ("TAHU", 1)))
    assert isinstance(refusal, Refusal) and refusal.code == PAYMENT_OPEN
    store.cancel_payment(first.id)
    begin(store, fill(store, ("TAHU", 1)))


def test_goods_held_by_an_open_payment_cannot_go_in_another_cart(store: ShopStore) -> None:
    last = OPENING["DGG-SPI"]
    cart = fill(store, ("DGG-SPI", 3), balance_idr=10_000_000)
    begin(store, fill(store, ("DGG-SPI", last - 2), balance_idr=10_000_000), terminal_id="BNI00002")
    refusal = store.begin_payment(EWARONG, TERMINAL, cart)
    assert isinstance(refusal, Refusal) and refusal.code == rules.STOCK
    refused = store.add_to_cart(EWARONG, Cart(), "DGG-SPI", 3, 10_000_000)
    assert isinstance(refused, Refusal) and "tersedia 2 kg" in refused.reason


def test_forbidden_and_hand_made_carts_are_refused_before_the_edc(store: ShopStore) -> None:
    gula = store.add_to_cart(EWARONG, Cart(), "GULA", 1, BALANCE_IDR)
    assert isinstance(gula, Refusal) and gula.code == rules.FORBIDDEN
    cash = Cart((CartLine("BRS-MED", "Beras medium", "kg", 1, 13_000), CartLine("TEMPE", "Tempe", "papan", 1, -5_000)))
    refusal = store.begin_payment(EWARONG, TERMINAL, cash)
    assert isinstance(refusal, Refusal) and refusal.code == rules.CASH_OUT
    assert store.open_payments(TERMINAL) == []
    with pytest.raises(UnknownEwarong):
        store.begin_payment("EWBNI0000000002", TERMINAL, fill(store, ("TEMPE", 1)))


def test_receiving_goods_appends_stock(store: ShopStore) -> None:
    store.receive_goods(EWARONG, "DGG-SPI", 10)
    assert store.stock(EWARONG)["DGG-SPI"] == OPENING["DGG-SPI"] + 10
    for bad in (0, -5, 2.0):
        with pytest.raises(ShopError):
            store.receive_goods(EWARONG, "DGG-SPI", bad)  # type: ignore[arg-type]
    with pytest.raises(ShopError):
        store.receive_goods(EWARONG, "NOPE", 1)


def test_stock_never_goes_negative_under_concurrent_sales(store: ShopStore) -> None:
    """Eight terminals of one shop sell 3 kg of daging sapi each at once; there are 20 kg."""
    outcomes: list[object] = []
    start = threading.Barrier(8)

    def sell(n: int) -> None:
        cart = Cart((CartLine("DGG-SPI", "Daging sapi", "kg", 3, 135_000),))
        start.wait()
        payment = store.begin_payment(EWARONG, f"BNI{n:05d}", cart)
        if isinstance(payment, Payment):
            payment = approve(store, payment, f"{n:012d}", stan=f"{n:06d}")
        outcomes.append(payment)

    threads = [threading.Thread(target=sell, args=(n,)) for n in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    refusals = [o for o in outcomes if isinstance(o, Refusal)]
    assert len(outcomes) == 8 and len(refusals) == 2 and {r.code for r in refusals} == {rules.STOCK}
    assert store.stock(EWARONG)["DGG-SPI"] == OPENING["DGG-SPI"] - 18 == 2
    with store.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(sales)).scalar_one() == 6


def test_the_same_approval_written_by_two_threads_is_one_sale(store: ShopStore) -> None:
    payment = begin(store, fill(store, ("BRS-MED", 1)))
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(approve(store, payment, "000000000001"))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 4 and len({r.id for r in results}) == 1  # type: ignore[attr-defined]
    with store.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(stock_movements).where(stock_movements.c.kind == "sale")).scalar_one() == 1


# -- crash recovery ------------------------------------------------------------------------------


def approved(payment: Payment, stan: str, rrn: str, after: timedelta = timedelta(seconds=20)) -> ApprovedPurchase:
    return ApprovedPurchase(TERMINAL, stan, rrn, "AB12CD", payment.amount_idr, payment.created_at + after, MASKED, pan=PAN)


def test_killed_after_approval_with_a_stan_recovers_the_sale_once(store: ShopStore) -> None:
    payment = begin(store, fill(store, ("BRS-MED", 5)))
    store.payment_sent(payment.id, "000007")
    purchase = approved(payment, "000007", "000000000007")
    result = store.recover(TERMINAL, [purchase])
    [sale] = result.sales
    assert (sale.payment_id, sale.rrn, sale.at) == (payment.id, "000000000007", purchase.approved_at)
    assert result.abandoned == () and "RRN 000000000007" in result.messages[0]
    again = store.recover(TERMINAL, [purchase])
    assert again.sales == () and again.abandoned == ()
    assert count(store, sales) == 1 and store.stock(EWARONG)["BRS-MED"] == OPENING["BRS-MED"] - 5


def test_killed_before_the_stan_was_written_recovers_by_amount(store: ShopStore, clock: FixedClock) -> None:
    payment = begin(store, fill(store, ("TLR-AYM", 10)))
    clock.advance(timedelta(minutes=1))
    result = store.recover(TERMINAL, [approved(payment, "000003", "000000000003")])
    assert [s.rrn for s in result.sales] == ["000000000003"]
    assert store.payment_status(payment.id) == "approved"


def test_an_open_payment_the_edc_never_approved_is_abandoned_and_stock_untouched(store: ShopStore) -> None:
    earlier = ApprovedPurchase(TERMINAL, "000001", "000000000001", "AB12CD", 26_000, datetime(2026, 11, 2, 16), MASKED)
    payment = begin(store, fill(store, ("BRS-MED", 2)))  # Rp26.000, same amount but opened later
    store.payment_sent(payment.id, "000002")
    result = store.recover(TERMINAL, [earlier])
    assert result.sales == () and result.abandoned == (payment.id,)
    assert "stok tidak berubah" in result.messages[0]
    assert store.stock(EWARONG) == OPENING == store.available(EWARONG)
    begin(store, fill(store, ("BRS-MED", 2)))  # the terminal is free again


def test_an_approval_already_recorded_is_not_reused_for_a_later_payment(store: ShopStore) -> None:
    first = begin(store, fill(store, ("TEMPE", 2)))
    approve(store, first, "000000000001")
    second = begin(store, fill(store, ("TEMPE", 2)))  # same amount, no STAN yet
    result = store.recover(TERMINAL, [approved(first, "000001", "000000000001")])
    assert result.abandoned == (second.id,) and count(store, sales) == 1


def test_aware_approval_times_are_stored_in_wib(store: ShopStore) -> None:
    payment = begin(store, fill(store, ("TAHU", 2)))
    utc = datetime(2026, 11, 3, 2, 30, tzinfo=timezone.utc)
    assert approve(store, payment, "000000000001", at=utc).at == datetime(2026, 11, 3, 9, 30)


# -- daily report --------------------------------------------------------------------------------


def test_the_daily_report_counts_kpm_by_card_not_by_masked_pan(store: ShopStore, clock: FixedClock) -> None:
    # Two different cards share first 6 / last 4 digits: the masked PAN cannot tell them apart.
    cards = ["9360000911115678", "9360000922225678", "9360000911115678"]
    for n, pan in enumerate(cards, start=1):
        payment = begin(store, fill(store, ("BRS-MED", n)))
        store.complete_payment(payment.id, f"{n:012d}", "AB12CD", f"{n:06d}", MASKED, clock.now(), pan=pan)
        clock.advance(timedelta(hours=5))  # 09:00, 14:00 and 19:00 WIB
    late = begin(store, fill(store, ("TEMPE", 1)))  # midnight WIB starts the next business day
    store.complete_payment(late.id, "000000000009", "AB12CD", "000009", MASKED, datetime(2026, 11, 4, 0, 0), pan=cards[0])
    report = store.daily_report(EWARONG, datetime(2026, 11, 3).date())
    assert report.rrns == ("000000000001", "000000000002", "000000000003")
    assert report.kpm_served == 2
    assert [(i.sku, i.qty, i.amount_idr) for i in report.items] == [("BRS-MED", 6, 78_000)]
    assert store.daily_report(EWARONG, datetime(2026, 11, 4).date()).rrns == ("000000000009",)
