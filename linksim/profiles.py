"""Link profiles: the behaviour of the line between an EDC terminal and the switch, as data.

A profile gives the base round trip (rtt_ms) and its jitter, the probability that a frame is
lost (per direction), the probability per frame that the link is cut, the bandwidth (0 means
unlimited) and whether there is a link at all. Profiles are validated on creation: a nonsense
value raises ValueError naming the field. `load_profile` reads one from a small TOML or JSON
file and refuses unknown keys.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

RTT_MS_MAX = 60_000
JITTER_MS_MAX = 60_000
BANDWIDTH_BYTES_PER_S_MAX = 1_000_000_000
NAME_CHARS_MAX = 32
PROFILE_FILE_BYTES_MAX = 16_384


@dataclass(frozen=True, slots=True)
class LinkProfile:
    """One link's behaviour. A round trip takes rtt_ms plus or minus up to jitter_ms: each
    direction gets half of rtt_ms plus or minus up to half of jitter_ms."""

    name: str
    rtt_ms: int = 0
    jitter_ms: int = 0
    loss: float = 0.0  # probability a frame is lost, per direction
    disconnect_rate: float = 0.0  # probability per frame that the link is cut
    bandwidth_bytes_per_s: int = 0  # 0 = unlimited
    available: bool = True  # False: no link at all (connections refused)

    def __post_init__(self) -> None:
        _check_name(self.name)
        _check_int("rtt_ms", self.rtt_ms, RTT_MS_MAX)
        _check_int("jitter_ms", self.jitter_ms, JITTER_MS_MAX)
        if self.jitter_ms > self.rtt_ms:
            raise ValueError(f"jitter_ms ({self.jitter_ms}) must not exceed rtt_ms ({self.rtt_ms})")
        _check_probability("loss", self.loss)
        _check_probability("disconnect_rate", self.disconnect_rate)
        _check_int("bandwidth_bytes_per_s", self.bandwidth_bytes_per_s, BANDWIDTH_BYTES_PER_S_MAX)
        if not isinstance(self.available, bool):
            raise ValueError(f"available must be true or false, got {self.available!r}")  # noqa: TRY004

    @property
    def label(self) -> str:
        """Short text for a status line, e.g. "VSAT ~600 ms" or "OFFLINE"."""
        if not self.available:
            return "OFFLINE"
        return f"{self.name.upper()} ~{self.rtt_ms} ms"


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_CHARS_MAX:
        raise ValueError(f"name must be a non-empty text of at most {NAME_CHARS_MAX} characters, got {name!r}")


def _check_int(field_name: str, value: object, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{field_name} must be a whole number, got {value!r}")  # noqa: TRY004
    if not 0 <= value <= maximum:
        raise ValueError(f"{field_name} must be within [0, {maximum}], got {value}")


def _check_probability(field_name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{field_name} must be a number within [0, 1], got {value!r}")  # noqa: TRY004
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{field_name} must be within [0, 1], got {value}")


ONLINE = LinkProfile("online", rtt_ms=90, jitter_ms=60, loss=0.001, disconnect_rate=0.0001)
VSAT = LinkProfile(
    "vsat", rtt_ms=600, jitter_ms=100, loss=0.03, disconnect_rate=0.002, bandwidth_bytes_per_s=4_096
)
OFFLINE = LinkProfile("offline", available=False)
DIRECT = LinkProfile("direct")  # no delay, no loss: a plain pass-through

BUILT_IN: dict[str, LinkProfile] = {p.name: p for p in (ONLINE, VSAT, OFFLINE, DIRECT)}


def builtin_profile(name: str) -> LinkProfile:
    """A built-in profile by name (online, vsat, offline, direct)."""
    try:
        return BUILT_IN[name]
    except KeyError:
        raise ValueError(f"unknown link profile {name!r}: expected one of {', '.join(BUILT_IN)}") from None


def profile_from_mapping(data: dict[str, Any], default_name: str = "custom") -> LinkProfile:
    """A profile from a mapping of field -> value; unknown keys are refused."""
    if not isinstance(data, dict):
        raise ValueError(f"a link profile must be a table of fields, got {type(data).__name__}")  # noqa: TRY004
    known = {f.name for f in fields(LinkProfile)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown link profile field(s): {', '.join(unknown)}; expected {', '.join(sorted(known))}")
    return LinkProfile(**{"name": default_name, **data})


def load_profile(path: str | Path) -> LinkProfile:
    """A profile from a .toml or .json file; the name defaults to the file's stem."""
    path = Path(path)
    raw = _read_bounded(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data = tomllib.loads(raw)
        elif suffix == ".json":
            data = json.loads(raw)
        else:
            raise ValueError(f"{path}: a link profile file must end in .toml or .json")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not valid {suffix[1:].upper()}: {exc}") from None
    try:
        return profile_from_mapping(data, default_name=path.stem[:NAME_CHARS_MAX] or "custom")
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _read_bounded(path: Path) -> str:
    with path.open("rb") as handle:
        raw = handle.read(PROFILE_FILE_BYTES_MAX + 1)
    if len(raw) > PROFILE_FILE_BYTES_MAX:
        raise ValueError(f"{path}: a link profile file is at most {PROFILE_FILE_BYTES_MAX} bytes")
    return raw.decode("utf-8")
