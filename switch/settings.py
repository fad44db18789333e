"""Settings of the switch, from options or SEMBAKO_SWITCH_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.banks import BANKS, DEMO_TERMINALS_PER_BANK, demo_terminal
from shared.credentials import SWITCH, check_credential, demo_credential
from shared.keys import demo_key_hex, demo_terminal_master_key_hex
from switch.alerts import AlertThresholds

PAN_HASH_KEY_BYTES_MIN = 16
PAN_KEY_BYTES = (16, 24, 32)  # AES-128/192/256


class SwitchSettings(BaseSettings):
    # Nested settings by "__": SEMBAKO_SWITCH_ALERTS__WRONG_PIN_CARDS_MIN=4.
    model_config = SettingsConfigDict(env_prefix="SEMBAKO_SWITCH_", extra="ignore", hide_input_in_errors=True, env_nested_delimiter="__")

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
    # Calls out to one bank at a time before further authorisations queue and go together in one
    # POST /v1/authorisations/batch of up to bank_batch_max (1: every request alone). Measured
    # with bench/throughput.py and bench/link.py: 1 and 64 cut the CPU per purchase and per
    # uploaded advice on both databases against 8 and 1 (each request alone), and 1 call out
    # beat 2 and 4 in throughput and p99 on both (the bank answers with one writer anyway).
    bank_calls_max: int = Field(default=1, ge=1, le=256)
    bank_batch_max: int = Field(default=64, ge=1, le=128)
    frame_bytes_max: int = 4_096
    idle_timeout_ms: int = 600_000  # a terminal connection silent this long is closed
    frame_timeout_ms: int = 5_000  # a frame started must arrive whole within this
    inflight_per_connection_max: int = 512  # a terminal uploading its offline sales keeps up to this many in flight
    connections_max: int = 2_048
    connections_per_source_max: int = 64  # from one source address; beyond it closed at once
    duplicates_remembered_max: int = 200_000
    journal_queue_max: int = 20_000
    journal_batch_max: int = 500
    saf_interval_ms: int = 500
    saf_batch_max: int = 50
    card_list_ttl_ms: int = 60_000  # a bank's offline card list is fetched again after this
    card_list_timeout_ms: int = 10_000  # the wait for a bank's card list
    card_list_download_max_ms: int = 900_000  # a terminal's paged download keeps one list version this long
    lmk_hex: str | None = None  # local master key wrapping the terminals' keys at rest
    zpk_hex: dict[str, str] = Field(default_factory=dict)  # per bank; default: the banks' demo ZPKs
    tmk_hex: dict[str, str] = Field(default_factory=dict)  # per terminal id; default: its demo TMK
    pan_hash_key_hex: str | None = None  # HMAC key of the journal's card search key, >= 16 bytes
    pan_key_hex: str | None = None  # AES-GCM key of the card numbers kept for SAF retries, 16/24/32 bytes
    require_real_keys: bool = False  # refuse to start while any key above is a public demo key
    alerts: AlertThresholds = Field(default_factory=AlertThresholds)  # when each alert of GET /v1/alerts fires
    # Credential the switch presents to each bank (Authorization: Bearer; the bank's
    # SEMBAKO_BANK_SWITCH_CREDENTIAL); default: that bank's public demo one.
    bank_credentials: dict[str, SecretStr] = Field(default_factory=dict)
    clock_file: Path | None = None  # simulated time (shared.clock.FileClock) for a scenario network
    # Several switch processes on one ISO port and one database (switch.workers; above 1:
    # PostgreSQL). Set for each worker by `sembako switch serve --workers N`.
    workers: int = Field(default=1, ge=1, le=64)
    worker_index: int = Field(default=0, ge=0)  # 0 serves the ops API
    saf_lease_ms: int = 10_000  # a worker's hold on a store-and-forward entry; no other sends it meanwhile
    blocks_refresh_ms: int = 1_000  # how often a worker reads the blocked terminals (workers > 1)

    @property
    def lmk(self) -> str:
        return self.lmk_hex or demo_key_hex("switch", "lmk")

    def zpk_for(self, bank_code: str) -> str:
        return self.zpk_hex.get(bank_code) or demo_key_hex(bank_code, "zpk")

    def bank_credential_for(self, bank_code: str) -> str:
        given = self.bank_credentials.get(bank_code)
        return given.get_secret_value() if given is not None else demo_credential(bank_code, SWITCH)

    def bank_credentials_by_code(self) -> dict[str, str]:
        """The credential sent to each bank the switch has a URL for."""
        return {code: self.bank_credential_for(code) for code in self.bank_urls}

    def tmk_for(self, tid: str) -> str:
        return self.tmk_hex.get(tid) or demo_terminal_master_key_hex(tid)

    @property
    def pan_hash_key(self) -> str:
        return self.pan_hash_key_hex or demo_key_hex("switch", "pan_hash")

    @property
    def pan_key(self) -> str:
        return self.pan_key_hex or demo_key_hex("switch", "pan")

    def demo_keys(self) -> list[str]:
        """The keys that are (still) their public demo value, by name; [] when all are real."""
        names = ["LMK"] if _same_key(self.lmk, demo_key_hex("switch", "lmk")) else []
        names += [f"ZPK {code}" for code in BANKS if _same_key(self.zpk_for(code), demo_key_hex(code, "zpk"))]
        demo_tmks = [tid for tid in network_terminal_ids() if _same_key(self.tmk_for(tid), demo_terminal_master_key_hex(tid))]
        if demo_tmks:
            names.append(f"TMK of {len(demo_tmks)} terminals")
        if _same_key(self.pan_hash_key, demo_key_hex("switch", "pan_hash")):
            names.append("PAN hash key")
        if _same_key(self.pan_key, demo_key_hex("switch", "pan")):
            names.append("PAN encryption key")
        return names

    @model_validator(mode="after")
    def _worker_of_the_pool(self) -> SwitchSettings:
        if self.worker_index >= self.workers:
            raise ValueError(f"worker_index must be below workers ({self.workers}), got {self.worker_index}")
        return self

    @field_validator("tmk_hex")
    @classmethod
    def _known_terminals(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(tid for tid in value if demo_terminal(tid) is None)
        if unknown:
            raise ValueError(f"TMKs given for terminals the network does not have: {', '.join(unknown)}")
        return value

    @field_validator("bank_credentials")
    @classmethod
    def _credentials_of_known_banks(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        unknown = sorted(code for code in value if code not in BANKS)
        if unknown:
            raise ValueError(f"credentials given for banks the network does not have: {', '.join(unknown)}")
        for credential in value.values():
            check_credential(credential.get_secret_value())
        return value

    @field_validator("pan_hash_key_hex")
    @classmethod
    def _long_enough(cls, value: str | None) -> str | None:
        if value is not None and (not _is_hex(value) or len(value) < 2 * PAN_HASH_KEY_BYTES_MIN):
            raise ValueError(f"the PAN hash key must be at least {PAN_HASH_KEY_BYTES_MIN} bytes, in hex")
        return value

    @field_validator("pan_key_hex")
    @classmethod
    def _aes_key(cls, value: str | None) -> str | None:
        if value is not None and (not _is_hex(value) or len(value) // 2 not in PAN_KEY_BYTES or len(value) % 2):
            raise ValueError("the PAN encryption key must be an AES key of 16, 24 or 32 bytes, in hex")
        return value


def network_terminal_ids() -> list[str]:
    """The terminals the switch registers: the network's EDCs, BNI00001..BTN00048."""
    return [bank.terminal_id(n) for bank in BANKS.values() for n in range(1, DEMO_TERMINALS_PER_BANK + 1)]


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


def _same_key(key_hex: str, demo_hex: str) -> bool:
    return key_hex.upper() == demo_hex.upper()
