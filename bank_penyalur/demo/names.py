"""Indonesian given names and family names for generated KPM."""

from __future__ import annotations

GIVEN_FEMALE = (
    "Siti", "Sri", "Dewi", "Nur", "Wati", "Yuliani", "Rina", "Sumiati", "Aminah", "Suharti",
    "Kartini", "Lestari", "Ratna", "Endang", "Partini", "Sulastri", "Fatimah", "Maria", "Yohana",
    "Marlina", "Ani", "Tuti", "Ernawati", "Nurhayati", "Rohani", "Maemunah", "Darsih", "Ponirah",
)
GIVEN_MALE = (
    "Agus", "Budi", "Slamet", "Joko", "Bambang", "Asep", "Dedi", "Hendra", "Wahyu", "Supriyadi",
    "Sutrisno", "Rahmat", "Yusuf", "Andi", "Made", "Ketut", "Yohanes", "Petrus", "Daeng",
    "Muhammad", "Sukirman", "Ujang", "Darmin", "Sarmin", "Tarno", "Paulus", "Kornelis", "Haris",
)
FAMILY = (
    "Rahayu", "Saputra", "Wibowo", "Hidayat", "Setiawan", "Kurniawan", "Susanto", "Pratama",
    "Nugroho", "Santoso", "Suryani", "Lubis", "Siregar", "Simanjuntak", "Tanjung", "Nasution",
    "Wenda", "Kogoya", "Tabuni", "Manafe", "Bessie", "Ndun", "Pakpahan", "Sinaga", "Rangkuti",
    "Halim", "Syamsuddin", "Mappasessu", "Rusli", "Purnomo", "Sulistyo", "Hartono",
)
