"""Settings of one bank instance, from arguments or SEMBAKO_* environment variables.

Without `zpk_hex` / `pvk_hex` a bank uses fixed, public demo keys: anyone holding its database
could then recover a PIN from its verification value. Without `pan_hash_key_hex` / `pan_key_hex`
(the keyed hash cards are found by, and the AES key their numbers are sealed with) the same holds
for card numbers. A bank on demo keys says so at start and
in /health; with `require_real_keys` it refuses to start (`check_keys`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.keys import demo_key_hex

from shared.banks import get_bank


class BankSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEMBAKO_BANK_", extra="ignore")

    bank: str = "bni"
    host: str = "127.0.0.1"
    port: int | None = None
    data_dir: Path = Field(
        default=Path("data"), validation_alias=AliasChoices("SEMBAKO_DATA_DIR", "data_dir")
    )
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "database_url")
    )
    # Zone PIN key shared with the switch (double-length TDES, hex) and the PIN verification key.
    zpk_hex: str | None = None
    pvk_hex: str | None = None
    # Card numbers at rest: HMAC key of the PAN reference cards are looked up by, and the AES key
    # (16, 24 or 32 bytes, hex) sealing the PAN in the cards table. Changing either needs a
    # re-keying of the cards table: cards stored under the old keys are no longer found.
    pan_hash_key_hex: str | None = None
    pan_key_hex: str | None = None
    require_real_keys: bool = False
    benefit_idr: int = 150_000
    offline_limit_idr: int = 150_000
    advice_max_age_days: int = 90
    pin_tries_max: int = 3
    db_pool_size: int = 20
    worker_threads: int = 4  # request handlers running database work at once (not authorisations)
    batch_max: int = 64  # authorisations answered in one transaction
    batch_queue_max: int = 4_096  # authorisations waiting; beyond this the bank answers 503
    batch_writers_pg: int = 2  # authorisation writer threads on PostgreSQL (SQLite: 1)
    gil_switch_interval_ms: float = 0.5
    # Request bodies: an authorisation is a few hundred bytes; an opening carries up to 10,000 KPM.
    auth_body_max_bytes: int = 16 * 1024
    body_max_bytes: int = 4 * 1024 * 1024
    # PostgreSQL schema holding this bank's tables; default bank_<code>.
    db_schema: str | None = None

    @property
    def bank_code(self) -> str:
        return get_bank(self.bank).code

    @property
    def listen_port(self) -> int:
        return self.port or get_bank(self.bank).port

    @property
    def zpk(self) -> str:
        return self.zpk_hex or demo_key_hex(self.bank_code, "zpk")

    @property
    def pvk(self) -> str:
        return self.pvk_hex or demo_key_hex(self.bank_code, "pvk")

    @property
    def pan_hash_key(self) -> str:
        return self.pan_hash_key_hex or demo_key_hex(self.bank_code, "pan_hash")

    @property
    def pan_key(self) -> str:
        return self.pan_key_hex or demo_key_hex(self.bank_code, "pan")

    @property
    def demo_key_names(self) -> tuple[str, ...]:
        """The keys ("zpk", "pvk", "pan_hash", "pan") that are the public demo keys: not set, or
        set to them."""
        given = {"zpk": self.zpk_hex, "pvk": self.pvk_hex, "pan_hash": self.pan_hash_key_hex, "pan": self.pan_key_hex}
        return tuple(
            name for name, value in given.items()
            if value is None or value.upper() == demo_key_hex(self.bank_code, name)
        )


def key_variable(name: str) -> str:
    """The environment variable setting key `name` ("zpk", "pan_hash", ...)."""
    return f"SEMBAKO_BANK_{name.upper()}_HEX" if name in ("zpk", "pvk") else f"SEMBAKO_BANK_{name.upper()}_KEY_HEX"


class DemoKeysRefused(ValueError):
    """The bank is told to require real keys and has (some) demo keys."""


def check_keys(settings: BankSettings) -> None:
    """Raise DemoKeysRefused when real keys are required and a demo key is in use."""
    names = settings.demo_key_names
    if settings.require_real_keys and names:
        variables = ", ".join(key_variable(name) for name in names)
        raise DemoKeysRefused(
            f"bank {settings.bank_code}: real keys are required (SEMBAKO_BANK_REQUIRE_REAL_KEYS) "
            f"but {', '.join(names)} would be the public demo keys; set {variables}"
        )
