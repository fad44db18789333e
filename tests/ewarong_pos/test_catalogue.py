"""The demo shelf follows the Pedoman: four food groups, prices within HET, forbidden goods
flagged with a reason, and a product record that only holds whole rupiah."""

from __future__ import annotations

import pytest

from ewarong_pos.catalogue import (
    DEMO_PRODUCTS,
    DEMO_STOCK,
    FOOD_GROUPS,
    FORBIDDEN_GOODS,
    GROUP_FOODS,
    KARBOHIDRAT,
    OTHER_GROUP,
    Product,
    forbidden_reason,
    is_cash_like,
)


def test_the_pedoman_names_four_food_groups() -> None:
    assert FOOD_GROUPS == ("karbohidrat", "protein hewani", "protein nabati", "vitamin dan mineral")
    assert GROUP_FOODS["karbohidrat"] == ("beras", "jagung pipilan", "sagu")
    assert set(FORBIDDEN_GOODS) == {
        "gula", "tepung terigu", "minyak goreng", "mie instan", "makanan kaleng",
        "MP-ASI pabrikan", "rokok", "minuman keras", "pulsa",
    }  # fmt: skip


def test_demo_shelf_has_every_group_priced_within_het() -> None:
    food = [p for p in DEMO_PRODUCTS if forbidden_reason(p) is None]
    assert {p.group for p in food} == set(FOOD_GROUPS)
    assert all(0 < p.price_idr <= p.het_idr for p in DEMO_PRODUCTS)
    assert all(type(p.price_idr) is int and type(p.het_idr) is int for p in DEMO_PRODUCTS)
    assert all(qty > 0 for _, qty in DEMO_STOCK)


def test_beras_and_telur_cost_what_they_cost_in_2026() -> None:
    by_sku = {p.sku: p for p in DEMO_PRODUCTS}
    assert (by_sku["BRS-MED"].price_idr, by_sku["BRS-MED"].het_idr, by_sku["BRS-MED"].unit) == (13_000, 13_500, "kg")
    assert (by_sku["TLR-AYM"].price_idr, by_sku["TLR-AYM"].unit) == (2_000, "butir")


def test_the_shop_stocks_forbidden_goods_flagged_with_a_reason() -> None:
    flagged = [p for p in DEMO_PRODUCTS if p.forbidden_reason]
    assert {p.sku for p in flagged} == {"GULA", "MNY-GRG"}
    assert all(p.group == OTHER_GROUP for p in flagged)


@pytest.mark.parametrize(
    ("name", "good"),
    [("Gula pasir", "gula"), ("Tepung terigu serbaguna", "tepung terigu"), ("Mie instan goreng", "mie instan"),
     ("Sarden kaleng", "makanan kaleng"), ("Rokok kretek", "rokok"), ("Pulsa 10 ribu", "pulsa")],
)  # fmt: skip
def test_an_unflagged_forbidden_good_is_recognised_by_its_name(name: str, good: str) -> None:
    product = Product("X1", name, KARBOHIDRAT, "bungkus", 5_000, 6_000)
    assert forbidden_reason(product) == FORBIDDEN_GOODS[good][1]


def test_cash_in_any_wording_is_recognised() -> None:
    for name in ("Tarik tunai", "Uang kembalian", "Cash out", "Top up saldo"):
        assert is_cash_like(Product("CASH", name, OTHER_GROUP, "buah", 50_000, 50_000)), name
    assert not any(is_cash_like(p) for p in DEMO_PRODUCTS)


@pytest.mark.parametrize(
    "change",
    [{"price_idr": 13_000.0}, {"price_idr": True}, {"het_idr": "13500"}, {"sku": "beras"}, {"group": "snack"},
     {"unit": "karung"}, {"name": ""}, {"price_idr": 10**13}],
)  # fmt: skip
def test_a_product_holds_whole_rupiah_and_known_words_only(change: dict) -> None:
    fields = {"sku": "BRS", "name": "Beras", "group": KARBOHIDRAT, "unit": "kg", "price_idr": 13_000, "het_idr": 13_500}
    with pytest.raises(ValueError):
        Product(**{**fields, **change})
