"""Everything one bank instance runs on, built once from its settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bank_penyalur import migrate
from bank_penyalur.authorise import Policy
from bank_penyalur.batcher import AuthorisationBatcher
from shared.banks import Bank, get_bank
from shared.clock import Clock, clock_for
from shared.db import Database, sqlite_url
from bank_penyalur.hsm import Hsm
from bank_penyalur.registry import ensure_program_account
from bank_penyalur.service import Authoriser
from bank_penyalur.settings import BankSettings, check_keys, credential_variable, key_variable

log = logging.getLogger("bank_penyalur")

DEMO_KEYS_WARNING = (
    "runs on the public demo keys ({names}): anyone holding this bank's database can recover "
    "PINs and card numbers. For a demo only; set {variables}, and "
    "SEMBAKO_BANK_REQUIRE_REAL_KEYS=true to refuse demo keys."
)


DEMO_CREDENTIALS_WARNING = (
    "accepts the public demo credentials ({holders}): anyone who can reach it can call its "
    "{endpoints}. For a demo only; set {variables}."
)


def demo_keys_warning(settings: BankSettings) -> str | None:
    """What the bank says about its keys and credentials at start and in /health; None with
    real ones."""
    keys, credentials = _keys_warning(settings.demo_key_names), _credentials_warning(settings.demo_credential_names)
    if keys and credentials:
        return f"{keys} It also {credentials}"
    return keys or credentials


def _keys_warning(names: tuple[str, ...]) -> str | None:
    if not names:
        return None
    return DEMO_KEYS_WARNING.format(names=", ".join(names), variables=", ".join(key_variable(n) for n in names))


def _credentials_warning(holders: tuple[str, ...]) -> str | None:
    if not holders:
        return None
    endpoints = " and ".join({"switch": "authorisation", "operator": "operations"}[h] for h in holders) + " endpoints"
    return DEMO_CREDENTIALS_WARNING.format(
        holders=", ".join(holders), endpoints=endpoints, variables=", ".join(credential_variable(h) for h in holders)
    )


def database_for(settings: BankSettings) -> Database:
    """The bank's own database: its SQLite file, or schema bank_<code> on PostgreSQL."""
    code = settings.bank_code
    url = settings.database_url or sqlite_url(settings.data_dir, f"bank_{code}")
    schema = settings.db_schema or f"bank_{code}"
    return Database(url, schema=schema, pool_size=settings.db_pool_size)


def hsm_for(settings: BankSettings) -> Hsm:
    """The bank's HSM with the keys of its settings (demo keys where none are set)."""
    return Hsm(settings.zpk, settings.pvk, settings.pan_hash_key, settings.pan_key)


@dataclass
class BankRuntime:
    settings: BankSettings
    bank: Bank
    db: Database
    hsm: Hsm
    clock: Clock
    authoriser: Authoriser
    batcher: AuthorisationBatcher

    @classmethod
    def start(cls, settings: BankSettings, clock: Clock | None = None) -> BankRuntime:
        """Open the database, bring the schema to head and make sure the program account exists.
        Raises DemoKeysRefused when real keys are required and missing."""
        check_keys(settings)
        warning = demo_keys_warning(settings)
        if warning:
            log.warning("bank %s %s", settings.bank_code, warning)
        clock = clock or clock_for(settings.clock_file)
        hsm = hsm_for(settings)
        db = database_for(settings)
        migrate.upgrade(db, hsm=hsm)
        with db.begin() as conn:
            ensure_program_account(conn, clock.now())
        policy = Policy(
            pin_tries_max=settings.pin_tries_max,
            offline_limit_idr=settings.offline_limit_idr,
            advice_max_age_days=settings.advice_max_age_days,
        )
        authoriser = Authoriser(db, hsm, clock, policy)
        # SQLite has one writer at a time; PostgreSQL overlaps the round trips of a few writers.
        writers = 1 if db.dialect == "sqlite" else settings.batch_writers_pg
        batcher = AuthorisationBatcher(authoriser, settings.batch_max, settings.batch_queue_max, writers)
        return cls(settings, get_bank(settings.bank), db, hsm, clock, authoriser, batcher)

    def close(self) -> None:
        self.batcher.stop()
        self.db.dispose()
