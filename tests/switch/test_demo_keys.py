"""A switch on the public demo keys says so (one warning line at start, `demo_keys` in /health),
and with SEMBAKO_SWITCH_REQUIRE_REAL_KEYS it refuses to start until every key is real: LMK,
the banks' zone PIN keys, the terminals' master keys (also those registered earlier) and the
PAN hash key and the PAN encryption key."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest

from shared.banks import BANKS
from shared.keys import demo_key_hex, new_key
from switch.runtime import RealKeysRequired, SwitchRuntime
from switch.settings import SwitchSettings, network_terminal_ids
from tests.switch.network import free_port

ALL_DEMO = ["LMK", "ZPK bni", "ZPK bri", "ZPK mandiri", "ZPK btn", "TMK of 192 terminals", "PAN hash key", "PAN encryption key"]


def real_keys() -> dict:
    return {
        "lmk_hex": new_key().hex(),
        "zpk_hex": {code: new_key().hex() for code in BANKS},
        "tmk_hex": {tid: new_key().hex() for tid in network_terminal_ids()},
        "pan_hash_key_hex": "7E" * 32,
        "pan_key_hex": "5A" * 32,
    }


def settings(data_dir: Path, **overrides) -> SwitchSettings:  # noqa: ANN003
    return SwitchSettings(data_dir=data_dir, iso_port=0, ops_port=free_port(), **overrides)


def test_the_settings_name_every_key_left_at_its_demo_value(tmp_path: Path) -> None:
    assert settings(tmp_path).demo_keys() == ALL_DEMO
    assert settings(tmp_path, **real_keys()).demo_keys() == []
    keys = real_keys()
    keys["zpk_hex"]["bri"] = demo_key_hex("bri", "zpk").lower()  # set, but to the public value
    del keys["tmk_hex"]["BTN00048"]
    assert settings(tmp_path, **keys).demo_keys() == ["ZPK bri", "TMK of 1 terminals"]


def test_key_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="terminals the network does not have: XYZ00001"):
        settings(tmp_path, tmk_hex={"XYZ00001": new_key().hex()})
    with pytest.raises(ValueError, match="at least 16 bytes"):
        settings(tmp_path, pan_hash_key_hex="ABCD")
    for bad in ("ABCD", "5A" * 20, "ZZ" * 16):
        with pytest.raises(ValueError, match="AES key of 16, 24 or 32 bytes"):
            settings(tmp_path, pan_key_hex=bad)
    assert settings(tmp_path, pan_key_hex="5A" * 16).demo_keys()[-1] == "PAN hash key"


def test_required_real_keys_refuse_the_demo_ones_before_anything_opens(tmp_path: Path) -> None:
    keys = real_keys()
    del keys["lmk_hex"]
    with pytest.raises(RealKeysRequired) as refused:
        SwitchRuntime(settings(tmp_path, require_real_keys=True, **keys))
    message = str(refused.value)
    assert "SEMBAKO_SWITCH_REQUIRE_REAL_KEYS" in message and "public demo ones: LMK." in message
    assert list(tmp_path.iterdir()) == []  # no journal was created


async def test_a_switch_on_demo_keys_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    runtime = SwitchRuntime(settings(tmp_path))
    with caplog.at_level(logging.WARNING, logger="switch"):
        await runtime.start()
    try:
        [warning] = [r for r in caplog.records if "DEMO KEYS" in r.getMessage()]
        assert warning.getMessage().endswith(", ".join(ALL_DEMO))
        assert await health(runtime) is True
    finally:
        await runtime.stop()


async def test_a_switch_on_real_keys_starts_quietly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    runtime = SwitchRuntime(settings(tmp_path, require_real_keys=True, **real_keys()))
    with caplog.at_level(logging.WARNING, logger="switch"):
        await runtime.start()
    try:
        assert not [r for r in caplog.records if "DEMO KEYS" in r.getMessage()]
        assert await health(runtime) is False
    finally:
        await runtime.stop()


async def test_terminals_registered_on_demo_master_keys_keep_the_switch_from_starting(tmp_path: Path) -> None:
    """The journal keeps a terminal's master key once registered: real TMKs set later do not
    replace demo ones stored by an earlier run, and the switch says which are left."""
    keys = real_keys()
    earlier = SwitchRuntime(settings(tmp_path, **{**keys, "tmk_hex": {}}))
    await earlier.start(with_ops_api=False)
    await earlier.stop()

    later = SwitchRuntime(settings(tmp_path, require_real_keys=True, **keys))
    with pytest.raises(RealKeysRequired, match="demo ones: TMK of 192 registered terminals"):
        await later.start(with_ops_api=False)
    later.db.dispose()


async def health(runtime: SwitchRuntime) -> bool | None:
    url = f"http://127.0.0.1:{runtime.settings.ops_port}/health"
    async with httpx.AsyncClient(timeout=5) as client:
        for _ in range(100):
            try:
                return (await client.get(url)).json()["demo_keys"]
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    raise AssertionError("ops API did not answer")

