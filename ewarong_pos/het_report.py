"""Telling the switch's operations staff when the counter refused goods above their HET.

The cart rules refuse a good whose price is above its HET (`rules.ABOVE_HET`); the refusal is
also reported to the switch's ops API (`POST /v1/het-attempts`), where the `above_het` alert
reads it. Best effort: the report leaves on a background thread, with a short timeout; a switch
that cannot be reached, or refuses the report, costs the cashier nothing (a log line, and the
report is dropped). At most `QUEUE_MAX` reports wait; more are dropped, logged.

Nothing here reads a card: a report holds the terminal, the e-Warong, the good and its prices.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

from ewarong_pos.catalogue import Product
from shared.banks import bank_for_terminal

log = logging.getLogger(__name__)

PATH = "/v1/het-attempts"
TIMEOUT_S = 2.0
QUEUE_MAX = 100
TOKEN_FILE_PREFIX = "pos-token-"  # `sembako up` writes pos-token-<bank> in the data directory
TOKEN_CHARS_MAX = 128


@dataclass(frozen=True, slots=True)
class HetAttemptReport:
    terminal_id: str
    merchant_id: str
    product: Product
    qty: int
    attempted_at: datetime  # the POS's clock, naive WIB

    def body(self) -> dict:
        p = self.product
        return {
            "terminal_id": self.terminal_id, "merchant_id": self.merchant_id, "sku": p.sku, "product_name": p.name,
            "unit": p.unit, "price_idr": p.price_idr, "het_idr": p.het_idr, "qty": self.qty,
            "attempted_at": self.attempted_at.isoformat(timespec="seconds"),
        }  # fmt: skip


def above_het(products: Iterable[tuple[Product | None, int]]) -> list[tuple[Product, int]]:
    """The goods (with their quantities) priced above their HET."""
    return [(product, qty) for product, qty in products if product is not None and product.price_idr > product.het_idr]


def read_token(given: str | None, data_dir: Path, terminal_id: str) -> str | None:
    """The ops API token: the one given, else `<data_dir>/pos-token-<bank>` of the terminal's bank
    (a viewer token of that bank, never the switch operator's admin token) when readable."""
    if given:
        return given.strip()
    bank = bank_for_terminal(terminal_id)
    if bank is None:
        return None
    try:
        text = (data_dir / f"{TOKEN_FILE_PREFIX}{bank.code}").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text if 0 < len(text) <= TOKEN_CHARS_MAX else None


def reporter_for(ops_url: str | None, token: str | None, data_dir: Path, terminal_id: str) -> HetReporter | None:
    """A reporter to `ops_url` with the token given (else the data directory's one for the
    terminal's bank), or None when there is no URL or no token: the counter then refuses without
    telling anyone."""
    found = read_token(token, data_dir, terminal_id)
    if not ops_url or found is None:
        log.info("HET refusals are not reported: %s", "no ops API URL" if not ops_url else "no ops API token")
        return None
    return HetReporter(ops_url, found)


class HetReporter:
    """Sends reports to the ops API at `ops_url` with `token`, one at a time, on its own thread."""

    def __init__(self, ops_url: str, token: str, timeout_s: float = TIMEOUT_S, queue_max: int = QUEUE_MAX) -> None:
        self._url = f"{ops_url.rstrip('/')}{PATH}"
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout_s = timeout_s
        self._queue: queue.Queue[HetAttemptReport | None] = queue.Queue(maxsize=queue_max)
        self.sent = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="het-report", daemon=True)
        self._thread.start()

    def __call__(self, report: HetAttemptReport) -> None:
        """Queue `report`; never blocks, never raises."""
        try:
            self._queue.put_nowait(report)
        except queue.Full:
            self.failed += 1
            log.warning("HET report for %s dropped: %d reports already waiting", report.product.sku, self._queue.maxsize)

    def _run(self) -> None:
        with httpx.Client(timeout=self._timeout_s, headers=self._headers) as client:
            while (report := self._queue.get()) is not None:
                self._send(client, report)
                self._queue.task_done()
            self._queue.task_done()

    def _send(self, client: httpx.Client, report: HetAttemptReport) -> None:
        try:
            response = client.post(self._url, json=report.body())
        except httpx.HTTPError as exc:
            self.failed += 1
            log.warning("HET report for %s not delivered: %s", report.product.sku, type(exc).__name__)
            return
        if response.status_code == 201:
            self.sent += 1
        else:
            self.failed += 1
            log.warning("HET report for %s refused by the switch: HTTP %d", report.product.sku, response.status_code)

    def flush(self, timeout_s: float = TIMEOUT_S * 2) -> bool:
        """Wait (bounded) until every queued report was tried; False when time ran out."""
        done = threading.Event()
        threading.Thread(target=lambda: (self._queue.join(), done.set()), daemon=True).start()
        return done.wait(timeout_s)

    def close(self, timeout_s: float = TIMEOUT_S * 2) -> None:
        """Try what is queued (bounded), then stop the thread."""
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            return
        self._thread.join(timeout_s)
