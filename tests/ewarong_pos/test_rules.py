"""A cashier fills a KPM's cart: food goods within HET, stock and the balance just read from
the card; forbidden goods and any form of cash-out are refused with a reason to read out."""

from __future__ import annotations

import pytest

from ewarong_pos import rules
from ewarong_pos.catalogue import DEMO_PRODUCTS, FORBIDDEN_GOODS, OTHER_GROUP, PROTEIN_HEWANI, Product
from ewarong_pos.rules import Cart, CartLine, Refusal, add_item, cart_refusal, cart_total_idr, remove_item, set_quantity

PRODUCTS = {p.sku: p for p in DEMO_PRODUCTS}
BERAS = PRODUCTS["BRS-MED"]  # Rp13.000/kg
TELUR = PRODUCTS["TLR-AYM"]  # Rp2.000/butir
PLENTY = 1_000
BALANCE_IDR = 150_000


def add(cart: Cart, product: Product, qty: int, stock_qty: int = PLENTY, balance_idr: int = BALANCE_IDR) -> Cart | Refusal:
    return add_item(cart, product, qty, stock_qty=stock_qty, balance_idr=balance_idr)


def cart_of(*items: tuple[Product, int]) -> Cart:
    cart = Cart()
    for product, qty in items:
        result = add(cart, product, qty)
        assert isinstance(result, Cart), result
        cart = result
    return cart


def refused(result: Cart | Refusal, code: str) -> str:
    assert isinstance(result, Refusal), result
    assert result.code == code, result
    return result.reason


def test_a_kpm_buys_beras_and_telur_and_pays_exactly_their_value() -> None:
    cart = cart_of((BERAS, 5), (TELUR, 10))
    assert cart_total_idr(cart) == cart.total_idr == 5 * 13_000 + 10 * 2_000
    assert [(line.sku, line.qty, line.amount_idr) for line in cart.lines] == [("BRS-MED", 5, 65_000), ("TLR-AYM", 10, 20_000)]


def test_adding_the_same_good_again_merges_the_line() -> None:
    cart = cart_of((BERAS, 2), (BERAS, 3))
    assert cart.lines == (CartLine("BRS-MED", "Beras medium", "kg", 5, 13_000),)


@pytest.mark.parametrize("good", sorted(FORBIDDEN_GOODS))
def test_each_forbidden_good_is_refused_with_its_reason(good: str) -> None:
    reason = FORBIDDEN_GOODS[good][1]
    product = Product("TERLARANG", f"Barang {good}", OTHER_GROUP, "bungkus", 10_000, 12_000, forbidden_reason=reason)
    text = refused(add(Cart(), product, 1), rules.FORBIDDEN)
    assert reason in text and "tidak boleh dibeli dengan dana Sembako" in text


def test_gula_from_the_shops_own_stock_is_refused() -> None:
    text = refused(add(Cart(), PRODUCTS["GULA"], 1), rules.FORBIDDEN)
    assert text.startswith("Gula pasir tidak boleh dibeli")


def test_a_good_priced_above_its_het_is_refused() -> None:
    mahal = Product("BRS-MED", "Beras medium", "karbohidrat", "kg", 14_000, 13_500)
    text = refused(add(Cart(), mahal, 1), rules.ABOVE_HET)
    assert "Rp14.000/kg melebihi HET Rp13.500/kg" in text


def test_a_good_at_exactly_its_het_is_sold() -> None:
    pas = Product("BRS-PRM", "Beras premium", "karbohidrat", "kg", 14_900, 14_900)
    assert isinstance(add(Cart(), pas, 1), Cart)


def test_stock_counts_what_is_already_in_the_cart() -> None:
    cart = cart_of((BERAS, 6))
    text = refused(add(cart, BERAS, 5, stock_qty=10), rules.STOCK)
    assert "tersedia 10 kg" in text and "diminta 11 kg" in text
    assert isinstance(add(cart, BERAS, 4, stock_qty=10), Cart)


def test_a_cart_may_not_exceed_the_balance_and_says_what_is_left() -> None:
    cart = cart_of((BERAS, 10))  # Rp130.000 of Rp150.000
    text = refused(add(cart, TELUR, 11), rules.BALANCE)  # Rp22.000 more
    assert "sisa yang masih bisa dibelanjakan Rp20.000" in text
    assert add(cart, TELUR, 10).total_idr == BALANCE_IDR  # exactly the balance is fine


def test_a_zero_balance_refuses_everything() -> None:
    text = refused(add(Cart(), TAHU := PRODUCTS["TAHU"], 1, balance_idr=0), rules.BALANCE)
    assert "sisa yang masih bisa dibelanjakan Rp0" in text and TAHU.sku == "TAHU"


@pytest.mark.parametrize("qty", [0, -1, 2.5, True, "3", 1_001])
def test_quantity_must_be_a_positive_whole_number(qty: object) -> None:
    refused(add(Cart(), BERAS, qty), rules.QUANTITY)  # type: ignore[arg-type]


@pytest.mark.parametrize("balance", [-1, 1.5, None])
def test_an_unread_or_bad_balance_refuses(balance: object) -> None:
    refused(add(Cart(), BERAS, 1, balance_idr=balance), rules.BALANCE)  # type: ignore[arg-type]


def test_tarik_tunai_is_refused_in_any_form() -> None:
    for name in ("Tarik tunai", "Uang tunai", "Isi saldo e-wallet"):
        product = Product("TUNAI", name, PROTEIN_HEWANI, "buah", 50_000, 50_000)
        text = refused(add(Cart(), product, 1), rules.CASH_OUT)
        assert "tidak dapat ditarik tunai" in text


@pytest.mark.parametrize("price_idr", [0, -50_000])
def test_a_good_with_zero_or_negative_price_is_refused_as_cash_out(price_idr: int) -> None:
    product = Product("IKN-X", "Ikan asin", PROTEIN_HEWANI, "kg", price_idr, 40_000)
    refused(add(Cart(), product, 1), rules.CASH_OUT)


def test_a_hand_built_cart_line_with_a_negative_price_is_refused_before_payment() -> None:
    """A negative line would lower the total below the goods' value: the difference as cash."""
    cart = Cart((CartLine("BRS-MED", "Beras medium", "kg", 10, 13_000), CartLine("BRS-MED2", "Kembalian", "kg", 1, -30_000)))
    refused(cart_refusal(cart, PRODUCTS, {"BRS-MED": PLENTY}), rules.CASH_OUT)


def test_a_hand_built_cart_at_a_price_other_than_the_shelf_price_is_refused() -> None:
    cart = Cart((CartLine("BRS-MED", "Beras medium", "kg", 1, 20_000),))  # Rp7.000 hidden cash
    refused(cart_refusal(cart, PRODUCTS, {"BRS-MED": PLENTY}), rules.PRICE_CHANGED)


def test_a_cart_checked_again_before_payment() -> None:
    cart = cart_of((BERAS, 5), (TELUR, 10))
    assert cart_refusal(cart, PRODUCTS, {"BRS-MED": 5, "TLR-AYM": 10}) is None
    refused(cart_refusal(cart, PRODUCTS, {"BRS-MED": 4, "TLR-AYM": 10}), rules.STOCK)
    refused(cart_refusal(Cart(), PRODUCTS, {}), rules.EMPTY)
    refused(cart_refusal(cart, {"BRS-MED": BERAS}, {"BRS-MED": 5}), rules.UNKNOWN_PRODUCT)
    twice = Cart((*cart.lines, cart.lines[0]))
    refused(cart_refusal(twice, PRODUCTS, {"BRS-MED": PLENTY, "TLR-AYM": PLENTY}), rules.QUANTITY)
    forbidden = Cart((CartLine("GULA", "Gula pasir", "kg", 1, 17_500),))
    refused(cart_refusal(forbidden, PRODUCTS, {"GULA": PLENTY}), rules.FORBIDDEN)


def test_changing_a_quantity_checks_stock_and_balance_again() -> None:
    cart = cart_of((BERAS, 5), (TELUR, 10))
    smaller = set_quantity(cart, BERAS, 2, stock_qty=PLENTY, balance_idr=BALANCE_IDR)
    assert isinstance(smaller, Cart) and smaller.qty_of("BRS-MED") == 2 and smaller.total_idr == 46_000
    refused(set_quantity(cart, BERAS, 8, stock_qty=7, balance_idr=BALANCE_IDR), rules.STOCK)
    text = refused(set_quantity(cart, BERAS, 11, stock_qty=PLENTY, balance_idr=BALANCE_IDR), rules.BALANCE)
    assert "sisa yang masih bisa dibelanjakan Rp130.000" in text  # balance less the other lines
    refused(set_quantity(cart, BERAS, 0, stock_qty=PLENTY, balance_idr=BALANCE_IDR), rules.QUANTITY)
    refused(set_quantity(cart, PRODUCTS["TEMPE"], 1, stock_qty=PLENTY, balance_idr=BALANCE_IDR), rules.NOT_IN_CART)


def test_removing_a_line() -> None:
    cart = cart_of((BERAS, 5), (TELUR, 10))
    after = remove_item(cart, "BRS-MED")
    assert isinstance(after, Cart) and [l.sku for l in after.lines] == ["TLR-AYM"] and after.total_idr == 20_000
    refused(remove_item(after, "BRS-MED"), rules.NOT_IN_CART)


def test_a_cart_holds_a_limited_number_of_goods() -> None:
    cart = Cart(tuple(CartLine(f"SKU{i}", f"Barang {i}", "kg", 1, 1_000) for i in range(rules.LINES_MAX)))
    refused(add(cart, BERAS, 1), rules.CART_FULL)


def test_no_sequence_of_rule_calls_makes_a_total_above_the_goods_value() -> None:
    """Whatever is added, changed or removed, the total is the sum of qty x shelf price."""
    cart = Cart()
    for product, qty in [(BERAS, 3), (TELUR, 7), (PRODUCTS["GULA"], 1), (BERAS, -2), (TELUR, 0), (PRODUCTS["TEMPE"], 2)]:
        result = add(cart, product, qty)
        cart = result if isinstance(result, Cart) else cart
    assert cart.total_idr == sum(line.qty * PRODUCTS[line.sku].price_idr for line in cart.lines) == 3 * 13_000 + 7 * 2_000 + 2 * 5_000
