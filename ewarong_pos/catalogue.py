"""What an e-Warong may sell to a KPM: the Pedoman Umum's four food groups, forbidden goods with
their reasons, the `Product` record and the demo catalogue every demo e-Warong starts with.

Prices are integer rupiah. `het_idr` is the Harga Eceran Tertinggi (highest retail price) the
shop must not exceed; the demo prices are those of a shop in Jawa Barat in 2026.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.money import AMOUNT_IDR_MAX

KARBOHIDRAT = "karbohidrat"
PROTEIN_HEWANI = "protein hewani"
PROTEIN_NABATI = "protein nabati"
VITAMIN_MINERAL = "vitamin dan mineral"
FOOD_GROUPS: tuple[str, ...] = (KARBOHIDRAT, PROTEIN_HEWANI, PROTEIN_NABATI, VITAMIN_MINERAL)
# Goods a shop keeps in its general stock that are not one of the four groups.
OTHER_GROUP = "lainnya"
GROUPS: tuple[str, ...] = (*FOOD_GROUPS, OTHER_GROUP)

# The foods the Pedoman names for each group.
GROUP_FOODS: dict[str, tuple[str, ...]] = {
    KARBOHIDRAT: ("beras", "jagung pipilan", "sagu"),
    PROTEIN_HEWANI: ("telur ayam", "daging sapi", "daging ayam", "ikan"),
    PROTEIN_NABATI: ("kacang hijau", "kacang tanah", "tempe", "tahu"),
    VITAMIN_MINERAL: ("sayur-mayur", "buah-buahan"),
}

UNITS: tuple[str, ...] = ("kg", "butir", "ikat", "papan", "potong", "liter", "ekor", "sisir", "buah", "bungkus")

# Forbidden goods: the name as the Pedoman lists it, the words that identify it in a product
# name, and the reason the cashier reads out.
FORBIDDEN_GOODS: dict[str, tuple[tuple[str, ...], str]] = {
    "gula": (("gula",), "gula bukan bahan pangan bergizi yang diperbolehkan Pedoman Umum Sembako"),
    "tepung terigu": (("terigu",), "tepung terigu tidak termasuk bahan pangan Program Sembako"),
    "minyak goreng": (("minyak goreng", "minyakita"), "minyak goreng tidak termasuk bahan pangan Program Sembako"),
    "mie instan": (("mie instan", "mi instan", "indomie"), "mie instan adalah pangan olahan, bukan bahan pangan segar"),
    "makanan kaleng": (("kaleng", "sarden", "kornet"), "makanan kaleng adalah pangan olahan pabrikan"),
    "MP-ASI pabrikan": (("mp-asi", "mpasi", "bubur bayi instan"), "MP-ASI pabrikan tidak boleh dibeli; pilih bahan pangan segar"),
    "rokok": (("rokok", "kretek"), "rokok dilarang dibeli dengan dana bantuan sosial"),
    "minuman keras": (("minuman keras", "miras", "tuak"), "minuman keras dilarang dibeli dengan dana bantuan sosial"),
    "pulsa": (("pulsa", "paket data", "token listrik"), "pulsa bukan bahan pangan"),
}

# Anything that hands out money instead of food. Refused in every form.
CASH_WORDS: tuple[str, ...] = ("tunai", "uang", "cash", "saldo", "voucher", "transfer")
CASH_OUT_REASON = "dana bantuan Sembako tidak dapat ditarik tunai dalam bentuk apa pun"

SKU_PATTERN = re.compile(r"[A-Z0-9][A-Z0-9-]{0,15}")
NAME_LEN_MAX = 60
REASON_LEN_MAX = 200


@dataclass(frozen=True, slots=True)
class Product:
    """A good on an e-Warong's shelf. Forbidden goods may be stocked but not sold to a KPM."""

    sku: str
    name: str
    group: str
    unit: str
    price_idr: int
    het_idr: int
    forbidden_reason: str | None = None

    def __post_init__(self) -> None:
        if not SKU_PATTERN.fullmatch(self.sku):
            raise ValueError(f"sku must be 1-16 capitals, digits or '-': {self.sku!r}")
        if not 0 < len(self.name) <= NAME_LEN_MAX:
            raise ValueError(f"name must be 1-{NAME_LEN_MAX} characters: {self.name!r}")
        if self.group not in GROUPS:
            raise ValueError(f"group must be one of {GROUPS}: {self.group!r}")
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}: {self.unit!r}")
        # Prices are whole rupiah. A zero or negative price can be written down (a shop's own
        # stock list may hold one) and is refused by the cart rules, never sold.
        for label, value in (("price_idr", self.price_idr), ("het_idr", self.het_idr)):
            if type(value) is not int or abs(value) > AMOUNT_IDR_MAX:
                raise ValueError(f"{label} must be an integer number of rupiah: {value!r}")
        if self.forbidden_reason is not None and not 0 < len(self.forbidden_reason) <= REASON_LEN_MAX:
            raise ValueError("forbidden_reason must be 1-200 characters or None")


def forbidden_reason(product: Product) -> str | None:
    """Why `product` may not be sold to a KPM as a forbidden good, or None.

    The shop's own flag wins; an unflagged product whose name names a forbidden good is
    refused too, so a shop that forgot to flag "Gula pasir" still cannot sell it."""
    if product.forbidden_reason:
        return product.forbidden_reason
    name = product.name.lower()
    for words, reason in FORBIDDEN_GOODS.values():
        if any(word in name for word in words):
            return reason
    return None


def is_cash_like(product: Product) -> bool:
    """True for anything that gives out money (tarik tunai, saldo, voucher...), not food."""
    text = f"{product.name} {product.sku}".lower()
    return any(word in text for word in CASH_WORDS)


def _forbidden(sku: str, name: str, unit: str, price_idr: int, het_idr: int, good: str) -> Product:
    return Product(sku, name, OTHER_GROUP, unit, price_idr, het_idr, forbidden_reason=FORBIDDEN_GOODS[good][1])


# Demo catalogue with opening stock (same on every machine). Beras medium follows the Bapanas
# HET for Zona 1 (Rp13.500/kg); the other caps are the local Dinas reference prices.
DEMO_STOCK: tuple[tuple[Product, int], ...] = (
    (Product("BRS-MED", "Beras medium", KARBOHIDRAT, "kg", 13_000, 13_500), 800),
    (Product("BRS-PRM", "Beras premium", KARBOHIDRAT, "kg", 14_900, 14_900), 300),
    (Product("JGG-PPL", "Jagung pipilan", KARBOHIDRAT, "kg", 7_000, 7_500), 100),
    (Product("SAGU", "Sagu", KARBOHIDRAT, "kg", 12_000, 13_000), 50),
    (Product("TLR-AYM", "Telur ayam ras", PROTEIN_HEWANI, "butir", 2_000, 2_100), 1_500),
    (Product("DGG-SPI", "Daging sapi", PROTEIN_HEWANI, "kg", 135_000, 140_000), 20),
    (Product("DGG-AYM", "Daging ayam ras", PROTEIN_HEWANI, "kg", 38_000, 40_000), 60),
    (Product("IKN-BDG", "Ikan bandeng", PROTEIN_HEWANI, "kg", 35_000, 38_000), 40),
    (Product("IKN-KMB", "Ikan kembung", PROTEIN_HEWANI, "kg", 40_000, 42_000), 30),
    (Product("KCG-HJU", "Kacang hijau", PROTEIN_NABATI, "kg", 22_000, 24_000), 60),
    (Product("KCG-TNH", "Kacang tanah", PROTEIN_NABATI, "kg", 30_000, 32_000), 40),
    (Product("TEMPE", "Tempe", PROTEIN_NABATI, "papan", 5_000, 6_000), 150),
    (Product("TAHU", "Tahu putih", PROTEIN_NABATI, "potong", 1_000, 1_200), 400),
    (Product("SYR-BYM", "Bayam", VITAMIN_MINERAL, "ikat", 3_000, 3_500), 120),
    (Product("SYR-KGK", "Kangkung", VITAMIN_MINERAL, "ikat", 3_000, 3_500), 120),
    (Product("SYR-WRT", "Wortel", VITAMIN_MINERAL, "kg", 14_000, 15_000), 50),
    (Product("BUA-PSG", "Pisang ambon", VITAMIN_MINERAL, "sisir", 20_000, 22_000), 40),
    (Product("BUA-JRK", "Jeruk siam", VITAMIN_MINERAL, "kg", 25_000, 28_000), 40),
    # General stock of the shop, not for KPM: kept here so the refusals can be shown.
    (_forbidden("GULA", "Gula pasir", "kg", 17_500, 18_000, "gula"), 100),
    (_forbidden("MNY-GRG", "Minyak goreng", "liter", 15_700, 15_700, "minyak goreng"), 100),
)
DEMO_PRODUCTS: tuple[Product, ...] = tuple(product for product, _ in DEMO_STOCK)

assert len({p.sku for p in DEMO_PRODUCTS}) == len(DEMO_PRODUCTS), "demo SKUs must be unique"
assert all(p.price_idr <= p.het_idr for p in DEMO_PRODUCTS), "demo prices respect their HET"
assert {p.group for p in DEMO_PRODUCTS if p.forbidden_reason is None} == set(FOOD_GROUPS)
assert not any(is_cash_like(p) for p in DEMO_PRODUCTS), "no demo good reads as cash"
