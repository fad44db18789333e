"""The e-Warong shops of a scenario: the POS books (`ewarong_pos.store.ShopStore`) beside its EDCs.

One store for the whole scenario, in its temporary directory (or a PostgreSQL schema of its own),
opened at the first cart. Each terminal's e-Warong (the demo e-Warong the terminal stands in) is
seeded once, before its first cart: the demo catalogue and opening stock, or, when the scenario
gives the terminal a `stock`, the demo catalogue with exactly that stock (every other good at 0)
and those shelf prices. The HET is always the catalogue's: a shelf price above it is refused at
the counter, as the shop's rules say.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert

from ewarong_pos.catalogue import DEMO_PRODUCTS, Product
from ewarong_pos.demo import demo_ewarong, demo_shop_name
from ewarong_pos.settings import ShopSettings
from ewarong_pos.store import ShopStore
from ewarong_pos.tables import RECEIPT, ewarongs, products, stock_movements
from shared.banks import demo_terminal
from shared.clock import Clock

from .model import StockItem, Terminal
from .network import Storage


def ewarong_of(tid: str) -> str:
    """The demo e-Warong a demo terminal stands in (BNI00001 -> EWBNI0000000001)."""
    found = demo_terminal(tid)
    if found is None:
        raise ValueError(f"{tid} is not a demo terminal")
    return found[1]


class ScenarioShops:
    """The shops of the scenario's terminals; `close` at the end."""

    def __init__(self, terminals: tuple[Terminal, ...], storage: Storage, clock: Clock, opened_at: datetime) -> None:
        self._specs = {terminal.tid: terminal for terminal in terminals}
        self._storage = storage
        self._clock = clock
        self._opened_at = opened_at
        self._store: ShopStore | None = None
        self._seeded: set[str] = set()

    def store(self) -> ShopStore:
        if self._store is None:
            settings = ShopSettings(
                data_dir=self._storage.data_dir,
                database_url=self._storage.database_url,
                db_schema=self._storage.schema_of("shop") or "ewarong",
            )
            self._store = ShopStore.open(settings, self._clock)
        return self._store

    def shop_of(self, tid: str) -> str:
        """The e-Warong of terminal `tid`, seeded on first use."""
        ewarong_id = ewarong_of(tid)
        if tid not in self._seeded:
            stock = self._specs[tid].stock
            if stock is None:
                self.store().ensure_demo(ewarong_id)
            else:
                self._seed(ewarong_id, stock)
            self._seeded.add(tid)
        return ewarong_id

    def stock(self, tid: str) -> dict[str, int]:
        """Goods on the shelf of terminal `tid`'s e-Warong, per SKU."""
        return self.store().stock(self.shop_of(tid))

    def _seed(self, ewarong_id: str, stock: dict[str, StockItem]) -> None:
        found = demo_ewarong(ewarong_id)
        assert found is not None
        bank, serial = found
        at = self._opened_at
        rows = [_product_row(ewarong_id, product, stock.get(product.sku), at) for product in DEMO_PRODUCTS]
        receipts = [
            {"ewarong_id": ewarong_id, "sku": sku, "qty_delta": item.quantity, "kind": RECEIPT, "sale_id": None, "at": at}
            for sku, item in stock.items()
            if item.quantity > 0
        ]
        with self.store().db.begin() as conn:
            conn.execute(insert(ewarongs).values(id=ewarong_id, bank_code=bank.code, name=demo_shop_name(bank, serial), opened_at=at))
            conn.execute(insert(products), rows)
            if receipts:
                conn.execute(insert(stock_movements), receipts)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def _product_row(ewarong_id: str, product: Product, item: StockItem | None, at: datetime) -> dict:
    price_idr = item.price_idr if item is not None and item.price_idr is not None else product.price_idr
    return {
        "ewarong_id": ewarong_id, "sku": product.sku, "name": product.name, "food_group": product.group,
        "unit": product.unit, "price_idr": price_idr, "het_idr": product.het_idr,
        "forbidden_reason": product.forbidden_reason, "added_at": at,
    }  # fmt: skip
