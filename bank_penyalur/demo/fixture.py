"""Named demo cards: one per field situation, per bank, with their demo PINs.

This is a fixture: the PANs follow from the bank's prefix and a reserved serial, and the PINs
are written here. `sembako demo-cards` prints this table; it never reads a bank's tables. The
generator (`bank_penyalur.demo.generator`) creates exactly these cards in an empty database.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from shared.cards import make_pan

from shared.banks import BANKS, Bank


@dataclass(frozen=True, slots=True)
class DemoCard:
    bank: str
    label: str
    pan: str
    pin: str
    nik: str
    name: str
    situation: str  # what the demo card shows, in Bahasa Indonesia as told to cashiers
    expect_rc: str  # what a purchase of Rp10.000 with the right PIN answers

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Spec:
    label: str
    serial: int
    kpm: int  # index of the named KPM owning the card
    pin: str
    situation: str
    expect_rc: str


# Serials 1..8 are printed in this order for KPM 0..7; serial 9 replaces serial 6.
_SPECS = (
    _Spec("normal", 1, 0, "123456", "Kartu normal, saldo bulan ini sudah masuk", "00"),
    _Spec("zero_balance", 2, 1, "111111", "Saldo nol: bantuan bulan ini belum masuk", "51"),
    _Spec("no_emoney", 3, 2, "222222", "Rekening e-money belum dibuat (gagal burekol)", "53"),
    _Spec("pin_blocked", 4, 3, "333333", "PIN terblokir setelah 3 kali salah", "75"),
    _Spec("lost", 5, 4, "444444", "Kartu dilaporkan hilang", "41"),
    _Spec("replaced_old", 6, 5, "555555", "Kartu lama (rusak) yang sudah diganti", "62"),
    _Spec("blocked", 7, 6, "666666", "Kartu diblokir bank", "62"),
    _Spec("pkh_combo", 8, 7, "777777", "Kartu kombo PKH (tabungan + e-money)", "00"),
    _Spec("replaced_new", 9, 5, "888888", "Kartu pengganti: saldo sama dengan kartu lama", "00"),
)
NAMED_KPM = 8
NAMED_CARDS = 9

# Named KPM: (name, village index, pkh, NIK tail, valid KK?)
_NAMED_KPM = (
    ("Siti Aminah", 0, False),
    ("Sumiati Rahayu", 3, False),
    ("Asep Hidayat", 6, False),
    ("Partini Wibowo", 12, False),
    ("Yohanes Manafe", 30, False),
    ("Ketut Saputra", 18, False),
    ("Ujang Setiawan", 9, False),
    ("Nurhayati Lubis", 24, True),
)


def named_kpm() -> tuple[tuple[str, int, bool], ...]:
    return _NAMED_KPM


def demo_cards(bank: Bank) -> list[DemoCard]:
    from bank_penyalur.demo.generator import named_kpm_record  # generator imports this module

    cards = []
    for spec in _SPECS:
        record = named_kpm_record(bank, spec.kpm)
        cards.append(
            DemoCard(
                bank=bank.code,
                label=spec.label,
                pan=make_pan(bank.iin, spec.serial),
                pin=spec.pin,
                nik=record.nik,
                name=record.name,
                situation=spec.situation,
                expect_rc=spec.expect_rc,
            )
        )
    return cards


def all_demo_cards() -> list[DemoCard]:
    return [card for bank in BANKS.values() for card in demo_cards(bank)]


def specs() -> tuple[_Spec, ...]:
    return _SPECS


def demo_merchant_id(bank: Bank, serial: int = 1) -> str:
    """The demo e-Warong of each bank is serial 1 (`EWBNI0000000001`)."""
    return bank.merchant_id(serial)
