"""ISO 8583 response codes (field 39) used across the network, with Indonesian and English texts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ResponseCode:
    code: str
    text_id: str
    text_en: str

    @property
    def approved(self) -> bool:
        return self.code == APPROVED


APPROVED = "00"
DO_NOT_HONOUR = "05"
INVALID_TRANSACTION = "12"
INVALID_AMOUNT = "13"
INVALID_CARD = "14"
FORMAT_ERROR = "30"
LOST_CARD = "41"
INSUFFICIENT_FUNDS = "51"
NO_EMONEY_ACCOUNT = "53"
EXPIRED = "54"
WRONG_PIN = "55"
NOT_PERMITTED = "57"
NOT_PERMITTED_TERMINAL = "58"
RESTRICTED_CARD = "62"
SECURITY_VIOLATION = "63"
PIN_TRIES_EXCEEDED = "75"
ISSUER_UNAVAILABLE = "91"
DUPLICATE = "94"
RECONCILE_ERROR = "95"
SYSTEM_ERROR = "96"

_TABLE: dict[str, ResponseCode] = {
    rc.code: rc
    for rc in (
        ResponseCode(APPROVED, "Transaksi berhasil", "Approved"),
        ResponseCode(DO_NOT_HONOUR, "Transaksi ditolak", "Do not honour"),
        ResponseCode(INVALID_TRANSACTION, "Transaksi tidak valid", "Invalid transaction"),
        ResponseCode(INVALID_AMOUNT, "Nominal tidak valid", "Invalid amount"),
        ResponseCode(INVALID_CARD, "Kartu tidak valid", "Invalid card number"),
        ResponseCode(FORMAT_ERROR, "Format pesan salah", "Format error"),
        ResponseCode(LOST_CARD, "Kartu dilaporkan hilang", "Lost card"),
        ResponseCode(INSUFFICIENT_FUNDS, "Saldo tidak cukup", "Insufficient funds"),
        ResponseCode(NO_EMONEY_ACCOUNT, "Rekening e-money tidak ada", "No e-money sub-account"),
        ResponseCode(EXPIRED, "Transaksi kedaluwarsa", "Expired (offline advice older than limit)"),
        ResponseCode(WRONG_PIN, "PIN salah", "Incorrect PIN"),
        ResponseCode(NOT_PERMITTED, "Transaksi tidak diizinkan", "Transaction not permitted to cardholder"),
        ResponseCode(NOT_PERMITTED_TERMINAL, "Terminal/e-Warong tidak terdaftar", "Not permitted to terminal"),
        ResponseCode(RESTRICTED_CARD, "Kartu diblokir", "Restricted card"),
        ResponseCode(SECURITY_VIOLATION, "Pelanggaran keamanan", "Security violation"),
        ResponseCode(PIN_TRIES_EXCEEDED, "PIN terblokir, hubungi bank", "PIN tries exceeded"),
        ResponseCode(ISSUER_UNAVAILABLE, "Bank tidak dapat dihubungi", "Issuer or switch inoperative"),
        ResponseCode(DUPLICATE, "Transaksi ganda", "Duplicate transmission"),
        ResponseCode(RECONCILE_ERROR, "Rekonsiliasi tidak cocok", "Reconcile error"),
        ResponseCode(SYSTEM_ERROR, "Gangguan sistem", "System malfunction"),
    )
}

ALL_CODES: tuple[str, ...] = tuple(_TABLE)


def lookup(code: str) -> ResponseCode:
    """The entry for `code`; unknown codes are reported as-is rather than raising."""
    found = _TABLE.get(code)
    if found is not None:
        return found
    return ResponseCode(code, f"Kode respons {code}", f"Response code {code}")


# What the cashier tells the KPM after a decline, in plain words: the next step to take.
_ADVICE_ID: dict[str, str] = {
    INVALID_TRANSACTION: "Transaksi ini tidak dilayani. Gunakan menu CEK SALDO atau BELANJA.",
    INVALID_AMOUNT: "Periksa nominal belanja, lalu ulangi.",
    INVALID_CARD: "Kartu tidak dikenal bank. Pastikan kartu KKS yang benar, atau hubungi bank penyalur.",
    FORMAT_ERROR: "Ulangi transaksi. Bila terulang, laporkan ke bank penyalur.",
    LOST_CARD: "Kartu tercatat hilang. Jangan dipakai lagi; KPM melapor ke bank penyalur untuk kartu pengganti.",
    INSUFFICIENT_FUNDS: "Saldo belum masuk atau tidak cukup. Cek saldo; bila bantuan bulan ini belum masuk, tanyakan ke pendamping atau bank penyalur.",
    NO_EMONEY_ACCOUNT: "Rekening e-money belum dibuka. KPM datang ke bank penyalur membawa KKS dan KTP.",
    EXPIRED: "Transaksi terlalu lama tertunda. Hubungi bank penyalur.",
    WRONG_PIN: "PIN salah. Ulangi dengan hati-hati: setelah 3 kali salah, PIN terblokir.",
    NOT_PERMITTED: "Transaksi tidak diizinkan untuk kartu ini (dana bantuan tidak dapat ditarik tunai).",
    NOT_PERMITTED_TERMINAL: "Terminal belum terdaftar atau perlu sign-on. Pilih menu SIGN ON, lalu ulangi.",
    RESTRICTED_CARD: "Kartu diblokir atau sudah diganti. Gunakan kartu pengganti, atau KPM ke bank penyalur.",
    SECURITY_VIOLATION: "Terminal tidak dapat membuktikan kunci induknya. Hubungi bank penyalur untuk memasang ulang kunci terminal.",
    PIN_TRIES_EXCEEDED: "PIN terblokir. KPM datang ke bank penyalur membawa KKS dan KTP untuk reset PIN.",
    ISSUER_UNAVAILABLE: "Bank tidak dapat dihubungi. Coba lagi beberapa saat; saldo KPM tidak berkurang.",
    DUPLICATE: "Transaksi yang sama sudah diproses. Cek saldo sebelum mengulang.",
    RECONCILE_ERROR: "Data batch tidak cocok. Lakukan settlement ulang.",
    SYSTEM_ERROR: "Gangguan sistem. Coba lagi beberapa saat; bila terulang, laporkan ke bank penyalur.",
}


def advice(code: str) -> str | None:
    """What to do next after `code`, in Bahasa Indonesia; None when approved."""
    if code == APPROVED:
        return None
    return _ADVICE_ID.get(code, "Hubungi bank penyalur dengan menyebutkan kode respons di struk.")
