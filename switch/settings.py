"""Settings of the switch, from options or SEMBAKO_SWITCH_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.banks import BANKS
from shared.keys import demo_key_hex


class SwitchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEMBAKO_SWITCH_", extra="ignore")

    host: str = "127.0.0.1"
    iso_port: int = 8583
    ops_port: int = 8000
    data_dir: Path = Field(default=Path("data"), validation_alias=AliasChoices("SEMBAKO_DATA_DIR", "data_dir"))
    database_url: str | None = Field(default=None, validation_alias=AliasChoices("DATABASE_URL", "database_url"))
    db_schema: str = "switch"
    # Where each bank listens; default 127.0.0.1 on the bank's own port.
    bank_urls: dict[str, str] = Field(default_factory=lambda: {b.code: f"http://127.0.0.1:{b.port}" for b in BANKS.values()})
    bank_timeout_ms: int = 2_500  # below the EDC's own timeout, so the terminal hears 91
    bank_connections_max: int = 64
    frame_bytes_max: int = 4_096
    idle_timeout_ms: int = 600_000  # a terminal connection silent this long is closed
    frame_timeout_ms: int = 5_000  # a frame started must arrive whole within this
    inflight_per_connection_max: int = 32
    connections_max: int = 2_048
    duplicates_remembered_max: int = 200_000
    journal_queue_max: int = 20_000
    journal_batch_max: int = 500
    saf_interval_ms: int = 500
    saf_batch_max: int = 50
    lmk_hex: str | None = None  # local master key wrapping the terminals' keys at rest
    zpk_hex: dict[str, str] = Field(default_factory=dict)  # per bank; default: the banks' demo ZPKs

    @property
    def lmk(self) -> str:
        return self.lmk_hex or demo_key_hex("switch", "lmk")

    def zpk_for(self, bank_code: str) -> str:
        return self.zpk_hex.get(bank_code) or demo_key_hex(bank_code, "zpk")
