"""The terminal's offline decisions as pure functions: may this card buy this much, offline?

In a blank spot (wilayah khusus) the EDC cannot ask the bank. It decides from the card list the
switch sent at sign-on (`shared.offline`): the card must not be on the hot list; the NIK the
cashier reads from the holder's KTP or KK must match the card (its ID reference is on the list);
and the amount must fit what is left of the offline limit for this card this calendar month,
counting what this terminal already approved offline for it. No PIN is asked offline: the
terminal cannot check it, the ID check takes its place.

The facts (is the reference listed, how much was spent) come from the batch store; the decision
itself is here, with no storage and no clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared import keys as keylib
from shared import offline as shared_offline
from shared import rc as rc_table
from shared.money import format_idr
from shared.offline import ListHeader

NIK_LENGTH = 16  # NIK (KTP) and KK numbers are 16 digits

TEXT_NO_LIST = "Daftar kartu offline belum dimuat, lakukan sign-on saat ada sinyal"
TEXT_HOT_LISTED = "Kartu hilang/diblokir/diganti (daftar blokir): transaksi offline ditolak"
TEXT_NIK_MISMATCH = "NIK tidak cocok dengan kartu"
TEXT_INQUIRY_OFFLINE = "Cek saldo tidak tersedia saat offline (tidak ada sinyal). Cek saldo saat terminal online kembali."
TEXT_OFFLINE_APPROVED = "Disetujui offline, akan dikirim ke bank"

RC_NO_LIST = rc_table.ISSUER_UNAVAILABLE
RC_HOT_LISTED = rc_table.RESTRICTED_CARD
RC_NIK_MISMATCH = rc_table.DO_NOT_HONOUR
RC_LIMIT = rc_table.INSUFFICIENT_FUNDS


def nik_error(text: str) -> str | None:
    """Why `text` is not a NIK/KK number the cashier may key in, or None."""
    cleaned = text.strip()
    if len(cleaned) != NIK_LENGTH or not cleaned.isdigit() or not cleaned.isascii():
        return f"NIK harus {NIK_LENGTH} digit angka (sesuai KTP/KK)"
    return None


@dataclass(frozen=True, slots=True)
class CardRefs:
    """The references of one card (and the NIK keyed in) under the list key: none holds the
    card number or the NIK in clear."""

    hot: str
    id: str
    tally: str


def card_refs(list_key: bytes, pan: str, nik: str) -> CardRefs:
    return CardRefs(
        shared_offline.hot_ref(list_key, pan),
        shared_offline.id_ref(list_key, pan, nik),
        shared_offline.tally_ref(list_key, pan),
    )


def unwrap_list_key(tmk: bytes, header: ListHeader) -> bytes | None:
    """The card-list key of a list header, unwrapped under the terminal master key; None when
    it does not unwrap or its check value differs (not our key, or damaged)."""
    try:
        key = keylib.unwrap(tmk, header.key_wrapped)
    except ValueError:
        return None
    return key if shared_offline.list_key_check(key) == header.key_check.upper() else None


@dataclass(frozen=True, slots=True)
class OfflineFacts:
    """What the terminal knows about the card in the slot, from its stored card list."""

    list_loaded: bool
    hot_listed: bool = False
    id_matches: bool = False
    limit_idr: int = 0  # per card per calendar month
    spent_idr: int = 0  # approved offline by this terminal for this card this month

    @property
    def remaining_idr(self) -> int:
        return max(0, self.limit_idr - self.spent_idr)


@dataclass(frozen=True, slots=True)
class OfflineDecision:
    approved: bool
    rc: str
    reason: str
    remaining_idr: int | None = None


def decide(facts: OfflineFacts, amount_idr: int) -> OfflineDecision:
    """Approve an offline sale of `amount_idr`, or refuse it with a response code and a reason
    (in Bahasa Indonesia, for the screen)."""
    if not facts.list_loaded:
        return OfflineDecision(False, RC_NO_LIST, TEXT_NO_LIST)
    if facts.hot_listed:
        return OfflineDecision(False, RC_HOT_LISTED, TEXT_HOT_LISTED)
    if not facts.id_matches:
        return OfflineDecision(False, RC_NIK_MISMATCH, TEXT_NIK_MISMATCH)
    left = facts.remaining_idr
    if amount_idr > left:
        reason = f"Melebihi batas belanja offline bulan ini: sisa {format_idr(left)} untuk kartu ini"
        return OfflineDecision(False, RC_LIMIT, reason, left)
    return OfflineDecision(True, rc_table.APPROVED, TEXT_OFFLINE_APPROVED, left - amount_idr)
