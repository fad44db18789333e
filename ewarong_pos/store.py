"""The e-Warong's books: products, stock movements, payments and sales.

Everything is appended. Stock is the sum of a shop's stock movements; what a cart may take is
that stock less the goods of payments still open (sent to the EDC, answer not yet written), so
two terminals of one shop can never sell the same last kilo. Every write of a shop runs under
the shop's lock (its `ewarongs` row `FOR UPDATE` on PostgreSQL; the write lock on SQLite).

Payment life: `begin_payment` (cart frozen, before the amount goes to the EDC) ->
`payment_sent` (STAN) -> `complete_payment` (sale + stock out, one transaction) or
`fail_payment` / `cancel_payment`. After a crash, `recover` settles what is still open. A sale
the EDC voids afterwards (PEMBATALAN) gets `void_sale`: a void row and its goods back in stock.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, Row, and_, exists, func, insert, select
from sqlalchemy.exc import IntegrityError

from ewarong_pos import migrate, rules
from ewarong_pos.catalogue import DEMO_STOCK, Product
from ewarong_pos.demo import DEMO_OPENED_AT, demo_ewarong, demo_shop_name
from ewarong_pos.recovery import Abandon, ApprovedPurchase, OpenPayment, RecoverAsSale, plan_recovery
from ewarong_pos.report import SALES_PER_REPORT_MAX, DailyReport, SaleRecord, build_report
from ewarong_pos.rules import Cart, CartLine, Refusal
from ewarong_pos.settings import ShopSettings
from ewarong_pos.tables import (
    ABANDONED,
    APPROVED,
    DECLINED,
    RECEIPT,
    REVERSED,
    SALE,
    SENT,
    VOID,
    ewarongs,
    payment_events,
    payments,
    products,
    sale_voids,
    sales,
    stock_movements,
)
from shared.clock import WIB, Clock, SystemClock
from shared.db import Database, sqlite_url
from shared.money import format_idr

log = logging.getLogger(__name__)

RECEIPT_QTY_MAX = 100_000
OPEN_PER_TERMINAL_MAX = 1  # an EDC handles one purchase at a time
REASON_LEN_MAX = 200

PAYMENT_OPEN = "payment_open"  # refusal code: the terminal still has a payment in progress

_TID = re.compile(r"[A-Z0-9]{8}")
_STAN = re.compile(r"\d{6}")
_RRN = re.compile(r"[A-Za-z0-9]{12}")
_APPROVAL = re.compile(r"[A-Za-z0-9 ]{1,6}")
_RC = re.compile(r"[A-Za-z0-9]{2}")
_MASKED_PAN = re.compile(r"\d{6}\*{3,9}\d{4}")
_PAN = re.compile(r"\d{13,19}")


class ShopError(ValueError):
    """A request the shop's books refuse; the message is for the cashier (Indonesian)."""


class UnknownEwarong(ShopError):
    pass


class PaymentStateError(ShopError):
    pass


class StockInvariantError(RuntimeError):
    """Stock would go below zero. Cannot happen while carts go through `begin_payment`."""


@dataclass(frozen=True, slots=True)
class Payment:
    id: int
    ewarong_id: str
    terminal_id: str
    amount_idr: int
    lines: tuple[CartLine, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Sale:
    id: int
    ewarong_id: str
    terminal_id: str
    payment_id: int | None
    rrn: str
    stan: str
    approval_code: str
    pan_masked: str
    amount_idr: int
    at: datetime
    lines: tuple[CartLine, ...]


@dataclass(frozen=True, slots=True)
class RecoveryResult:
    sales: tuple[Sale, ...]
    abandoned: tuple[int, ...]
    messages: tuple[str, ...]  # for the cashier, one per payment settled


def database_for(settings: ShopSettings) -> Database:
    """The shop's own database: `<data_dir>/ewarong.sqlite3`, or its schema on PostgreSQL."""
    url = settings.database_url or sqlite_url(settings.data_dir, "ewarong")
    return Database(url, schema=settings.db_schema, pool_size=settings.db_pool_size)


def to_wib(moment: datetime) -> datetime:
    """Business time is naive WIB; an aware datetime is converted."""
    return moment.astimezone(WIB).replace(tzinfo=None) if moment.tzinfo else moment


# -- row <-> value helpers ----------------------------------------------------------------------


def lines_to_json(lines: Iterable[CartLine]) -> list[dict]:
    return [{"sku": l.sku, "name": l.name, "unit": l.unit, "qty": l.qty, "price_idr": l.price_idr} for l in lines]


def lines_from_json(data: list[dict]) -> tuple[CartLine, ...]:
    return tuple(CartLine(d["sku"], d["name"], d["unit"], int(d["qty"]), int(d["price_idr"])) for d in data)


def _product(row: Row) -> Product:
    return Product(row.sku, row.name, row.food_group, row.unit, row.price_idr, row.het_idr, row.forbidden_reason)


def _payment(row: Row) -> Payment:
    return Payment(row.id, row.ewarong_id, row.terminal_id, row.amount_idr, lines_from_json(row.lines), row.created_at)


def _sale(row: Row) -> Sale:
    return Sale(
        row.id, row.ewarong_id, row.terminal_id, row.payment_id, row.rrn, row.stan, row.approval_code,
        row.pan_masked, row.amount_idr, row.at, lines_from_json(row.lines),
    )  # fmt: skip


# -- queries ------------------------------------------------------------------------------------


def _closed(payment_id_column):  # noqa: ANN001, ANN202
    return exists().where(payment_events.c.payment_id == payment_id_column, payment_events.c.status != SENT)


def _latest_stan():  # noqa: ANN202
    return (
        select(payment_events.c.stan)
        .where(payment_events.c.payment_id == payments.c.id, payment_events.c.status == SENT)
        .order_by(payment_events.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def _open_payments_query(*criteria):  # noqa: ANN002, ANN202
    return (
        select(payments, _latest_stan().label("stan"))
        .where(*criteria, ~_closed(payments.c.id))
        .order_by(payments.c.id)
        .limit(1_000)
    )


def _on_hand(conn: Connection, ewarong_id: str) -> dict[str, int]:
    query = (
        select(stock_movements.c.sku, func.sum(stock_movements.c.qty_delta))
        .where(stock_movements.c.ewarong_id == ewarong_id)
        .group_by(stock_movements.c.sku)
    )
    return {sku: int(qty) for sku, qty in conn.execute(query)}


def _reserved(conn: Connection, ewarong_id: str) -> Counter[str]:
    reserved: Counter[str] = Counter()
    for row in conn.execute(_open_payments_query(payments.c.ewarong_id == ewarong_id)):
        for line in lines_from_json(row.lines):
            reserved[line.sku] += line.qty
    return reserved


def _available(conn: Connection, ewarong_id: str) -> dict[str, int]:
    on_hand = _on_hand(conn, ewarong_id)
    reserved = _reserved(conn, ewarong_id)
    return {sku: on_hand.get(sku, 0) - reserved.get(sku, 0) for sku in on_hand.keys() | reserved.keys()}


def _products(conn: Connection, ewarong_id: str) -> dict[str, Product]:
    rows = conn.execute(select(products).where(products.c.ewarong_id == ewarong_id).order_by(products.c.sku))
    return {row.sku: _product(row) for row in rows}


def _lock_shop(conn: Connection, ewarong_id: str) -> None:
    """Serialise the shop's writes (row lock on PostgreSQL; SQLite holds the write lock)."""
    query = select(ewarongs.c.id).where(ewarongs.c.id == ewarong_id).with_for_update()
    if conn.execute(query).one_or_none() is None:
        raise UnknownEwarong(f"e-Warong {ewarong_id} tidak dikenal")


def _closing_status(conn: Connection, payment_id: int) -> str | None:
    query = select(payment_events.c.status).where(
        payment_events.c.payment_id == payment_id, payment_events.c.status != SENT
    )
    return conn.execute(query).scalar_one_or_none()


def _sale_by(conn: Connection, *criteria) -> Sale | None:  # noqa: ANN002
    row = conn.execute(select(sales).where(*criteria)).one_or_none()
    return _sale(row) if row else None


# -- argument checks ----------------------------------------------------------------------------


def _check(pattern: re.Pattern[str], value: object, label: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ShopError(f"{label} tidak sah: {value!r}")
    return value


def _check_masked_pan(pan_masked: str) -> str:
    """Only a masked PAN (first 6, last 4) is ever stored."""
    if not isinstance(pan_masked, str) or not _MASKED_PAN.fullmatch(pan_masked):
        raise ShopError("Nomor kartu harus disimpan dalam bentuk tersamar (6 digit awal, 4 digit akhir)")
    return pan_masked


class ShopStore:
    """The books of the e-Warongs kept on this machine (one database, many shops)."""

    def __init__(self, db: Database, clock: Clock, card_ref_key: bytes) -> None:
        assert len(card_ref_key) >= 16, "the card reference key must be at least 128 bits"
        self.db = db
        self.clock = clock
        self._card_ref_key = card_ref_key

    @classmethod
    def open(cls, settings: ShopSettings, clock: Clock | None = None) -> ShopStore:
        """Open the database and bring its schema to head."""
        db = database_for(settings)
        migrate.upgrade(db)
        return cls(db, clock or SystemClock(), settings.card_ref_key)

    def close(self) -> None:
        self.db.dispose()

    # -- shops, products, stock --------------------------------------------------------------------

    def is_known(self, ewarong_id: str) -> bool:
        with self.db.read() as conn:
            return conn.execute(select(ewarongs.c.id).where(ewarongs.c.id == ewarong_id)).first() is not None

    def ensure_demo(self, ewarong_id: str) -> bool:
        """Seed a demo e-Warong with the demo catalogue and opening stock, once.

        True when this call seeded it; False when it was there already."""
        found = demo_ewarong(ewarong_id)
        if found is None:
            raise UnknownEwarong(f"e-Warong {ewarong_id} bukan e-Warong demo")
        if self.is_known(ewarong_id):
            return False
        bank, serial = found
        try:
            with self.db.begin() as conn:
                if conn.execute(select(ewarongs.c.id).where(ewarongs.c.id == ewarong_id)).first():
                    return False
                conn.execute(insert(ewarongs).values(id=ewarong_id, bank_code=bank.code, name=demo_shop_name(bank, serial), opened_at=DEMO_OPENED_AT))
                self._seed_stock(conn, ewarong_id)
        except IntegrityError:  # another process seeded it between our check and our insert
            return False
        log.info("seeded demo e-Warong %s", ewarong_id)
        return True

    def _seed_stock(self, conn: Connection, ewarong_id: str) -> None:
        conn.execute(insert(products), [self._product_row(ewarong_id, p, DEMO_OPENED_AT) for p, _ in DEMO_STOCK])
        receipts = [{"ewarong_id": ewarong_id, "sku": p.sku, "qty_delta": q, "kind": RECEIPT, "sale_id": None, "at": DEMO_OPENED_AT} for p, q in DEMO_STOCK]
        conn.execute(insert(stock_movements), receipts)

    @staticmethod
    def _product_row(ewarong_id: str, p: Product, at: datetime) -> dict:
        return {
            "ewarong_id": ewarong_id, "sku": p.sku, "name": p.name, "food_group": p.group, "unit": p.unit,
            "price_idr": p.price_idr, "het_idr": p.het_idr, "forbidden_reason": p.forbidden_reason, "added_at": at,
        }  # fmt: skip

    def shop_name(self, ewarong_id: str) -> str:
        with self.db.read() as conn:
            name = conn.execute(select(ewarongs.c.name).where(ewarongs.c.id == ewarong_id)).scalar_one_or_none()
        if name is None:
            raise UnknownEwarong(f"e-Warong {ewarong_id} tidak dikenal")
        return name

    def products(self, ewarong_id: str) -> tuple[Product, ...]:
        """Every good the shop lists, forbidden ones included (flagged), by SKU."""
        with self.db.read() as conn:
            return tuple(_products(conn, ewarong_id).values())

    def product(self, ewarong_id: str, sku: str) -> Product | None:
        with self.db.read() as conn:
            row = conn.execute(select(products).where(products.c.ewarong_id == ewarong_id, products.c.sku == sku)).one_or_none()
        return _product(row) if row else None

    def stock(self, ewarong_id: str) -> dict[str, int]:
        """Goods on the shelf per SKU: the sum of the shop's stock movements."""
        with self.db.read() as conn:
            return _on_hand(conn, ewarong_id)

    def available(self, ewarong_id: str) -> dict[str, int]:
        """What a new cart may take per SKU: stock less the goods of open payments."""
        with self.db.read() as conn:
            return _available(conn, ewarong_id)

    def receive_goods(self, ewarong_id: str, sku: str, qty: int) -> None:
        """Goods delivered to the shop: a receipt movement is appended."""
        if type(qty) is not int or not 0 < qty <= RECEIPT_QTY_MAX:
            raise ShopError(f"Jumlah barang masuk harus 1 sampai {RECEIPT_QTY_MAX}, bukan {qty!r}")
        with self.db.begin() as conn:
            _lock_shop(conn, ewarong_id)
            if sku not in _products(conn, ewarong_id):
                raise ShopError(f"Barang {sku} tidak terdaftar di e-Warong {ewarong_id}")
            row = {"ewarong_id": ewarong_id, "sku": sku, "qty_delta": qty, "kind": RECEIPT, "sale_id": None, "at": self.clock.now()}
            conn.execute(insert(stock_movements).values(**row))

    # -- cart helpers (the rules, fed from the books) ----------------------------------------------

    def add_to_cart(self, ewarong_id: str, cart: Cart, sku: str, qty: int, balance_idr: int) -> Cart | Refusal:
        """`rules.add_item` with the product and the available stock read from the books."""
        product, stock_qty = self._product_and_stock(ewarong_id, sku)
        if product is None:
            return Refusal(rules.UNKNOWN_PRODUCT, f"Barang {sku} tidak dijual di e-Warong ini.")
        return rules.add_item(cart, product, qty, stock_qty=stock_qty, balance_idr=balance_idr)

    def change_quantity(self, ewarong_id: str, cart: Cart, sku: str, qty: int, balance_idr: int) -> Cart | Refusal:
        """`rules.set_quantity` with the product and the available stock read from the books."""
        product, stock_qty = self._product_and_stock(ewarong_id, sku)
        if product is None:
            return Refusal(rules.UNKNOWN_PRODUCT, f"Barang {sku} tidak dijual di e-Warong ini.")
        return rules.set_quantity(cart, product, qty, stock_qty=stock_qty, balance_idr=balance_idr)

    def _product_and_stock(self, ewarong_id: str, sku: str) -> tuple[Product | None, int]:
        with self.db.read() as conn:
            product = _products(conn, ewarong_id).get(sku)
            return product, _available(conn, ewarong_id).get(sku, 0)

    # -- payments ----------------------------------------------------------------------------------

    def begin_payment(self, ewarong_id: str, terminal_id: str, cart: Cart) -> Payment | Refusal:
        """Freeze the cart as a payment before its amount goes to the EDC.

        Its goods are held for it (no other cart can take them) until it is completed,
        failed, cancelled or recovered. Refused when the terminal has a payment in progress or
        the cart no longer passes the rules (price, stock, forbidden goods)."""
        _check(_TID, terminal_id, "Terminal")
        with self.db.begin() as conn:
            _lock_shop(conn, ewarong_id)
            open_here = conn.execute(_open_payments_query(payments.c.terminal_id == terminal_id)).all()
            if len(open_here) >= OPEN_PER_TERMINAL_MAX:
                ids = ", ".join(f"#{row.id}" for row in open_here)
                return Refusal(PAYMENT_OPEN, f"Terminal {terminal_id} masih memproses pembayaran {ids}; selesaikan atau pulihkan dulu.")
            refusal = rules.cart_refusal(cart, _products(conn, ewarong_id), _available(conn, ewarong_id))
            if refusal:
                return refusal
            created_at = self.clock.now()
            values = {"ewarong_id": ewarong_id, "terminal_id": terminal_id, "amount_idr": cart.total_idr, "lines": lines_to_json(cart.lines), "created_at": created_at}
            payment_id = conn.execute(insert(payments).values(**values).returning(payments.c.id)).scalar_one()
        log.info("payment %s opened: %s %s %s", payment_id, ewarong_id, terminal_id, cart.total_idr)
        return Payment(payment_id, ewarong_id, terminal_id, cart.total_idr, cart.lines, created_at)

    def payment_sent(self, payment_id: int, stan: str) -> None:
        """The EDC sent the purchase under this STAN."""
        _check(_STAN, stan, "STAN")
        with self.db.begin() as conn:
            payment = self._locked_payment(conn, payment_id)
            status = _closing_status(conn, payment.id)
            if status is not None:
                raise PaymentStateError(f"Pembayaran #{payment_id} sudah ditutup ({status})")
            conn.execute(insert(payment_events).values(payment_id=payment_id, status=SENT, stan=stan, at=self.clock.now()))

    def complete_payment(
        self,
        payment_id: int,
        rrn: str,
        approval_code: str,
        stan: str,
        pan_masked: str,
        at: datetime,
        *,
        pan: str | None = None,
    ) -> Sale:
        """The EDC approved the purchase: record the sale and take its goods out of stock, in one
        transaction. Idempotent: the same (terminal, RRN) again returns the sale already stored.

        `pan` (optional, never stored) gives the keyed card reference that counts KPM served."""
        _check(_RRN, rrn, "RRN")
        _check(_APPROVAL, approval_code, "Kode persetujuan")
        _check(_STAN, stan, "STAN")
        _check_masked_pan(pan_masked)
        card_ref = self.card_ref(pan, pan_masked)
        with self.db.begin() as conn:
            payment = self._locked_payment(conn, payment_id)
            existing = _sale_by(conn, sales.c.terminal_id == payment.terminal_id, sales.c.rrn == rrn)
            if existing is not None:
                if existing.payment_id != payment_id:
                    raise PaymentStateError(f"RRN {rrn} sudah tercatat untuk pembayaran lain (#{existing.payment_id})")
                return existing
            status = _closing_status(conn, payment_id)
            if status is not None:
                raise PaymentStateError(f"Pembayaran #{payment_id} sudah ditutup ({status})")
            sale = self._record_sale(conn, payment, rrn, approval_code, stan, pan_masked, card_ref, to_wib(at))
        log.info("payment %s approved: sale %s rrn %s", payment_id, sale.id, rrn)
        return sale

    def fail_payment(self, payment_id: int, rc: str, reason: str, *, reversal: bool = False) -> None:
        """The EDC declined the purchase (or it was reversed): the payment closes, its goods
        go back to the cart-able stock, no sale and no stock movement. Idempotent."""
        _check(_RC, rc, "Kode respons")
        self._close(payment_id, REVERSED if reversal else DECLINED, rc, reason)

    def cancel_payment(self, payment_id: int, reason: str = "Dibatalkan kasir sebelum dikirim ke EDC") -> None:
        """The purchase never went through the EDC (the cashier cancelled). Idempotent."""
        self._close(payment_id, ABANDONED, None, reason)

    def _close(self, payment_id: int, status: str, rc: str | None, reason: str) -> None:
        with self.db.begin() as conn:
            self._locked_payment(conn, payment_id)
            current = _closing_status(conn, payment_id)
            if current == APPROVED:
                raise PaymentStateError(f"Pembayaran #{payment_id} sudah disetujui dan tercatat sebagai penjualan")
            if current is not None:
                return
            event = {"payment_id": payment_id, "status": status, "rc": rc, "reason": reason[:REASON_LEN_MAX], "at": self.clock.now()}
            conn.execute(insert(payment_events).values(**event))
        log.info("payment %s closed: %s rc=%s", payment_id, status, rc)

    def payment_status(self, payment_id: int) -> str:
        """'open' or the closing status ('approved', 'declined', 'reversed', 'abandoned')."""
        with self.db.read() as conn:
            if conn.execute(select(payments.c.id).where(payments.c.id == payment_id)).first() is None:
                raise PaymentStateError(f"Pembayaran #{payment_id} tidak ditemukan")
            return _closing_status(conn, payment_id) or "open"

    def open_payments(self, terminal_id: str) -> list[OpenPayment]:
        with self.db.read() as conn:
            return self._open_payments(conn, terminal_id)

    def _open_payments(self, conn: Connection, terminal_id: str) -> list[OpenPayment]:
        rows = conn.execute(_open_payments_query(payments.c.terminal_id == terminal_id))
        return [OpenPayment(r.id, r.terminal_id, r.amount_idr, r.created_at, r.stan) for r in rows]

    def _locked_payment(self, conn: Connection, payment_id: int) -> Payment:
        row = conn.execute(select(payments).where(payments.c.id == payment_id)).one_or_none()
        if row is None:
            raise PaymentStateError(f"Pembayaran #{payment_id} tidak ditemukan")
        _lock_shop(conn, row.ewarong_id)
        return _payment(row)

    def _record_sale(
        self, conn: Connection, payment: Payment, rrn: str, approval_code: str, stan: str, pan_masked: str, card_ref: str, at: datetime
    ) -> Sale:
        """Append the sale, its stock movements and the approval event (caller holds the lock)."""
        on_hand = _on_hand(conn, payment.ewarong_id)
        short = [line.sku for line in payment.lines if on_hand.get(line.sku, 0) < line.qty]
        if short:
            raise StockInvariantError(f"stock of {short} at {payment.ewarong_id} would go below zero")
        values = {
            "ewarong_id": payment.ewarong_id, "terminal_id": payment.terminal_id, "payment_id": payment.id, "rrn": rrn,
            "stan": stan, "approval_code": approval_code, "pan_masked": pan_masked, "card_ref": card_ref,
            "amount_idr": payment.amount_idr, "lines": lines_to_json(payment.lines), "at": at,
        }  # fmt: skip
        sale_id = conn.execute(insert(sales).values(**values).returning(sales.c.id)).scalar_one()
        movements = [
            {"ewarong_id": payment.ewarong_id, "sku": line.sku, "qty_delta": -line.qty, "kind": SALE, "sale_id": sale_id, "at": at}
            for line in payment.lines
        ]
        conn.execute(insert(stock_movements), movements)
        event = {"payment_id": payment.id, "status": APPROVED, "stan": stan, "rrn": rrn, "rc": "00", "at": self.clock.now()}
        conn.execute(insert(payment_events).values(**event))
        return Sale(
            sale_id, payment.ewarong_id, payment.terminal_id, payment.id, rrn, stan, approval_code, pan_masked,
            payment.amount_idr, at, payment.lines,
        )  # fmt: skip

    def void_sale(self, terminal_id: str, rrn: str, at: datetime) -> Sale | None:
        """The EDC voided purchase `rrn` of this terminal (PEMBATALAN approved): the sale is marked
        voided and its goods go back on the shelf, in one transaction. Idempotent. None when the
        shop holds no sale of that purchase (one made at the EDC alone, outside the cart)."""
        _check(_RRN, rrn, "RRN")
        with self.db.begin() as conn:
            sale = _sale_by(conn, sales.c.terminal_id == terminal_id, sales.c.rrn == rrn)
            if sale is None:
                return None
            _lock_shop(conn, sale.ewarong_id)
            if conn.execute(select(sale_voids.c.id).where(sale_voids.c.sale_id == sale.id)).first() is not None:
                return sale
            conn.execute(insert(sale_voids).values(sale_id=sale.id, at=to_wib(at)))
            movements = [
                {"ewarong_id": sale.ewarong_id, "sku": line.sku, "qty_delta": line.qty, "kind": VOID, "sale_id": sale.id, "at": to_wib(at)}
                for line in sale.lines
            ]
            conn.execute(insert(stock_movements), movements)
        log.info("sale %s (rrn %s) voided at the EDC: goods back in stock", sale.id, rrn)
        return sale

    def is_voided(self, terminal_id: str, rrn: str) -> bool:
        query = select(sale_voids.c.id).join(sales, sales.c.id == sale_voids.c.sale_id)
        with self.db.read() as conn:
            return conn.execute(query.where(sales.c.terminal_id == terminal_id, sales.c.rrn == rrn)).first() is not None

    def card_ref(self, pan: str | None, pan_masked: str) -> str:
        """Keyed hash (HMAC-SHA256) identifying a card without keeping its number.

        Without the PAN, the masked PAN is hashed instead (a coarser reference)."""
        if pan is not None and not _PAN.fullmatch(pan):
            raise ShopError("Nomor kartu tidak sah")
        message = pan if pan is not None else f"masked:{pan_masked}"
        return hmac.new(self._card_ref_key, message.encode(), hashlib.sha256).hexdigest()

    def sale(self, terminal_id: str, rrn: str) -> Sale | None:
        with self.db.read() as conn:
            return _sale_by(conn, sales.c.terminal_id == terminal_id, sales.c.rrn == rrn)

    # -- crash recovery ----------------------------------------------------------------------------

    def recover(self, terminal_id: str, approved: list[ApprovedPurchase]) -> RecoveryResult:
        """Settle the terminal's open payments against the purchases its EDC approved
        (see `ewarong_pos.recovery`). Safe to call on every start; a second call finds
        nothing open and does nothing."""
        _check(_TID, terminal_id, "Terminal")
        with self.db.begin() as conn:
            shops = sorted({p.ewarong_id for p in conn.execute(_open_payments_query(payments.c.terminal_id == terminal_id))})
            for ewarong_id in shops:
                _lock_shop(conn, ewarong_id)
            open_payments = self._open_payments(conn, terminal_id)
            rrns = [a.rrn for a in approved if a.tid == terminal_id]
            linked = set(conn.execute(select(sales.c.rrn).where(sales.c.terminal_id == terminal_id, sales.c.rrn.in_(rrns))).scalars())
            actions = plan_recovery(terminal_id, open_payments, approved, linked)
            result = self._apply_recovery(conn, actions)
        for message in result.messages:
            log.info("recovery %s: %s", terminal_id, message)
        return result

    def _apply_recovery(self, conn: Connection, actions: list) -> RecoveryResult:  # noqa: ANN001
        recovered: list[Sale] = []
        abandoned: list[int] = []
        messages: list[str] = []
        for action in actions:
            row = conn.execute(select(payments).where(payments.c.id == action.payment_id)).one()
            payment = _payment(row)
            if isinstance(action, RecoverAsSale):
                p = action.purchase
                card_ref = self.card_ref(p.pan, _check_masked_pan(p.pan_masked))
                sale = self._record_sale(conn, payment, p.rrn, p.approval_code, p.stan, p.pan_masked, card_ref, to_wib(p.approved_at))
                recovered.append(sale)
                messages.append(f"Pembayaran #{payment.id} ({format_idr(payment.amount_idr)}) disetujui EDC; dicatat sebagai penjualan RRN {p.rrn}.")
            else:
                assert isinstance(action, Abandon)
                reason = "Tidak ada transaksi disetujui di EDC untuk pembayaran ini"
                conn.execute(insert(payment_events).values(payment_id=payment.id, status=ABANDONED, reason=reason, at=self.clock.now()))
                abandoned.append(payment.id)
                messages.append(f"Pembayaran #{payment.id} ({format_idr(payment.amount_idr)}) ditutup: tidak disetujui EDC, stok tidak berubah.")
        return RecoveryResult(tuple(recovered), tuple(abandoned), tuple(messages))

    # -- reports -----------------------------------------------------------------------------------

    def daily_report(self, ewarong_id: str, day: date) -> DailyReport:
        """Sales of one business day (WIB, 00:00 to 24:00) of one e-Warong."""
        start = datetime(day.year, day.month, day.day)
        query = (
            select(sales)
            .where(sales.c.ewarong_id == ewarong_id, and_(sales.c.at >= start, sales.c.at < start + timedelta(days=1)))
            .where(~exists().where(sale_voids.c.sale_id == sales.c.id))  # voided at the EDC: not sold
            .order_by(sales.c.at, sales.c.id)
            .limit(SALES_PER_REPORT_MAX + 1)
        )
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        if len(rows) > SALES_PER_REPORT_MAX:
            raise ShopError(f"Lebih dari {SALES_PER_REPORT_MAX} penjualan dalam sehari; laporan tidak dapat dibuat sekaligus")
        records = [
            SaleRecord(r.rrn, r.terminal_id, r.stan, r.pan_masked, r.card_ref, r.amount_idr, r.at, lines_from_json(r.lines))
            for r in rows
        ]
        return build_report(ewarong_id, day, records)
