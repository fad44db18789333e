"""Link simulator: a TCP proxy between EDC terminals and the switch that plays a link profile
(online 4G/GPRS, VSAT, offline) with seeded, reproducible delay, loss and disconnects."""

from .profiles import (
    BUILT_IN,
    DIRECT,
    OFFLINE,
    ONLINE,
    VSAT,
    LinkProfile,
    builtin_profile,
    load_profile,
)
from .proxy import DIRECTIONS, TO_SWITCH, TO_TERMINAL, LinkCounters, LinkProxy

__all__ = [
    "BUILT_IN",
    "DIRECT",
    "DIRECTIONS",
    "OFFLINE",
    "ONLINE",
    "TO_SWITCH",
    "TO_TERMINAL",
    "VSAT",
    "LinkCounters",
    "LinkProfile",
    "LinkProxy",
    "builtin_profile",
    "load_profile",
]
