"""A switch killed with requests in flight handed out RRNs that reached a bank but never its
journal. Restarted, it must not hand them out again (two movements under one RRN break the
trace from slip to journal to ledger): it numbers on past RRN_RESTART_GAP. SQLite and PostgreSQL.
(End to end: scenarios/suite/switch_killed_mid_purchase.yaml.)"""

from __future__ import annotations

import socket

from switch.runtime import RRN_RESTART_GAP, SwitchRuntime
from switch.settings import SwitchSettings
from tests.switch.test_journal import open_journal, transaction


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings_for(storage: dict) -> SwitchSettings:
    return SwitchSettings(
        iso_port=free_port(),
        data_dir=storage["data_dir"],
        database_url=storage.get("database_url"),
        db_schema=storage.get("db_schema") or "switch",
    )


async def first_rrn(storage: dict) -> str:
    runtime = SwitchRuntime(settings_for(storage))
    await runtime.start(with_ops_api=False)
    try:
        assert runtime.core is not None
        return runtime.core.next_rrn()
    finally:
        await runtime.stop()


async def test_a_restarted_switch_numbers_on_past_the_rrns_it_may_have_handed_out(storage) -> None:  # noqa: ANN001
    assert await first_rrn(storage) == "000000000001"  # a new switch numbers from one
    journal = open_journal(storage)
    journal.record([transaction("000000000041", "000041")], [])  # the last RRN that reached the journal
    journal.db.dispose()

    assert await first_rrn(storage) == f"{41 + RRN_RESTART_GAP + 1:012d}"
