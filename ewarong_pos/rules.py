"""The cart rules of an e-Warong, as pure functions: state in, a new cart or a `Refusal` out.

Nothing here reads a clock, a file or a database. A refusal is a value carrying the reason the
cashier reads to the KPM, in Bahasa Indonesia. The rules together make a cash-out impossible:
every line is a food good at a positive price no higher than its HET, so a cart total is
always exactly the value of the goods in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from ewarong_pos.catalogue import CASH_OUT_REASON, FOOD_GROUPS, Product, forbidden_reason, is_cash_like
from shared.money import AMOUNT_IDR_MAX, format_idr

LINES_MAX = 30  # distinct goods in one cart
QTY_MAX = 1_000  # units of one good in one cart

# Refusal codes, for the UI and tests; the reason is what the cashier reads.
QUANTITY = "quantity"
FORBIDDEN = "forbidden"
CASH_OUT = "cash_out"
NOT_FOOD = "not_food"
ABOVE_HET = "above_het"
STOCK = "stock"
BALANCE = "balance"
NOT_IN_CART = "not_in_cart"
CART_FULL = "cart_full"
EMPTY = "empty"
PRICE_CHANGED = "price_changed"
UNKNOWN_PRODUCT = "unknown_product"


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class CartLine:
    sku: str
    name: str
    unit: str
    qty: int
    price_idr: int

    @property
    def amount_idr(self) -> int:
        return self.qty * self.price_idr

    @classmethod
    def of(cls, product: Product, qty: int) -> CartLine:
        return cls(product.sku, product.name, product.unit, qty, product.price_idr)


@dataclass(frozen=True, slots=True)
class Cart:
    lines: tuple[CartLine, ...] = ()

    @property
    def total_idr(self) -> int:
        return cart_total_idr(self)

    def line(self, sku: str) -> CartLine | None:
        return next((line for line in self.lines if line.sku == sku), None)

    def qty_of(self, sku: str) -> int:
        line = self.line(sku)
        return line.qty if line else 0


Decision = Cart | Refusal


def cart_total_idr(cart: Cart) -> int:
    """What the KPM pays: the sum of quantity x price over the lines."""
    return sum(line.amount_idr for line in cart.lines)


def _is_count(value: object) -> bool:
    return type(value) is int


def quantity_refusal(qty: object) -> Refusal | None:
    if not _is_count(qty) or not 0 < qty <= QTY_MAX:  # type: ignore[operator]
        return Refusal(QUANTITY, f"Jumlah harus bilangan bulat 1 sampai {QTY_MAX}, bukan {qty!r}.")
    return None


def product_refusal(product: Product) -> Refusal | None:
    """Why this good can never be sold to a KPM (whatever the quantity), or None."""
    if is_cash_like(product) or product.price_idr <= 0:
        return Refusal(CASH_OUT, f"{product.name} ditolak: {CASH_OUT_REASON}.")
    reason = forbidden_reason(product)
    if reason:
        return Refusal(FORBIDDEN, f"{product.name} tidak boleh dibeli dengan dana Sembako: {reason}.")
    if product.group not in FOOD_GROUPS:
        return Refusal(NOT_FOOD, f"{product.name} bukan bahan pangan Program Sembako.")
    if product.price_idr > product.het_idr:
        return Refusal(
            ABOVE_HET,
            f"Harga {product.name} {format_idr(product.price_idr)}/{product.unit} melebihi "
            f"HET {format_idr(product.het_idr)}/{product.unit}; barang tidak boleh dijual di atas HET.",
        )
    return None


def stock_refusal(product: Product, qty_in_cart: int, stock_qty: int) -> Refusal | None:
    """The cart would hold `qty_in_cart` of the good; the shop has `stock_qty` available."""
    if qty_in_cart > stock_qty:
        available = max(stock_qty, 0)
        return Refusal(
            STOCK,
            f"Stok {product.name} tidak cukup: tersedia {available} {product.unit}, "
            f"diminta {qty_in_cart} {product.unit} (termasuk yang sudah di keranjang).",
        )
    return None


def balance_refusal(cart_total_idr_before: int, new_total_idr: int, balance_idr: int) -> Refusal | None:
    """The cart total may not exceed the balance just read from the card."""
    if new_total_idr > balance_idr:
        left_idr = max(balance_idr - cart_total_idr_before, 0)
        return Refusal(
            BALANCE,
            f"Saldo kartu tidak cukup: total belanja menjadi {format_idr(new_total_idr)}, saldo "
            f"{format_idr(balance_idr)}; sisa yang masih bisa dibelanjakan {format_idr(left_idr)}.",
        )
    return None


def _balance_error(balance_idr: object) -> Refusal | None:
    if not _is_count(balance_idr) or not 0 <= balance_idr <= AMOUNT_IDR_MAX:  # type: ignore[operator]
        return Refusal(BALANCE, "Saldo kartu belum terbaca; lakukan cek saldo dulu.")
    return None


def add_item(cart: Cart, product: Product, qty: int, *, stock_qty: int, balance_idr: int) -> Decision:
    """Put `qty` units of `product` in the cart (merged with a line of the same good)."""
    refusal = quantity_refusal(qty) or product_refusal(product) or _balance_error(balance_idr)
    if refusal:
        return refusal
    existing = cart.line(product.sku)
    if existing is None and len(cart.lines) >= LINES_MAX:
        return Refusal(CART_FULL, f"Keranjang penuh: paling banyak {LINES_MAX} jenis barang.")
    if existing is not None and existing.price_idr != product.price_idr:
        return Refusal(PRICE_CHANGED, f"Harga {product.name} berubah; hapus barisnya lalu tambahkan lagi.")
    new_qty = qty + (existing.qty if existing else 0)
    refusal = quantity_refusal(new_qty) or stock_refusal(product, new_qty, stock_qty)
    refusal = refusal or balance_refusal(cart.total_idr, cart.total_idr + qty * product.price_idr, balance_idr)
    if refusal:
        return refusal
    if existing is None:
        return Cart((*cart.lines, CartLine.of(product, qty)))
    return _with_line(cart, replace(existing, qty=new_qty))


def set_quantity(cart: Cart, product: Product, qty: int, *, stock_qty: int, balance_idr: int) -> Decision:
    """Change the quantity of a line already in the cart (use `remove_item` to take it out)."""
    existing = cart.line(product.sku)
    if existing is None:
        return Refusal(NOT_IN_CART, f"{product.name} tidak ada di keranjang.")
    refusal = quantity_refusal(qty) or product_refusal(product) or _balance_error(balance_idr)
    if refusal:
        return refusal
    if existing.price_idr != product.price_idr:
        return Refusal(PRICE_CHANGED, f"Harga {product.name} berubah; hapus barisnya lalu tambahkan lagi.")
    new_total = cart.total_idr + (qty - existing.qty) * existing.price_idr
    refusal = stock_refusal(product, qty, stock_qty)
    refusal = refusal or balance_refusal(cart.total_idr - existing.amount_idr, new_total, balance_idr)
    return refusal or _with_line(cart, replace(existing, qty=qty))


def remove_item(cart: Cart, sku: str) -> Decision:
    if cart.line(sku) is None:
        return Refusal(NOT_IN_CART, f"Barang {sku} tidak ada di keranjang.")
    return Cart(tuple(line for line in cart.lines if line.sku != sku))


def _with_line(cart: Cart, new_line: CartLine) -> Cart:
    return Cart(tuple(new_line if line.sku == new_line.sku else line for line in cart.lines))


def cart_refusal(cart: Cart, products: Mapping[str, Product], stock: Mapping[str, int]) -> Refusal | None:
    """Check a whole cart again just before payment: every line a sellable good at today's
    price, quantities within the stock available, no duplicate lines, a positive total.

    A cart built by hand (not through `add_item`) gets the same checks here."""
    if not cart.lines:
        return Refusal(EMPTY, "Keranjang kosong.")
    if len(cart.lines) > LINES_MAX:
        return Refusal(CART_FULL, f"Keranjang penuh: paling banyak {LINES_MAX} jenis barang.")
    if len({line.sku for line in cart.lines}) != len(cart.lines):
        return Refusal(QUANTITY, "Satu barang tercatat di lebih dari satu baris keranjang.")
    for line in cart.lines:
        refusal = _line_refusal(line, products.get(line.sku), stock.get(line.sku, 0))
        if refusal:
            return refusal
    if not 0 < cart.total_idr <= AMOUNT_IDR_MAX:
        return Refusal(QUANTITY, f"Total belanja tidak sah: {format_idr(cart.total_idr)}.")
    return None


def _line_refusal(line: CartLine, product: Product | None, stock_qty: int) -> Refusal | None:
    if not _is_count(line.price_idr) or line.price_idr <= 0:
        return Refusal(CASH_OUT, f"{line.name} ditolak: harga harus lebih dari Rp0; {CASH_OUT_REASON}.")
    if product is None:
        return Refusal(UNKNOWN_PRODUCT, f"Barang {line.sku} tidak dijual di e-Warong ini.")
    refusal = quantity_refusal(line.qty) or product_refusal(product)
    if refusal:
        return refusal
    if line.price_idr != product.price_idr:
        return Refusal(PRICE_CHANGED, f"Harga {product.name} berubah; hapus barisnya lalu tambahkan lagi.")
    return stock_refusal(product, line.qty, stock_qty)
