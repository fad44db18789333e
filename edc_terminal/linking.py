"""A terminal's link to the switch through the link simulator (`--link online|vsat|offline`):
the terminal talks to a local `linksim.LinkProxy`, which plays the profile towards the switch."""

from __future__ import annotations

import math
from dataclasses import replace

from linksim import BUILT_IN, LinkProfile, LinkProxy, builtin_profile

from edc_terminal.core import CoreConfig

LINK_CHOICES = tuple(name for name in BUILT_IN if name != "direct")
PROXY_HOST = "127.0.0.1"
EXCHANGE_BYTES = 600  # a request and its answer with framing, rounded up (a 0200 is ~170 bytes)
ROUND_TRIPS_ALLOWED = 3  # of the link's worst round trip, on top of the base wait


def link_profile(name: str | None) -> LinkProfile | None:
    """The profile named on the command line, or None for a direct connection.
    Raises ValueError (Indonesian text) for an unknown name."""
    if name is None:
        return None
    if name not in LINK_CHOICES:
        raise ValueError(f"Profil link tidak dikenal {name!r}: pilih {', '.join(LINK_CHOICES)}")
    return builtin_profile(name)


async def start_proxy(profile: LinkProfile, seed: int, switch_host: str, switch_port: int) -> LinkProxy:
    """A proxy on an ephemeral local port playing `profile` (seeded) towards the switch."""
    return await LinkProxy(PROXY_HOST, 0, switch_host, switch_port, profile, seed=seed).start()


def link_allowance_ms(profile: LinkProfile | None) -> int:
    """What the link adds to one exchange at worst: a few of its slowest round trips, and the
    time to carry a request and its answer at its bandwidth. 0 for a direct connection."""
    if profile is None or not profile.available:
        return 0
    transfer_ms = math.ceil(EXCHANGE_BYTES * 1000 / profile.bandwidth_bytes_per_s) if profile.bandwidth_bytes_per_s else 0
    return ROUND_TRIPS_ALLOWED * (profile.rtt_ms + profile.jitter_ms) + transfer_ms


def core_config(profile: LinkProfile | None, base: CoreConfig = CoreConfig()) -> CoreConfig:
    """The terminal's timeouts on `profile`: each base wait (the switch's and the bank's own
    time) plus the link's allowance. Online adds 0.45 s, VSAT 2.25 s: a slow answer on VSAT is
    waited for instead of being reversed, and a lost one is still reversed within seconds."""
    extra_ms = link_allowance_ms(profile)
    return replace(
        base,
        response_timeout_ms=base.response_timeout_ms + extra_ms,
        network_timeout_ms=base.network_timeout_ms + extra_ms,
        reversal_timeout_ms=base.reversal_timeout_ms + extra_ms,
    )
