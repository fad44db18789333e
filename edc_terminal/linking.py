"""A terminal's link to the switch through the link simulator (`--link online|vsat|offline`):
the terminal talks to a local `linksim.LinkProxy`, which plays the profile towards the switch."""

from __future__ import annotations

from linksim import BUILT_IN, LinkProfile, LinkProxy, builtin_profile

LINK_CHOICES = tuple(name for name in BUILT_IN if name != "direct")
PROXY_HOST = "127.0.0.1"


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
