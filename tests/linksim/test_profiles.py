"""Link profiles: built-ins, validation, and loading from TOML or JSON files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from linksim import (
    BUILT_IN,
    OFFLINE,
    ONLINE,
    VSAT,
    LinkProfile,
    builtin_profile,
    load_profile,
)


def test_built_in_profiles_match_the_field() -> None:
    assert ONLINE.rtt_ms - ONLINE.jitter_ms >= 30 and ONLINE.rtt_ms + ONLINE.jitter_ms <= 150
    assert VSAT.rtt_ms == 600 and 0.01 <= VSAT.loss <= 0.05 and VSAT.disconnect_rate > 0
    assert VSAT.bandwidth_bytes_per_s == 4_096
    assert not OFFLINE.available and OFFLINE.label == "OFFLINE"
    assert VSAT.label == "VSAT ~600 ms"
    assert builtin_profile("vsat") is VSAT and set(BUILT_IN) >= {"online", "vsat", "offline"}
    with pytest.raises(ValueError, match="unknown link profile 'lte'"):
        builtin_profile("lte")


@pytest.mark.parametrize(
    ("values", "field_name"),
    [
        ({"rtt_ms": -1}, "rtt_ms"),
        ({"rtt_ms": 10, "jitter_ms": 20}, "jitter_ms"),
        ({"loss": 1.5}, "loss"),
        ({"loss": float("nan")}, "loss"),
        ({"disconnect_rate": -0.1}, "disconnect_rate"),
        ({"bandwidth_bytes_per_s": -5}, "bandwidth_bytes_per_s"),
        ({"rtt_ms": "600"}, "rtt_ms"),
        ({"rtt_ms": True}, "rtt_ms"),
        ({"name": ""}, "name"),
    ],
)
def test_nonsense_values_name_the_field(values: dict, field_name: str) -> None:
    with pytest.raises(ValueError, match=field_name):
        LinkProfile(**{"name": "bad", **values})


def test_a_toml_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "desa.toml"
    path.write_text('rtt_ms = 800\njitter_ms = 150\nloss = 0.05\nbandwidth_bytes_per_s = 2048\n')
    profile = load_profile(path)
    assert profile == LinkProfile("desa", rtt_ms=800, jitter_ms=150, loss=0.05, bandwidth_bytes_per_s=2048)


def test_a_json_file_loads_with_its_own_name(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"name": "gprs", "rtt_ms": 300, "disconnect_rate": 0.01}))
    assert load_profile(path) == LinkProfile("gprs", rtt_ms=300, disconnect_rate=0.01)


@pytest.mark.parametrize(
    ("text", "field_name"),
    [
        ("loss = 2\n", "loss"),
        ("rtt_ms = -600\n", "rtt_ms"),
        ("rtt_ms = 600\nlatency_ms = 5\n", "latency_ms"),
        ("rtt_ms = 600.5\n", "rtt_ms"),
    ],
)
def test_a_profile_file_with_nonsense_is_refused(tmp_path: Path, text: str, field_name: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=field_name) as raised:
        load_profile(path)
    assert str(path) in str(raised.value)


def test_a_broken_or_oversized_file_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{rtt_ms: ")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_profile(broken)
    huge = tmp_path / "huge.toml"
    huge.write_text("# " + "x" * 20_000)
    with pytest.raises(ValueError, match="at most"):
        load_profile(huge)
    other = tmp_path / "p.yaml"
    other.write_text("rtt_ms: 1")
    with pytest.raises(ValueError, match=".toml or .json"):
        load_profile(other)
