"""The audit log of operator and admin actions, on SQLite and PostgreSQL: who, what, when, before
and after of each action, in a hash chain that `sembako ops audit verify` checks; a record
edited, deleted or reordered with SQL is found, and named."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update
from typer.testing import CliRunner

from sembako.cli import app as sembako_app
from switch.journal import Journal
from switch.ops import access, audit
from switch.ops.app import create_ops_app
from switch.tables import ADMIN, OPERATOR, AuditRecord
from tests.switch.ops_tokens import bearer, issue
from tests.switch.test_journal import open_journal
from tests.switch.test_ops_api import seed

_audit = AuditRecord.__table__
REASON = {"reason": "e-Warong holds KPM cards"}


@pytest.fixture
def journal(storage, clock) -> Journal:  # noqa: ANN001
    opened = open_journal(storage)
    audit.keep_anchor(opened.db, audit.anchor_in(storage["data_dir"]))  # as the switch keeps it
    seed(opened, clock)
    yield opened
    opened.db.dispose()


def cli_args(storage: dict) -> tuple[list[str], dict]:
    """The CLI's storage options, and its environment (the PostgreSQL schema of the switch)."""
    env = {"COLUMNS": "200", "SEMBAKO_DATA_DIR": None, "DATABASE_URL": None, "SEMBAKO_SWITCH_DB_SCHEMA": None}
    if "database_url" in storage:
        options = ["--database-url", storage["database_url"], "--data-dir", str(storage["data_dir"])]
        return options, env | {"SEMBAKO_SWITCH_DB_SCHEMA": storage["db_schema"]}
    return ["--data-dir", str(storage["data_dir"])], env


def sembako(storage: dict, *args: str):  # noqa: ANN201
    options, env = cli_args(storage)
    return CliRunner().invoke(sembako_app, [*args, *options], env=env)


@pytest.fixture
def actions(journal: Journal, storage: dict, clock) -> dict[str, str]:  # noqa: ANN001
    """A morning at the ops desk: a token made with the CLI, an admin and an operator acting
    through the API, a minute apart; returns the tokens' ids."""
    created = sembako(storage, "ops", "token", "create", "--bank", "switch", "--role", "admin", "--label", "Ops desk")
    assert created.exit_code == 0, created.output
    admin = created.stdout.strip().splitlines()[-1]
    client = TestClient(create_ops_app(journal, now=clock.now))
    operator = client.post("/v1/tokens", json={"role": "operator", "scope": "bni", "label": "BNI desk"}, headers=bearer(admin)).json()
    clock.advance(timedelta(minutes=1))
    assert client.post("/v1/terminals/BNI00002/block", json=REASON, headers=bearer(operator["token"])).status_code == 200
    clock.advance(timedelta(minutes=1))
    assert client.post("/v1/saf/1/cancel", json={"reason": "settled by hand with BRI"}, headers=bearer(admin)).status_code == 200
    clock.advance(timedelta(minutes=1))
    assert client.post("/v1/terminals/BNI00002/unblock", json={"reason": "cards returned"}, headers=bearer(operator["token"])).status_code == 200
    return {"admin": access.parse_token(admin)[0], "operator": operator["id"]}


def records(journal: Journal) -> list:
    with journal.db.read() as conn:
        return conn.execute(select(_audit).order_by(_audit.c.seq)).all()


def verify(journal: Journal) -> audit.Verification:
    with journal.db.read() as conn:
        return audit.verify(conn)


def test_each_action_is_recorded_with_who_what_when_before_and_after(journal: Journal, actions: dict, clock) -> None:  # noqa: ANN001
    found = [(r.seq, r.actor, r.action, r.target, r.bank_code, r.before, r.after) for r in records(journal)]
    assert found == [
        (1, "cli", "token.create", f"token/{actions['admin']}", None, None,
         {"id": actions["admin"], "role": "admin", "scope": "switch", "label": "Ops desk", "expires_at": None, "revoked_at": None}),
        (2, actions["admin"], "token.create", f"token/{actions['operator']}", "bni", None,
         {"id": actions["operator"], "role": "operator", "scope": "bni", "label": "BNI desk", "expires_at": None, "revoked_at": None}),
        (3, actions["operator"], "terminal.block", "terminal/BNI00002", "bni", {"blocked": False}, {"blocked": True, **REASON}),
        (4, actions["admin"], "saf.cancel", "saf/1", "bri", {"state": "pending", "rrn": "000000000009"},
         {"state": "cancelled", "rrn": "000000000009", "reason": "settled by hand with BRI"}),
        (5, actions["operator"], "terminal.unblock", "terminal/BNI00002", "bni", {"blocked": True}, {"blocked": False, "reason": "cards returned"}),
    ]
    at = [r.at for r in records(journal)]
    assert at[2:] == [clock.now() - timedelta(minutes=2), clock.now() - timedelta(minutes=1), clock.now()]


def test_each_record_hashes_its_contents_and_the_record_before(journal: Journal, actions: dict) -> None:
    rows = records(journal)
    assert rows[0].prev_hash == "0" * 64
    for before, row in zip(rows, rows[1:], strict=False):
        assert row.prev_hash == before.hash
    first = rows[0]
    canonical = json.dumps(
        {"seq": 1, "at": first.at.isoformat(timespec="microseconds"), "actor": "cli", "action": "token.create",
         "target": first.target, "bank": None, "before": None, "after": first.after, "prev_hash": "0" * 64},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )
    assert first.hash == hashlib.sha256(canonical.encode()).hexdigest()
    assert verify(journal) == audit.Verification(5, 5, rows[-1].hash)


def test_verify_says_the_chain_is_intact(journal: Journal, storage: dict, actions: dict) -> None:
    result = sembako(storage, "ops", "audit", "verify")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"audit chain intact: 5 records, last hash {audit.shown(records(journal)[-1].hash)}; the anchor file agrees (5 records seen)"
    )


def test_an_edited_record_is_found(journal: Journal, storage: dict, actions: dict) -> None:
    with journal.db.begin() as conn:  # someone hides who blocked the terminal
        conn.execute(update(_audit).where(_audit.c.seq == 3).values(actor=actions["admin"]))
    result = sembako(storage, "ops", "audit", "verify")
    assert result.exit_code == 1
    assert "audit chain broken at record 3: its contents do not match its hash" in result.output


def test_an_edited_record_with_its_hash_made_again_is_found_by_the_anchor_or_at_the_next(journal: Journal, storage: dict, actions: dict) -> None:
    with journal.db.begin() as conn:
        row = conn.execute(select(_audit).where(_audit.c.seq == 3)).one()
        forged = {**row._mapping, "after": {"blocked": True, "reason": "routine check"}}
        conn.execute(update(_audit).where(_audit.c.seq == 3).values(after=forged["after"], hash=audit.record_hash(SimpleNamespace(**forged))))
    result = sembako(storage, "ops", "audit", "verify")
    assert result.exit_code == 1 and "audit chain broken at record 3: it is not the record the anchor file saw here" in result.output
    (storage["data_dir"] / audit.ANCHOR_FILE_NAME).unlink()
    result = sembako(storage, "ops", "audit", "verify")
    assert result.exit_code == 1 and "audit chain broken at record 4: its link does not match" in result.output


def test_a_deleted_record_is_found(journal: Journal, storage: dict, actions: dict) -> None:
    with journal.db.begin() as conn:
        conn.execute(delete(_audit).where(_audit.c.seq == 4))
    result = sembako(storage, "ops", "audit", "verify")
    assert result.exit_code == 1
    assert "audit chain broken at record 5: expected record 4 here: record 4 was deleted or moved" in result.output


def test_the_newest_records_deleted_are_found_by_the_anchor_file(journal: Journal, storage: dict, actions: dict) -> None:
    with journal.db.begin() as conn:  # the SAF cancel and the unblock vanish: a valid, shorter chain
        conn.execute(delete(_audit).where(_audit.c.seq >= 4))
    result = sembako(storage, "ops", "audit", "verify")
    assert result.exit_code == 1
    assert ("audit chain broken at record 4: the anchor file saw records up to 5, the chain ends at 3: "
            "the newest records were deleted") in result.output


def test_the_newest_record_replaced_by_a_later_action_is_found(journal: Journal, storage: dict, actions: dict, clock) -> None:  # noqa: ANN001
    with journal.db.begin() as conn:
        conn.execute(delete(_audit).where(_audit.c.seq == 5))
    admin = issue(journal.db, ADMIN)  # record 5 is written again, as another action
    client = TestClient(create_ops_app(journal, now=clock.now))
    assert client.post("/v1/terminals/BNI00002/block", json=REASON, headers=bearer(admin)).status_code == 200
    result = sembako(storage, "ops", "audit", "verify")
    assert result.exit_code == 1
    assert "audit chain broken at record 5: it is not the record the anchor file saw here: it was replaced" in result.output


def test_without_its_anchor_file_the_chain_is_checked_and_the_summary_says_so(journal: Journal, storage: dict, actions: dict) -> None:
    (storage["data_dir"] / audit.ANCHOR_FILE_NAME).unlink()
    result = sembako(storage, "ops", "audit", "verify")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("5 records, last hash " + audit.shown(records(journal)[-1].hash)
                                          + "; no anchor file, so a deletion of the newest records cannot be seen")


def test_an_action_rolled_back_leaves_no_line_in_the_anchor_file(journal: Journal, storage: dict, actions: dict, clock) -> None:  # noqa: ANN001
    anchor = storage["data_dir"] / audit.ANCHOR_FILE_NAME
    lines = anchor.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["1", "2", "3", "4", "5"]
    with pytest.raises(RuntimeError), journal.db.begin() as conn:
        audit.append(conn, "cli", "terminal.block", "terminal/BNI00003", "bni", {"blocked": False}, {"blocked": True}, clock.now())
        raise RuntimeError("the action failed after its record")
    assert anchor.read_text().splitlines() == lines
    assert sembako(storage, "ops", "audit", "verify").exit_code == 0


def test_an_anchor_file_that_is_not_one_is_refused_plainly(journal: Journal, storage: dict, actions: dict) -> None:
    with (storage["data_dir"] / audit.ANCHOR_FILE_NAME).open("a") as file:
        file.write("six 0123\n")
    result = sembako(storage, "ops", "audit", "verify")
    assert result.exit_code == 1 and "line 6 is not `seq hash`" in result.output and "Traceback" not in result.output


def test_reordered_records_are_found(journal: Journal, storage: dict, actions: dict) -> None:
    with journal.db.begin() as conn:  # records 3 and 4 swap places
        conn.execute(update(_audit).where(_audit.c.seq == 3).values(seq=-3))
        conn.execute(update(_audit).where(_audit.c.seq == 4).values(seq=3))
        conn.execute(update(_audit).where(_audit.c.seq == -3).values(seq=4))
    result = sembako(storage, "ops", "audit", "verify")
    assert result.exit_code == 1
    assert "audit chain broken at record 3: its contents do not match its hash: it was edited, or moved" in result.output


def test_admins_read_the_log_bank_admins_their_bank_s(journal: Journal, actions: dict, clock) -> None:  # noqa: ANN001
    client = TestClient(create_ops_app(journal, now=clock.now))
    everything = client.get("/v1/audit", headers=bearer(issue(journal.db, ADMIN))).json()
    # Records 1-5, then the token just issued for reading (issued with the CLI's name).
    assert [r["seq"] for r in everything["items"]] == [6, 5, 4, 3, 2, 1] and everything["next_before_seq"] is None
    assert everything["items"][1]["hash"] == audit.shown(records(journal)[4].hash)
    page = client.get("/v1/audit", params={"limit": 2, "before_seq": 5}, headers=bearer(issue(journal.db, ADMIN))).json()
    assert [r["seq"] for r in page["items"]] == [4, 3] and page["next_before_seq"] == 3
    bni = client.get("/v1/audit", headers=bearer(issue(journal.db, ADMIN, "bni"))).json()["items"]
    assert {(r["action"], r["bank"]) for r in bni} == {("token.create", "bni"), ("terminal.block", "bni"), ("terminal.unblock", "bni")}
    assert client.get("/v1/audit", headers=bearer(issue(journal.db, OPERATOR))).status_code == 403


def test_the_cli_creates_lists_and_revokes_tokens(journal: Journal, storage: dict, clock) -> None:  # noqa: ANN001
    made = sembako(storage, "ops", "token", "create", "--bank", "bni", "--role", "viewer", "--expires", "30d")
    assert made.exit_code == 0, made.output
    *said, token = made.stdout.strip().splitlines()
    token_id = access.parse_token(token)[0]
    assert said == [f"token {token_id}: viewer of bni, expires {said[0].split('expires ')[1].split(' WIB')[0]} WIB; shown this once, keep it safe:"]
    client = TestClient(create_ops_app(journal))
    assert client.get("/v1/saf", headers=bearer(token)).status_code == 200

    listed = sembako(storage, "ops", "token", "list")
    assert listed.exit_code == 0 and token_id in listed.stdout and "viewer" in listed.stdout and token not in listed.stdout
    revoked = sembako(storage, "ops", "token", "revoke", token_id, "--reason", "left the team")
    assert (revoked.exit_code, revoked.stdout.strip()) == (0, f"token {token_id} revoked")
    assert client.get("/v1/saf", headers=bearer(token)).status_code == 401
    again = sembako(storage, "ops", "token", "revoke", token_id)
    assert again.exit_code == 1 and f"token {token_id} was revoked already" in again.output
    assert [r.action for r in records(journal)] == ["token.create", "token.revoke"]
    assert verify(journal).ok


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["token", "create", "--bank", "bca", "--role", "viewer"], "scope must be one of bni, bri, mandiri, btn or switch"),
        (["token", "create", "--bank", "bni", "--role", "boss"], "role must be one of viewer, operator, admin"),
        (["token", "create", "--bank", "bni", "--role", "viewer", "--expires", "forever"], "expiry must be a number and a unit"),
        (["token", "create", "--bank", "bni", "--role", "viewer", "--expires", "9999d"], "expiry must be at most 3650 days"),
        (["token", "revoke", "0123456789ab"], "no token 0123456789ab"),
    ],
)
def test_the_cli_refuses_plainly(journal: Journal, storage: dict, args: list[str], said: str) -> None:
    result = sembako(storage, "ops", *args)
    assert result.exit_code == 1 and said in result.output and "Traceback" not in result.output


def test_the_cli_needs_a_switch_database(tmp_path: Path) -> None:
    result = CliRunner().invoke(sembako_app, ["ops", "audit", "verify", "--data-dir", str(tmp_path / "none")], env={"DATABASE_URL": None})
    assert result.exit_code == 1 and "no switch database in" in result.output
