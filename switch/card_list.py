"""The offline card list at the switch: fetched from each acquiring bank, cached, served in pages.

A terminal asks, right after a key exchange, for page after page of its acquiring bank's list
(0800, field 70 = 360, MACed under its TAK; see `shared.offline`). The switch:

- fetches the bank's list over HTTP (`BankClient.card_list`) and keeps it per bank for a bounded
  time (`ttl_ms`); terminals signing on at the same moment share one fetch (single flight);
- checks the list was made under the card-list key it derives itself from the bank's ZPK;
- answers each page with the card-list key wrapped under the terminal's master key (48), the
  page's hot references (61) and ID references (62), MACed under the terminal's TAK;
- keeps, for each terminal, the list its download began with (page 1), so that the pages of one
  download all come from the same list even when the cache is refreshed in between.

Declines are response codes: 58 no working keys, 63 (unMACed) a missing or wrong MAC, 30 a
malformed page number, 12 a page past the last, 91 the bank unreachable, 96 a list that does
not hold up (malformed, or under another key).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shared import offline, protocol, rc
from shared.iso8583 import Message, MessageError
from shared.money import AMOUNT_IDR_MAX

from switch.bank_client import BankClient, BankUnavailable
from switch.hsm import SwitchHsm, WorkingKeys
from switch.journal import TerminalRecord
from switch.settings import SwitchSettings

log = logging.getLogger("switch")

TTL_MS_DEFAULT = 60_000  # how long a bank's list is served from the cache
TIMEOUT_MS_DEFAULT = 10_000  # a bank's list of 10,000 KPM takes well under a second to make
DOWNLOAD_MAX_MS_DEFAULT = 900_000  # a terminal's download keeps its list this long (slow links)
REFS_MAX = offline.PAGES_MAX * offline.REFS_PER_PAGE_MAX
# Two full lists of references as JSON ("XXXXXXXX", = 11 bytes each) and some room.
BODY_MAX_BYTES = 2 * REFS_MAX * 11 + 64 * 1024
_REFS = re.compile(rf"(?:[0-9A-F]{{{offline.REF_HEX_LENGTH}}})*")


@dataclass(frozen=True, slots=True)
class CardList:
    """One bank's list as fetched: sorted references, the offline limit, when it was fetched."""

    bank_code: str
    hot: list[str]
    ids: list[str]
    offline_limit_idr: int
    key_check: str
    fetched_at_s: float  # monotonic

    @property
    def pages(self) -> int:
        return offline.page_count(len(self.hot), len(self.ids))


@dataclass(frozen=True, slots=True)
class ListUnavailable:
    """Why no list can be served: the response code and the reason (for the log and journal)."""

    rc: str
    reason: str


def parse_card_list(document: dict, bank_code: str, fetched_at_s: float) -> CardList:
    """The bank's JSON document as a CardList; ValueError saying what does not hold up."""
    if document.get("bank") != bank_code:
        raise ValueError(f"the list is of bank {document.get('bank')!r}, not {bank_code!r}")
    limit = document.get("offline_limit_idr")
    if type(limit) is not int or not 0 <= limit <= AMOUNT_IDR_MAX:
        raise ValueError(f"offline_limit_idr must be an integer of rupiah within [0, {AMOUNT_IDR_MAX}]")
    key_check = document.get("key_check")
    if not isinstance(key_check, str):
        raise ValueError("key_check is missing")
    return CardList(bank_code, _refs(document, "hot"), _refs(document, "ids"), limit, key_check, fetched_at_s)


def _refs(document: dict, name: str) -> list[str]:
    refs = document.get(name)
    if not isinstance(refs, list) or len(refs) > REFS_MAX:
        raise ValueError(f"{name} must be a list of at most {REFS_MAX} references")
    if not all(isinstance(r, str) and len(r) == offline.REF_HEX_LENGTH for r in refs) or not _REFS.fullmatch("".join(refs)):
        raise ValueError(f"{name} must hold {offline.REF_HEX_LENGTH}-character upper-case hex references")
    return refs


Fetch = Callable[[str], Awaitable["dict | BankUnavailable"]]


class CardListCache:
    """Each bank's list, fetched at most once per `ttl_ms` (concurrent callers share a fetch)."""

    def __init__(
        self, fetch: Fetch, key_check_for: Callable[[str], str], ttl_ms: int = TTL_MS_DEFAULT,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch_document = fetch
        self._key_check_for = key_check_for
        self._ttl_s = ttl_ms / 1000
        self._monotonic = monotonic
        self._lists: dict[str, CardList] = {}  # bounded by the number of banks
        self._inflight: dict[str, asyncio.Task[CardList | ListUnavailable]] = {}
        self.fetches = 0  # requests sent to banks
        self.waiting = 0  # callers waiting on a fetch now

    def clear(self) -> None:
        self._lists.clear()

    async def get(self, bank_code: str) -> CardList | ListUnavailable:
        cached = self._lists.get(bank_code)
        if cached is not None and self._monotonic() - cached.fetched_at_s < self._ttl_s:
            return cached
        task = self._inflight.get(bank_code)
        if task is None:
            task = asyncio.create_task(self._fetch(bank_code), name=f"card-list-{bank_code}")
            self._inflight[bank_code] = task
            task.add_done_callback(lambda done: self._inflight.pop(bank_code, None) if self._inflight.get(bank_code) is done else None)
        self.waiting += 1
        try:
            return await asyncio.shield(task)  # one caller giving up does not cancel the others' fetch
        finally:
            self.waiting -= 1

    async def _fetch(self, bank_code: str) -> CardList | ListUnavailable:
        self.fetches += 1
        document = await self._fetch_document(bank_code)
        if isinstance(document, BankUnavailable):
            log.warning("card list of bank %s unavailable: %s", bank_code, document.reason)
            return ListUnavailable(rc.ISSUER_UNAVAILABLE, f"bank unavailable: {document.reason}")
        try:
            card_list = parse_card_list(document, bank_code, self._monotonic())
        except ValueError as exc:
            log.error("card list of bank %s refused: %s", bank_code, exc)
            return ListUnavailable(rc.SYSTEM_ERROR, f"card list refused: {exc}")
        if card_list.key_check != self._key_check_for(bank_code):
            log.error("card list of bank %s is under another key than the switch's (ZPK differs?)", bank_code)
            return ListUnavailable(rc.SYSTEM_ERROR, "card list under another key")
        self._lists[bank_code] = card_list
        return card_list


@dataclass(frozen=True, slots=True)
class Page:
    """The answer to one card-list request: the response, the key to MAC it (None: unMACed),
    and why it was refused (None when answered 00)."""

    response: Message
    mac_key: bytes | None
    reason: str | None = None

    def journalled(self) -> Message:
        """The response as the journal keeps it: the references counted, not copied (the
        journal strips the wrapped key in 48 itself)."""
        fields = {k: v for k, v in self.response.items() if k not in ("61", "62")}
        for field, name in (("61", "hot_refs"), ("62", "id_refs")):
            if field in self.response:
                fields[name] = str(len(self.response[field]) // offline.REF_HEX_LENGTH)
        if self.reason:
            fields["reason"] = self.reason
        return fields


class CardListPages:
    """Answers 0800/360 requests from the cache, one page at a time."""

    def __init__(
        self, hsm: SwitchHsm, cache: CardListCache, download_max_ms: int = DOWNLOAD_MAX_MS_DEFAULT,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hsm = hsm
        self.cache = cache
        self._download_max_s = download_max_ms / 1000
        self._monotonic = monotonic
        self._downloads: dict[str, CardList] = {}  # terminal id -> its list; bounded by the terminals

    async def answer(self, terminal: TerminalRecord, keys: WorkingKeys | None, doc: Message, message: bytes) -> Page:
        if keys is None:
            return _refused(doc, rc.NOT_PERMITTED_TERMINAL, "not signed on (no working keys)", None)
        if not self.hsm.mac_ok(message, doc, keys.tak):
            return _refused(doc, rc.SECURITY_VIOLATION, "missing or wrong MAC", None)
        try:
            page = offline.parse_page_field(str(doc.get("60", "")))
        except MessageError as exc:
            return _refused(doc, rc.FORMAT_ERROR, str(exc), keys.tak)
        card_list = await self._list_for(terminal, page)
        if isinstance(card_list, ListUnavailable):
            return _refused(doc, card_list.rc, card_list.reason, keys.tak)
        if page > card_list.pages:
            return _refused(doc, rc.INVALID_TRANSACTION, f"page {page} past the last ({card_list.pages})", keys.tak)
        return Page(protocol.response(doc, rc.APPROVED, **self._page_fields(terminal, card_list, page)), keys.tak)

    async def _list_for(self, terminal: TerminalRecord, page: int) -> CardList | ListUnavailable:
        """Page 1 starts a download with the cached list; later pages keep that list."""
        started = self._downloads.get(terminal.tid)
        if page > 1 and started is not None and self._monotonic() - started.fetched_at_s < self._download_max_s:
            return started
        card_list = await self.cache.get(terminal.bank_code)
        if isinstance(card_list, CardList):
            self._downloads[terminal.tid] = card_list
        return card_list

    def _page_fields(self, terminal: TerminalRecord, card_list: CardList, page: int) -> dict[str, str]:
        wrapped, check = self.hsm.card_list_key_for_terminal(terminal.tmk_lmk, terminal.bank_code)
        header = offline.ListHeader(wrapped, check, card_list.offline_limit_idr, card_list.pages)
        fields = {"48": offline.list_header_field(header)}
        for field, refs in (("61", card_list.hot), ("62", card_list.ids)):
            text = offline.page_refs(refs, page)
            if text:
                fields[field] = text
        return fields


def _refused(doc: Message, code: str, reason: str, mac_key: bytes | None) -> Page:
    log.warning(f"card list refused with {code}: from %s stan %s: %s", doc.get("41"), doc.get("11"), reason)
    return Page(protocol.response(doc, code), mac_key, reason)


def card_list_pages(hsm: SwitchHsm, banks: BankClient, settings: SwitchSettings) -> CardListPages:
    """The card-list service of a running switch. Reads `card_list_ttl_ms`, `card_list_timeout_ms`
    and `card_list_download_max_ms` from the settings."""
    ttl_ms = settings.card_list_ttl_ms
    timeout_ms = settings.card_list_timeout_ms
    download_max_ms = settings.card_list_download_max_ms

    async def fetch(bank_code: str) -> dict | BankUnavailable:
        return await banks.card_list(bank_code, timeout_ms, BODY_MAX_BYTES)

    cache = CardListCache(fetch, hsm.card_list_key_check, ttl_ms)
    return CardListPages(hsm, cache, download_max_ms)
