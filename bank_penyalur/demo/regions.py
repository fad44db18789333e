"""A small real-world sample of Indonesian regions (province / regency / district / village),
with the two-digit province and regency codes that open a NIK."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Village:
    province: str
    regency: str
    district: str
    village: str
    code: str  # province + regency + district code, the first 6 digits of a NIK
    position: int  # order of the village within its district


_TREE: dict[tuple[str, str], dict[tuple[str, str], dict[tuple[str, str], tuple[str, ...]]]] = {
    ("32", "Jawa Barat"): {
        ("04", "Kabupaten Bandung"): {
            ("01", "Soreang"): ("Soreang", "Pamekaran", "Cingcin"),
            ("14", "Ciwidey"): ("Ciwidey", "Lebakmuncang", "Panundaan"),
        },
        ("05", "Kabupaten Garut"): {
            ("01", "Garut Kota"): ("Pakuwon", "Kota Kulon", "Ciwalen"),
            ("12", "Cikajang"): ("Cikajang", "Mekarjaya", "Padasuka"),
        },
    },
    ("33", "Jawa Tengah"): {
        ("02", "Kabupaten Banyumas"): {
            ("05", "Sokaraja"): ("Sokaraja Kulon", "Karangrau", "Banjaranyar"),
            ("10", "Baturraden"): ("Karangmangu", "Kemutug Lor", "Pamijen"),
        },
        ("29", "Kabupaten Brebes"): {
            ("01", "Brebes"): ("Limbangan Wetan", "Pasarbatang", "Kaligangsa Kulon"),
        },
    },
    ("35", "Jawa Timur"): {
        ("07", "Kabupaten Malang"): {
            ("01", "Kepanjen"): ("Kepanjen", "Talangagung", "Ngadilangkung"),
            ("22", "Tumpang"): ("Tumpang", "Jeru", "Malangsuko"),
        },
        ("09", "Kabupaten Jember"): {
            ("09", "Ambulu"): ("Ambulu", "Sabrang", "Karang Anyar"),
        },
    },
    ("53", "Nusa Tenggara Timur"): {
        ("01", "Kabupaten Kupang"): {
            ("04", "Kupang Timur"): ("Babau", "Oesao", "Naibonat"),
        },
        ("10", "Kabupaten Manggarai"): {
            ("06", "Ruteng"): ("Carep", "Pong Murung", "Watu"),
        },
    },
    ("73", "Sulawesi Selatan"): {
        ("06", "Kabupaten Gowa"): {
            ("02", "Somba Opu"): ("Sungguminasa", "Tompobalang", "Bontoramba"),
        },
        ("22", "Kabupaten Luwu Utara"): {
            ("04", "Masamba"): ("Kasimbong", "Bone", "Pombakka"),
        },
    },
    ("94", "Papua"): {
        ("71", "Kota Jayapura"): {
            ("01", "Jayapura Utara"): ("Gurabesi", "Bhayangkara", "Trikora"),
        },
        ("03", "Kabupaten Jayawijaya"): {
            ("01", "Wamena"): ("Wamena Kota", "Sinakma", "Lanny"),
        },
    },
}


def _flatten() -> tuple[Village, ...]:
    villages = []
    for (p_code, province), regencies in _TREE.items():
        for (r_code, regency), districts in regencies.items():
            for (d_code, district), names in districts.items():
                code = f"{p_code}{r_code}{d_code}"
                villages.extend(Village(province, regency, district, name, code, i) for i, name in enumerate(names))
    return tuple(villages)


VILLAGES: tuple[Village, ...] = _flatten()
