"""Settings of the e-Warong POS, from options or SEMBAKO_EWARONG_* environment variables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.keys import demo_key_hex

DEFAULT_EWARONG = "EWBNI0000000001"
DEFAULT_SWITCH = "127.0.0.1:8583"


class ShopSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEMBAKO_EWARONG_", extra="ignore")

    data_dir: Path = Field(default=Path("data"), validation_alias=AliasChoices("SEMBAKO_DATA_DIR", "data_dir"))
    database_url: str | None = Field(default=None, validation_alias=AliasChoices("DATABASE_URL", "database_url"))
    # PostgreSQL schema of the shop's tables (SQLite: the file <data_dir>/ewarong.sqlite3).
    db_schema: str = "ewarong"
    db_pool_size: int = 5
    # Key of the HMAC-SHA256 that turns a card number into the reference used to count KPM.
    card_ref_key_hex: str | None = None
    # Where refusals above HET are reported (the switch's ops API; empty: not reported), with a
    # token of the e-Warong's bank (default: <data_dir>/pos-token-<bank>, a viewer token of the
    # bank of the terminal, as `sembako up` writes it).
    ops_url: str | None = "http://127.0.0.1:8000"
    ops_token: SecretStr | None = None

    @property
    def card_ref_key(self) -> bytes:
        return bytes.fromhex(self.card_ref_key_hex or demo_key_hex("ewarong", "card_ref"))


@dataclass(frozen=True, slots=True)
class ShopOptions:
    """What `sembako ewarong` hands to the cashier screen (`ewarong_pos.app.run_app`)."""

    ewarong_id: str
    terminal_id: str
    switch_host: str
    switch_port: int
    data_dir: Path
    database_url: str | None
    link: str | None = None  # the link simulator's profile between the EDC and the switch
    link_seed: int = 0

    @property
    def switch(self) -> str:
        return f"{self.switch_host}:{self.switch_port}"

    def settings(self) -> ShopSettings:
        """Shop settings for these options (environment variables fill in the rest)."""
        overrides: dict = {"data_dir": self.data_dir}
        if self.database_url:
            overrides["database_url"] = self.database_url
        return ShopSettings(**overrides)
