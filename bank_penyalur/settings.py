"""Settings of one bank instance, from arguments or SEMBAKO_* environment variables.

Without `zpk_hex` / `pvk_hex` a bank uses fixed, public demo keys: anyone holding its database
could then recover a PIN from its verification value. Without `pan_hash_key_hex` / `pan_key_hex`
(the keyed hash cards are found by, and the AES key their numbers are sealed with) the same holds
for card numbers. A bank on demo keys says so at start and
in /health; with `require_real_keys` it refuses to start (`check_keys`).

Its HTTP API takes two credentials (`shared.credentials`): `switch_credential`, the only one
accepted on what the switch calls (authorisations, the offline card list, postings), and
`operator_credential`, accepted with the switch's on the operations endpoints (cards, KPM,
merchants, disbursements, reports, ops). Without them the bank accepts the public demo
credentials, says so like for the demo keys, and `require_real_keys` refuses them too.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.credentials import HOLDERS, OPERATOR, SWITCH, bearer, check_credential, demo_credential
from shared.keys import demo_key_hex

from shared.banks import get_bank


WORKERS_MAX = 64  # processes of one bank (`sembako bank serve --workers`)


class BankSettings(BaseSettings):
    # Errors never repeat the value given: it may be a credential or a key.
    model_config = SettingsConfigDict(env_prefix="SEMBAKO_BANK_", extra="ignore", hide_input_in_errors=True)

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
    # Bearer credentials of the HTTP API: the switch's, and this bank's operators'.
    switch_credential: SecretStr | None = None
    operator_credential: SecretStr | None = None
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
    auth_batch_body_max_bytes: int = 512 * 1024  # POST /v1/authorisations/batch: up to 128 of them
    body_max_bytes: int = 4 * 1024 * 1024
    # PostgreSQL schema holding this bank's tables; default bank_<code>.
    db_schema: str | None = None
    # Simulated time (shared.clock.FileClock) for a scenario network; unset: the system clock.
    clock_file: Path | None = None

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

    def credential(self, holder: str) -> str:
        """The credential `holder` ("switch" or "operator") presents; the demo one when not set."""
        given = self.switch_credential if holder == SWITCH else self.operator_credential if holder == OPERATOR else None
        return given.get_secret_value() if given is not None else demo_credential(self.bank_code, holder)

    def bearer(self, holder: str) -> dict[str, str]:
        """The header a caller holding `holder`'s credential sends to this bank."""
        return bearer(self.credential(holder))

    @property
    def demo_credential_names(self) -> tuple[str, ...]:
        """The holders ("switch", "operator") whose credential is the public demo one."""
        return tuple(h for h in HOLDERS if self.credential(h) == demo_credential(self.bank_code, h))

    @field_validator("switch_credential", "operator_credential")
    @classmethod
    def _credential_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_credential(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _credentials_differ(self) -> BankSettings:
        switch, operator = self.switch_credential, self.operator_credential
        if switch is not None and operator is not None and switch.get_secret_value() == operator.get_secret_value():
            raise ValueError("the switch and operator credentials must differ: an operator could otherwise authorise")
        return self

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


def credential_variable(holder: str) -> str:
    """The environment variable setting the credential of `holder` ("switch", "operator")."""
    return f"SEMBAKO_BANK_{holder.upper()}_CREDENTIAL"


class DemoKeysRefused(ValueError):
    """The bank is told to require real keys and has (some) demo keys or credentials."""


def check_keys(settings: BankSettings) -> None:
    """Raise DemoKeysRefused when real keys are required and a demo key or credential is in use."""
    if not settings.require_real_keys:
        return
    keys, holders = settings.demo_key_names, settings.demo_credential_names
    demo = [*keys, *(f"{h} credential" for h in holders)]
    if demo:
        variables = ", ".join([*(key_variable(n) for n in keys), *(credential_variable(h) for h in holders)])
        raise DemoKeysRefused(
            f"bank {settings.bank_code}: real keys are required (SEMBAKO_BANK_REQUIRE_REAL_KEYS) "
            f"but {', '.join(demo)} would be the public demo ones; set {variables}"
        )
