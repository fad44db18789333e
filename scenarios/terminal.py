"""A scenario's EDC terminal: the real EDC core, behind a seeded link proxy, on the scenario's clock.

Each online transaction opens a fresh connection through the terminal's `linksim.LinkProxy`
(so a restarted switch or a healed link is simply reached again); a link that refuses the
connection leaves the core to time out, as a terminal without signal would. Offline sales run
in the core's offline mode (card, amount, the holder's NIK) without any connection.

A cart is bought at the e-Warong's counter (`ewarong_pos.cashier.Counter`) beside the same core,
as the cashier app does it: the card in the EDC, Cek (the balance read bounds the cart), the
goods into the cart under the shop's rules (stock, HET, forbidden goods), Bayar with the PIN on
the EDC's keypad, the slip, the card taken back.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

from edc_terminal.batchjob import JobResult
from edc_terminal.client import ClientConfig, SwitchClient, SwitchUnavailable
from edc_terminal.core import CoreConfig, EdcCore, Outcome, Reject, State
from edc_terminal.headless import InputError, Request, open_core, run_job, session
from edc_terminal.inspector import STATUS_ANSWERED, STATUS_LOST, STATUS_TIMEOUT, Exchange, Inspector
from edc_terminal.linking import PROXY_HOST, core_config
from edc_terminal.receipt import settlement_slip
from edc_terminal.terminal import Action, EdcTerminal, Key, Link
from ewarong_pos.cashier import STEP_LABELS, Counter
from ewarong_pos.store import ShopStore
from linksim import LinkProfile, LinkProxy
from shared import keys as keylib
from shared import pinblock, protocol
from shared.clock import Clock
from shared.iso8583 import encode_with_mac, mac_valid
from shared.keys import demo_terminal_master_key_hex
from shared.money import format_idr

BASE_TIMEOUT_MS = 5_000  # the terminal's own wait, above the switch's wait for a bank
CONNECT_TIMEOUT_MS = 2_000
JOB_WINDOW = 32
CASH_WITHDRAWAL = "010000"  # ISO 8583 processing code of a cash withdrawal from the default account
# STANs of the hand-made cash withdrawals: far from the core's own counter, which starts at 1.
_RAW_STANS = itertools.count(900_001)


@dataclass(frozen=True, slots=True)
class TxnResult:
    """What one terminal transaction showed: its code, slip and screen, and where to find it."""

    kind: str  # journal kind: inquiry, purchase, advice, reversal, network, upload, settlement
    rc: str | None  # None: the terminal (or the shop) refused the input, nothing was sent
    approved: bool
    slip: str
    screen: str
    stan: str | None = None
    rrn: str | None = None
    amount_idr: int | None = None
    offline: bool = False

    @classmethod
    def of_outcome(cls, kind: str, outcome: Outcome, screen: str | None = None) -> TxnResult:
        return cls(
            kind, outcome.rc, outcome.approved, outcome.receipt or "", outcome.message if screen is None else screen,
            outcome.stan, outcome.rrn, outcome.amount, outcome.offline,
        )  # fmt: skip

    @classmethod
    def of_job(cls, kind: str, result: JobResult, slip: str = "") -> TxnResult:
        return cls(kind, result.rc, result.approved, slip, result.message)

    @classmethod
    def refused(cls, kind: str, reason: str) -> TxnResult:
        return cls(kind, None, False, "", reason)


class Terminal:
    """One EDC terminal of a scenario, on its own data directory."""

    def __init__(
        self, tid: str, data_dir: Path, clock: Clock, profile: LinkProfile, link_seed: int, switch_port: int, timeout_ms: int = BASE_TIMEOUT_MS
    ) -> None:
        self.tid = tid
        self.timeout_ms = timeout_ms
        self.data_dir = data_dir
        self.clock = clock
        self.profile = profile
        self.link_seed = link_seed
        self.switch_port = switch_port
        self.inspector = Inspector(clock)
        self.exchanges: list[Exchange] = []  # every exchange of the run (the inspector keeps the last few)
        self.inspector.subscribe(self.exchanges.append)
        self.core: EdcCore | None = None
        self.proxy: LinkProxy | None = None
        self._held_when_closed: frozenset[str] = frozenset()

    @property
    def running(self) -> bool:
        return self.core is not None

    def held_reversals(self) -> frozenset[str]:
        """STANs of the purchases this terminal still has to reverse: its stored reversals not
        answered yet, and a purchase sent and not decided (it is reversed when the terminal
        opens again). A closed terminal keeps what it held."""
        core = self.core
        if core is None:
            return self._held_when_closed
        stans = {protocol.parse_original_data(p.original_data)[1] for p in core.stored.pending_reversals}
        in_flight = core.stored.in_flight_purchase
        if in_flight is not None:
            stans.add(str(in_flight["11"]))
        return frozenset(stans)

    async def open(self) -> None:
        """Start the link proxy (seeded) and open the core on its stored state."""
        self.proxy = LinkProxy(PROXY_HOST, 0, PROXY_HOST, self.switch_port, self.profile, seed=self.link_seed)
        await self.proxy.start()
        config = core_config(self.profile, CoreConfig.uniform(self.timeout_ms, card_list=True))
        self.core = open_core(self.tid, self.data_dir, self.clock, config)
        self.core.set_link_state(self.profile.available)

    async def close(self) -> None:
        """Close the core (its state is on disk after every change) and the link."""
        self._held_when_closed = self.held_reversals()
        core, proxy = self.core, self.proxy
        self.core = self.proxy = None
        try:
            if core is not None:
                core.close()
        finally:
            if proxy is not None:
                await proxy.stop()

    def set_profile(self, profile: LinkProfile) -> None:
        assert self.proxy is not None and self.core is not None
        self.profile = profile
        self.proxy.set_profile(profile)
        self.core.set_link_state(profile.available)

    async def _client(self, window: int = 8) -> SwitchClient:
        assert self.proxy is not None
        client = SwitchClient(PROXY_HOST, self.proxy.port, ClientConfig(connect_timeout_ms=CONNECT_TIMEOUT_MS, max_in_flight=window))
        try:
            await client.connect()
        except SwitchUnavailable:
            pass  # no link: the core hears nothing and decides (timeout, reversal stored)
        return client

    async def transact(self, kind: str, request: Request) -> TxnResult:
        """Sign on when needed, send stored reversals, run the command over a fresh connection."""
        assert self.core is not None
        client = await self._client()
        try:
            outcome = await session(self.core, client, request, self.inspector)
        except InputError as exc:
            _cancel(self.core)
            return TxnResult.refused(kind, str(exc))
        finally:
            await client.close()
        return TxnResult.of_outcome(kind, outcome)

    def offline_sale(self, pan: str, amount_idr: int, nik: str) -> TxnResult:
        """Bayar decided by the terminal: card, amount, the holder's NIK."""
        core = self.core
        assert core is not None
        for step in (lambda: core.insert_card(pan), core.choose_purchase, lambda: core.enter_amount(str(amount_idr)), lambda: core.enter_nik(nik)):
            commands = step()
            if rejected := next((c for c in commands if isinstance(c, Reject)), None):
                _cancel(core)
                return TxnResult.refused("advice", rejected.reason)
        outcome = core.outcome
        core.finish()
        return TxnResult.of_outcome("advice", outcome)

    async def job(self, kind: str) -> TxnResult:
        """Upload the stored offline sales, or settle the open batch."""
        core = self.core
        assert core is not None
        job = core.start_upload() if kind == "upload" else core.start_settlement()
        if isinstance(job, Reject):
            return TxnResult.refused(kind, job.reason)
        client = await self._client(JOB_WINDOW)
        try:
            result = await run_job(job, client, window=JOB_WINDOW, inspector=self.inspector)
        finally:
            await client.close()
            core.finish()
        slip = ""
        if result.steps or result.exceptions:  # what the EDC prints: each batch's totals and answer
            slip = settlement_slip(core.bank_name, core.terminal.mid, core.terminal.tid, self.clock.now(), result)
        return TxnResult.of_job(kind, result, slip)

    async def cart(self, shop: ShopStore, ewarong_id: str, pan: str, pin: str, nik: str, items: dict[str, int]) -> TxnResult:
        """A cart bought at the e-Warong's counter beside this EDC (see the module's text)."""
        assert self.core is not None and self.proxy is not None
        edc = EdcTerminal(self.core, Link(PROXY_HOST, self.proxy.port, CONNECT_TIMEOUT_MS), self.clock, self.inspector)
        counter = Counter(shop, ewarong_id, edc, self.clock)
        try:
            return await _buy(edc, counter, pan, pin, nik, items)
        finally:
            await _take_card(edc)
            await edc.link.close()

    async def cash_withdrawal(self, pan: str, pin: str, amount_idr: int) -> TxnResult:
        """A 0200 with processing code 01 (cash withdrawal), as a tampered or foreign terminal
        would send it: this EDC offers no such function, so the message is made here with the
        terminal's own working keys. Nothing is reversed when no answer comes."""
        core = self.core
        assert core is not None and core.stored.keys is not None, "the terminal signs on before it sends"
        tmk = bytes.fromhex(demo_terminal_master_key_hex(self.tid))
        wrapped = core.stored.keys
        tpk, tak = keylib.unwrap(tmk, wrapped.tpk), keylib.unwrap(tmk, wrapped.tak)
        stan = f"{next(_RAW_STANS) % 1_000_000:06d}"
        block = pinblock.encipher(tpk, pin, pan).hex().upper()
        request = protocol.purchase_request(core.terminal, stan, self.clock.now(), pan, amount_idr, block, core.stored.batch)
        request["3"] = CASH_WITHDRAWAL
        data = encode_with_mac(request, tak)
        client = await self._client()
        sent_at, started_s = self.inspector.now(), self.inspector.timer()
        try:
            received = await client.request(data, request["t"], stan, self.timeout_ms)
        except (TimeoutError, SwitchUnavailable) as exc:
            self.inspector.record(data, None, STATUS_TIMEOUT if isinstance(exc, TimeoutError) else STATUS_LOST, at=sent_at)
            return TxnResult("purchase", None, False, "", "Tidak ada jawaban dari switch", stan=stan, amount_idr=amount_idr)
        finally:
            await client.close()
        rtt_ms = (self.inspector.timer() - started_s) * 1000
        self.inspector.record(data, received.raw, STATUS_ANSWERED, rtt_ms=rtt_ms, at=sent_at)
        return _raw_result(received.message, received.raw, tak, stan, amount_idr)

    def exchanges_since(self, start: int) -> list[Exchange]:
        return self.exchanges[start:]


def _raw_result(answer: dict, raw: bytes, tak: bytes, stan: str, amount_idr: int) -> TxnResult:
    rc = str(answer.get("39", ""))
    if not mac_valid(raw, answer, tak):
        return TxnResult("purchase", rc, False, "", "Jawaban tidak sah (MAC)", stan=stan, amount_idr=amount_idr)
    approved = rc == "00"
    screen = "TARIK TUNAI " + ("DISETUJUI" if approved else f"DITOLAK (RC {rc})")
    return TxnResult("purchase", rc, approved, "", screen, stan=stan, rrn=answer.get("37") or None, amount_idr=amount_idr)


# -- the cashier's counter ---------------------------------------------------------------------


async def _buy(edc: EdcTerminal, counter: Counter, pan: str, pin: str, nik: str, items: dict[str, int]) -> TxnResult:
    """Datang, Cek, Pilih, Bayar, Terima; the first refusal or decline ends it."""
    edc.insert_card(pan)
    await edc.run_pending()  # a terminal without working keys signs on first
    if not edc.has_card:
        return TxnResult.refused("purchase", screen_text(edc, counter))
    if edc.core.offline:
        if counter.view().balance_idr is None:
            return TxnResult.refused("purchase", screen_text(edc, counter))
    else:
        edc.select(Action.CEK)
        await _key_in(edc, pin)
        inquiry = edc.outcome
        if counter.view().balance_idr is None:  # Cek declined or unanswered: nothing to buy with
            assert inquiry is not None
            return TxnResult.of_outcome("inquiry", inquiry, screen_text(edc, counter))
    for sku, quantity in items.items():
        if not counter.add(sku, quantity):
            return TxnResult.refused("purchase", screen_text(edc, counter))
    if not counter.pay():
        return TxnResult.refused("purchase", screen_text(edc, counter))
    await _key_in(edc, nik if edc.core.state is State.ID else pin)
    outcome = edc.outcome
    if outcome is None or edc.core.state is not State.RESULT:
        return TxnResult.refused("purchase", screen_text(edc, counter))
    return TxnResult.of_outcome("advice" if outcome.offline else "purchase", outcome, screen_text(edc, counter))


async def _key_in(edc: EdcTerminal, digits: str) -> None:
    """The KPM keys the PIN (the cashier the NIK, offline) and ENTER; the network job runs."""
    for digit in digits:
        edc.press(digit)
    edc.press(Key.ENTER)
    await edc.run_pending()


async def _take_card(edc: EdcTerminal) -> None:
    """The card back to the KPM: the core is IDLE again for the next step."""
    if edc.busy:
        await edc.run_pending()
    edc.take_card()
    await edc.run_pending()  # keys lost by the flow are recovered before anything else


def screen_text(edc: EdcTerminal, counter: Counter) -> str:
    """The cashier app's screen as text: the shop's steps, balance, cart, total and message,
    then the EDC's display."""
    view = counter.view()
    balance = "belum dicek" if view.balance_idr is None else format_idr(view.balance_idr)
    lines = [" > ".join(label for label in STEP_LABELS.values()) + f" [{STEP_LABELS[view.step]}]", f"Saldo KPM: {balance}"]
    lines += [f"{line.qty} x {line.name} {format_idr(line.amount_idr)}" for line in view.cart.lines]
    left = "" if view.left_idr is None else f"   Sisa saldo: {format_idr(view.left_idr)}"
    lines.append(f"Total: {format_idr(view.total_idr)}{left}")
    if view.last_sale is not None:
        sale = view.last_sale
        lines.append(f"Terjual: {format_idr(sale.amount_idr)}, RRN {sale.rrn}")
        lines += [f"  {line.qty} x {line.name} {format_idr(line.amount_idr)}" for line in sale.lines]
    if view.message:
        lines.append(view.message)
    display = edc.display()
    lines += ["", f"EDC: {display.title}", *display.lines]
    if display.message:
        lines.append(display.message)
    return "\n".join(lines)


def _cancel(core: EdcCore) -> None:
    """Back to IDLE after a refused input (nothing to cancel is fine)."""
    try:
        core.cancel()
    except Exception:  # noqa: BLE001 - the core refuses a cancel when idle; that is the aim anyway
        pass

