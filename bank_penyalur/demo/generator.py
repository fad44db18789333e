"""Deterministic demo data for one bank: e-Warongs, named demo KPM/cards and generated KPM.

Everything follows from (bank, index): the same call gives the same people, NIKs, cards and
PINs on any machine, so benchmarks and scenarios can address generated cards without reading
the bank's tables. Rows are written in chunks of bulk inserts, a transaction per chunk.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, func, select

from shared.cards import make_pan

from bank_penyalur import registry
from shared.banks import BANK_CODES, Bank
from shared.clock import Clock, period_of
from shared.db import Database
from bank_penyalur.demo import fixture
from bank_penyalur.demo.names import FAMILY, GIVEN_FEMALE, GIVEN_MALE
from bank_penyalur.demo.regions import VILLAGES, Village
from bank_penyalur.hsm import Hsm
from bank_penyalur.registry import KpmCreate, MerchantCreate
from bank_penyalur.tables import (
    ACTIVATED,
    BLOCKED,
    DAMAGED,
    DISTRIBUTED,
    LOST,
    PIN_FAIL,
    Card,
    Kpm,
    PinEvent,
)

KPM_MAX = 1_000_000
CHUNK_KPM = 10_000
ACTOR = "demo-generator"
ZERO_BALANCE_FIRST_PERIOD = "2099-12"  # the named zero-balance KPM is in a later decree
_BIRTH_BASE = date(1950, 1, 1)
_BIRTH_SPAN_DAYS = 18_000
_KPM_PER_MERCHANT = 200


@dataclass(frozen=True, slots=True)
class GeneratedKpm:
    index: int
    record: KpmCreate
    pan: str
    pin: str
    activated: bool  # False: the card was distributed but the KPM has not set a PIN yet
    emoney: bool  # False: KK number invalid, e-money sub-account failed

    @property
    def spendable(self) -> bool:
        return self.activated and self.emoney


def _bank_number(bank: Bank) -> int:
    return BANK_CODES.index(bank.code)


def _nik(village: Village, born: date, female: bool, seq: int) -> str:
    day = born.day + (40 if female else 0)
    return f"{village.code}{day:02d}{born.month:02d}{born.year % 100:02d}{seq % 10_000:04d}"


def _person(bank: Bank, index: int, seq_base: int) -> tuple[KpmCreate, random.Random]:
    """The index-th family of this bank; seq_base keeps named and generated NIKs apart."""
    rng = random.Random(f"{bank.code}/{seq_base}/{index}")
    village = VILLAGES[index % len(VILLAGES)]
    slot = index // len(VILLAGES)
    born = _BIRTH_BASE + timedelta(days=slot % _BIRTH_SPAN_DAYS)
    seq = seq_base + _bank_number(bank) * 2_000 + village.position * 100 + slot // _BIRTH_SPAN_DAYS
    female = rng.random() < 0.7  # most KPM cards are in the mother's name
    given = rng.choice(GIVEN_FEMALE if female else GIVEN_MALE)
    nik = _nik(village, born, female, seq)
    kk = f"{village.code}{(born + timedelta(days=7_300)).strftime('%d%m%y')}{(seq + 5_000) % 10_000:04d}"
    record = KpmCreate(
        nik=nik,
        kk_number=kk,
        name=f"{given} {rng.choice(FAMILY)}",
        pkh=rng.random() < 0.3,
        first_period="2020-01",
        province=village.province,
        regency=village.regency,
        district=village.district,
        village=village.village,
    )
    return record, rng


def demo_pin(bank: Bank, serial: int) -> str:
    digest = hashlib.sha256(f"sembako-demo-pin/{bank.code}/{serial}".encode()).digest()
    return f"{int.from_bytes(digest[:4], 'big') % 1_000_000:06d}"


def generated_kpm(bank: Bank, index: int) -> GeneratedKpm:
    """The index-th generated KPM (0-based) with its card and PIN."""
    if not 0 <= index < KPM_MAX:
        raise ValueError(f"generated KPM index must be in [0, {KPM_MAX}), got {index}")
    record, rng = _person(bank, index, seq_base=0)
    draw = rng.random()
    emoney = draw >= 0.01
    if not emoney:
        record = record.model_copy(update={"kk_number": record.kk_number[:10]})
    serial = fixture.NAMED_CARDS + 1 + index
    return GeneratedKpm(
        index=index,
        record=record,
        pan=make_pan(bank.iin, serial),
        pin=demo_pin(bank, serial),
        activated=rng.random() >= 0.02,
        emoney=emoney,
    )


def named_kpm_record(bank: Bank, k: int) -> KpmCreate:
    name, village_index, pkh = fixture.named_kpm()[k]
    record, _ = _person(bank, village_index, seq_base=9_000 + k)
    update = {"name": name, "pkh": pkh}
    if k == 1:
        update["first_period"] = ZERO_BALANCE_FIRST_PERIOD
    if k == 2:
        update["kk_number"] = ""  # burekol failed the e-money sub-account
    return record.model_copy(update=update)


# -- writing -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeedReport:
    bank: str
    merchants: int
    named_cards: int
    generated_kpm: int
    generated_total: int


def seed(
    db: Database,
    bank: Bank,
    hsm: Hsm,
    clock: Clock,
    kpm: int = 1_000,
    progress: Callable[[int, int], None] | None = None,
) -> SeedReport:
    """Create demo data up to `kpm` generated KPM; running it again only adds what is missing."""
    if not 0 <= kpm <= KPM_MAX:
        raise ValueError(f"--kpm must be between 0 and {KPM_MAX:,}, got {kpm}")
    now = clock.now()
    with db.begin() as conn:
        merchants = _seed_merchants(conn, bank, kpm, now)
        named = _seed_named(conn, bank, hsm, now)
        existing = conn.execute(select(func.count()).select_from(Kpm)).scalar_one() - fixture.NAMED_KPM
    start = max(existing, 0)
    for chunk_start in range(start, kpm, CHUNK_KPM):
        chunk = [generated_kpm(bank, i) for i in range(chunk_start, min(chunk_start + CHUNK_KPM, kpm))]
        with db.begin() as conn:
            _seed_generated(conn, bank, hsm, chunk, now)
        if progress:
            progress(chunk_start + len(chunk) - start, kpm - start)
    return SeedReport(bank.code, merchants, named, max(kpm - start, 0), max(kpm, start))


def _seed_merchants(conn: Connection, bank: Bank, kpm: int, now: datetime) -> int:
    count = max(len(VILLAGES), kpm // _KPM_PER_MERCHANT)
    items = []
    for serial in range(1, count + 1):
        village = VILLAGES[(serial - 1) % len(VILLAGES)]
        name = "e-Warong Sejahtera Bersama" if serial == 1 else f"e-Warong KUBE {village.village} {serial}"
        items.append(
            MerchantCreate(
                id=fixture.demo_merchant_id(bank, serial),
                name=name,
                province=village.province,
                regency=village.regency,
                district=village.district,
                village=village.village,
            )
        )
    return len(registry.register_merchants(conn, items, now))


def _seed_named(conn: Connection, bank: Bank, hsm: Hsm, now: datetime) -> int:
    """Create the named demo KPM and cards in an empty bank; nothing if they exist."""
    first_pan = make_pan(bank.iin, 1)
    if registry.card_record(conn, hsm, first_pan) is not None:
        return 0
    taken = conn.execute(select(func.count()).select_from(Card)).scalar_one()
    if taken:
        raise ValueError("demo cards need an empty bank: cards exist but not the demo ones")
    records = [named_kpm_record(bank, k) for k in range(fixture.NAMED_KPM)]
    results = registry.open_accounts(conn, records, now)
    kpm_ids = [r.kpm_id for r in results]
    assert all(kpm_ids), results
    printed = registry.print_cards(conn, bank, hsm, kpm_ids, now, ACTOR)
    cards = {spec.label: printed[spec.kpm] for spec in fixture.specs() if spec.label != "replaced_new"}
    pins = {spec.label: spec.pin for spec in fixture.specs()}
    _activate(conn, hsm, [(cid, pan, pins[label]) for label, (cid, pan) in cards.items()], now)
    _named_situations(conn, bank, hsm, cards, pins, now)
    demo = {c.label: c.pan for c in fixture.demo_cards(bank)}
    assert all(demo[label] == pan for label, (_, pan) in cards.items()), "demo PANs drifted from the fixture"
    return fixture.NAMED_CARDS


def _named_situations(conn, bank, hsm, cards, pins, now) -> None:  # noqa: ANN001
    card_id = cards["pin_blocked"][0]
    for _ in range(3):
        conn.execute(PinEvent.__table__.insert().values(card_id=card_id, kind=PIN_FAIL, actor=ACTOR, at=now))
    registry.append_card_events(conn, [cards["lost"][0]], LOST, now, ACTOR, "Dilaporkan hilang oleh KPM")
    registry.append_card_events(conn, [cards["blocked"][0]], BLOCKED, now, ACTOR, "Diblokir: kartu ganda")
    old_id, old_pan = cards["replaced_old"]
    registry.append_card_events(conn, [old_id], DAMAGED, now, ACTOR, "Kartu rusak, chip tidak terbaca")
    record = registry.card_record(conn, hsm, old_pan)
    assert record is not None
    new_id, new_pan = registry.replace_card(conn, bank, hsm, record, now, ACTOR, "Penggantian kartu rusak")
    _activate(conn, hsm, [(new_id, new_pan, pins["replaced_new"])], now)


def _activate(conn: Connection, hsm: Hsm, cards: list[tuple[int, str, str]], now: datetime) -> None:
    ids = [cid for cid, _, _ in cards]
    registry.append_card_events(conn, ids, DISTRIBUTED, now, ACTOR)
    registry.append_card_events(conn, ids, ACTIVATED, now, ACTOR)
    registry.set_pins(conn, [(cid, hsm.pvv_for(pan, pin)) for cid, pan, pin in cards], now, ACTOR)


def _seed_generated(conn: Connection, bank: Bank, hsm: Hsm, chunk: list[GeneratedKpm], now: datetime) -> None:
    results = registry.open_accounts(conn, [g.record for g in chunk], now)
    kpm_ids = [r.kpm_id for r in results]
    assert all(kpm_ids), [r for r in results if r.kpm_id is None][:3]
    printed = registry.print_cards(conn, bank, hsm, kpm_ids, now, ACTOR)
    assert printed[0][1] == chunk[0].pan, "generated PANs drifted: cards were printed outside the generator"
    active = [(cid, pan, g.pin) for (cid, pan), g in zip(printed, chunk, strict=True) if g.activated]
    waiting = [cid for (cid, _), g in zip(printed, chunk, strict=True) if not g.activated]
    _activate(conn, hsm, active, now)
    registry.append_card_events(conn, waiting, DISTRIBUTED, now, ACTOR)


def default_period(clock: Clock) -> str:
    return period_of(clock.now())
