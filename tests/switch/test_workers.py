"""Several switch processes on one database (`sembako switch serve --workers N`, switch.workers).

- RRNs: worker i of N numbers i mod N, past the journal's highest RRN; two never share one.
- On PostgreSQL, a BNI bank process and two switch worker processes on one switch database
  (each on its own ISO port, so the test decides which worker gets which message): the same
  0200 sent at the same moment to both is posted once and answered identically with one RRN; a
  terminal signs on at one worker and pays at the other; a block made at worker 0's ops API is
  refused at worker 1 within the refresh interval.
- Store and forward under leases: a worker that claimed a reversal and died (a killed worker
  process; and, with an injected clock, a claim never followed by a send) holds it until its
  lease runs out; then the other worker delivers it, once, and the card has its money back.
- `sembako switch serve --workers 2`: two processes on one ISO port (SO_REUSEPORT) answer, a
  killed one is restarted, and SIGTERM stops them all.

Every bank ledger is left balanced; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select, text

from shared import iso8583, protocol, rc
from shared.offline import offline_approval_code
from shared.banks import get_bank
from shared.db import Database

from bank_penyalur.demo import generator
from switch.bank_client import BankClient
from switch.cli import WORKER_INDEX_ENV, worker_command
from switch.core import SwitchCore, reversal_body
from switch.hsm import SwitchHsm, WorkingKeys
from switch.journal import Journal, TerminalRecord
from switch.runtime import wib_now
from switch.saf import SafForwarder
from switch.settings import SwitchSettings
from switch.supervisor import prepare_database
from switch.tables import RequestClaim, SafAttempt, SafClaim, Transaction
from switch.workers import SafLeases
from tests.bounded import wait_until
from tests.conftest import pg_skip_reason, postgres_url
from tests.switch.network import Network, RawTerminal, free_port

BNI = get_bank("bni")
SPENDABLE = [p for p in (generator.generated_kpm(BNI, i) for i in range(40)) if p.spendable]
START_TIMEOUT_S = 40.0
BLOCK_REFRESH_BOUND_S = 2.5  # the refresh interval (1 s) plus a loaded machine's slack


# -- RRNs ---------------------------------------------------------------------------------------


def numbering_core(last_rrn: int, step: int, offset: int) -> SwitchCore:
    async def nothing(*_: object) -> None:
        return None

    hsm = SwitchHsm("00" * 16, {})
    return SwitchCore(hsm, None, [], {}, last_rrn, datetime.now, lambda *_: None, nothing, nothing, rrn_step=step, rrn_offset=offset)  # type: ignore[arg-type]


@pytest.mark.parametrize("workers", [2, 3])
@pytest.mark.parametrize("last_rrn", [0, 41, 1_000_041])
def test_workers_number_rrns_apart_past_the_journal(workers: int, last_rrn: int) -> None:
    cores = [numbering_core(last_rrn, workers, i) for i in range(workers)]
    numbered = [[int(core.next_rrn()) for _ in range(500)] for core in cores]  # interleaved or not: no shared state
    for index, rrns in enumerate(numbered):
        assert all(r % workers == index and r > last_rrn for r in rrns)
        assert rrns == sorted(set(rrns))
    assert len(set().union(*map(set, numbered))) == 500 * workers
    assert min(min(rrns) for rrns in numbered) == last_rrn + 1  # none skipped at the start


def test_a_single_switch_numbers_as_before() -> None:
    core = numbering_core(41, 1, 0)
    assert [core.next_rrn() for _ in range(3)] == ["000000000042", "000000000043", "000000000044"]


# -- keys read back from the journal ---------------------------------------------------------------


class JournalKeys:
    """`Peers.keys_of` as a worker sees it: the journal holds no newer keys; reads are counted."""

    def __init__(self) -> None:
        self.reads: list[str] = []

    async def keys_of(self, tid: str) -> None:
        self.reads.append(tid)


def test_bad_macs_from_one_terminal_read_its_keys_from_the_journal_once_a_second_while_none_are_newer() -> None:
    async def nothing(*_: object) -> None:
        return None

    clock_s = [1_000.0]
    journal = JournalKeys()
    terminal = TerminalRecord(BNI.terminal_id(7), BNI.merchant_id(7), "bni", "e-Warong 7", "00" * 16)
    keys = WorkingKeys(bytes(range(16)), bytes(range(16, 32)))
    core = SwitchCore(
        SwitchHsm("00" * 16, {}), None, [terminal], {terminal.tid: keys}, 0, datetime.now, lambda *_: None, nothing, nothing,  # type: ignore[arg-type]
        peers=journal, monotonic=lambda: clock_s[0],  # type: ignore[arg-type]
    )
    kpm = SPENDABLE[0]
    edc = protocol.Terminal(terminal.tid, terminal.mid)

    def forged(stan: int) -> bytes:  # MACed under a key that is not the terminal's
        doc = protocol.purchase_request(edc, f"{stan:06d}", datetime.now(), kpm.pan, 1_000, "00" * 8, 1)
        return iso8583.Tpdu(1, 0).to_bytes() + iso8583.encode_with_mac(doc, bytes(16))

    answers = [iso8583.decode(asyncio.run(core.handle(forged(stan)))[iso8583.TPDU_BYTES :]) for stan in range(1, 6)]
    assert {answer["39"] for answer in answers} == {rc.INVALID_TRANSACTION}
    assert journal.reads == [terminal.tid]  # five bad MACs, one read
    clock_s[0] += 1.5
    asyncio.run(core.handle(forged(6)))
    assert journal.reads == [terminal.tid] * 2


# -- a pool of two worker processes on PostgreSQL -------------------------------------------------


@dataclass
class WorkerProcess:
    index: int
    iso_port: int
    process: subprocess.Popen

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Pool:
    network: Network
    settings: SwitchSettings  # worker 0's
    workers: list[WorkerProcess]

    @property
    def ops_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.ops_port}"

    def terminal(self, worker: int, serial: int) -> RawTerminal:
        return RawTerminal(BNI.terminal_id(serial), BNI.merchant_id(serial), self.workers[worker].iso_port).connect()

    def journal(self) -> Journal:
        return Journal(Database(self.settings.database_url, schema=self.settings.db_schema))


def worker_env(settings: SwitchSettings, index: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return env | {
        WORKER_INDEX_ENV: str(index),
        "SEMBAKO_SWITCH_DB_SCHEMA": settings.db_schema,
        "SEMBAKO_SWITCH_BANK_URLS": json.dumps(settings.bank_urls),
        "SEMBAKO_SWITCH_BANK_TIMEOUT_MS": str(settings.bank_timeout_ms),
    }


def iso_listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def ops_healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def start_worker(settings: SwitchSettings, index: int, workers: int, log_path: Path, extra_env: dict[str, str] | None = None) -> WorkerProcess:
    port = free_port()
    command = worker_command(port, free_port() if index else settings.ops_port, "127.0.0.1", settings.data_dir, settings.database_url, workers)
    env = worker_env(settings, index) | (extra_env or {})
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    return WorkerProcess(index, port, process)


def drop_schemas(prefix: str) -> None:
    engine = create_engine(postgres_url())
    with engine.begin() as conn:
        names = conn.execute(text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :p"), {"p": f"{prefix}%"}).scalars().all()
        for name in names:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    engine.dispose()


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Iterator[Pool]:  # noqa: ANN001
    reason = pg_skip_reason()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("workers")
    schema = f"workers_{uuid.uuid4().hex[:10]}"
    network = Network(tmp, {"data_dir": tmp, "database_url": postgres_url(), "db_schema": schema})
    workers: list[WorkerProcess] = []
    try:
        network.prepare_banks()
        for bank in network.banks.values():
            bank.start()
        settings = network.switch_settings().model_copy(update={"workers": 2})
        prepare_database(settings)  # as the parent does, before any worker starts
        workers = [start_worker(settings, i, 2, tmp / f"switch-worker-{i}.out") for i in range(2)]
        started = wait_until(lambda: all(iso_listening(w.iso_port) for w in workers) and ops_healthy(f"http://127.0.0.1:{settings.ops_port}"), START_TIMEOUT_S)
        assert started, f"switch workers not up in {START_TIMEOUT_S} s: see {tmp}"
        yield Pool(network, settings, workers)
    finally:
        for worker in workers:
            worker.stop()
        network.stop()
        drop_schemas(schema)


@pytest.fixture
def ledger_balanced(pool: Pool) -> Iterator[None]:
    yield
    pool.network.assert_ledger_balanced()


def signed_on_at(pool: Pool, worker: int, serial: int) -> RawTerminal:
    terminal = pool.terminal(worker, serial)
    assert terminal.sign_on()["39"] == rc.APPROVED
    return terminal


def same_terminal_at(pool: Pool, worker: int, other: RawTerminal) -> RawTerminal:
    """A second connection of `other`'s terminal (same keys, same STAN counter) to `worker`."""
    terminal = pool.terminal(worker, int(other.tid[-5:]))
    terminal.tpk, terminal.tak = other.tpk, other.tak
    return terminal


@contextmanager
def one_terminal_at_both(pool: Pool, serial: int) -> Iterator[tuple[RawTerminal, RawTerminal]]:
    """A terminal signed on at worker 0 and a second connection of it to worker 1; closed after."""
    at_0 = signed_on_at(pool, 0, serial)
    at_1 = same_terminal_at(pool, 1, at_0)
    try:
        yield at_0, at_1
    finally:
        at_0.close()
        at_1.close()


def read_journal(pool: Pool, query) -> list:  # noqa: ANN001 - a select
    journal = pool.journal()
    try:
        with journal.db.read() as conn:
            return conn.execute(query).all()
    finally:
        journal.db.dispose()


def claims_of(pool: Pool, tid: str, stan: str) -> list[tuple]:
    t = RequestClaim.__table__
    return read_journal(pool, select(t.c.kind, t.c.round, t.c.worker, t.c.rrn).where(t.c.tid == tid, t.c.stan == stan))


def journalled(pool: Pool, tid: str, stan: str, kind: str, *columns: str) -> list:
    """The journal's `kind` rows of (tid, STAN), as tuples of `columns`."""
    t = Transaction.__table__
    return read_journal(pool, select(*(t.c[name] for name in columns)).where(t.c.tid == tid, t.c.stan == stan, t.c.kind == kind))


def test_the_same_purchase_at_two_workers_at_once_is_posted_once(pool: Pool, ledger_balanced: None) -> None:
    kpm = SPENDABLE[0]
    before = pool.network.balance_of(kpm.pan)
    with one_terminal_at_both(pool, serial=1) as (at_0, at_1):
        assert at_1.inquiry(kpm.pan, kpm.pin)["39"] == rc.APPROVED  # worker 1 knows the keys: a real race
        for _ in range(6):
            message = iso8583.encode_with_mac(at_0.purchase_doc(kpm.pan, kpm.pin, 1_000), at_0.tak)
            at_0.send_message(message)
            at_1.send_message(message)
            (_, first), (_, second) = at_0.read_message(), at_1.read_message()
            assert first == second and first["39"] == rc.APPROVED, (first, second)
            claims = claims_of(pool, at_0.tid, first["11"])
            assert [(kind, rnd, rrn) for kind, rnd, _, rrn in claims] == [("purchase", 0, first["37"])]
            assert int(first["37"]) % 2 == claims[0][2]  # the winner's RRN, numbered by the winner
        assert pool.network.balance_of(kpm.pan) == before - 6 * 1_000


def test_a_repeat_with_other_content_at_the_other_worker_gets_94(pool: Pool, ledger_balanced: None) -> None:
    kpm = SPENDABLE[3]
    before = pool.network.balance_of(kpm.pan)
    with one_terminal_at_both(pool, serial=4) as (at_0, at_1):
        doc = at_0.purchase_doc(kpm.pan, kpm.pin, 2_000)
        first = at_0.exchange(doc)
        assert first["39"] == rc.APPROVED
        assert at_1.exchange(doc) == first  # the same request again, at the other worker
        assert at_1.exchange({**doc, "4": protocol.to_iso_minor(3_000)})["39"] == rc.DUPLICATE
        assert pool.network.balance_of(kpm.pan) == before - 2_000


def test_a_terminal_signed_on_at_one_worker_pays_at_the_other(pool: Pool, ledger_balanced: None) -> None:
    kpm = SPENDABLE[1]
    before = pool.network.balance_of(kpm.pan)
    with one_terminal_at_both(pool, serial=2) as (at_0, at_1):  # worker 1 has never seen this terminal's keys
        first = at_1.purchase(kpm.pan, kpm.pin, 5_000)
        assert first["39"] == rc.APPROVED and int(first["37"]) % 2 == 1
        assert at_0.sign_on()["39"] == rc.APPROVED  # new keys at worker 0: worker 1's are stale now
        at_1.tpk, at_1.tak = at_0.tpk, at_0.tak
        second = at_1.purchase(kpm.pan, kpm.pin, 7_000)  # MACed with the new keys, at worker 1
        assert second["39"] == rc.APPROVED and int(second["37"]) % 2 == 1
        assert pool.network.balance_of(kpm.pan) == before - 12_000


def test_the_same_upload_of_an_offline_sale_at_two_workers_at_once_is_posted_once(pool: Pool, ledger_balanced: None) -> None:
    kpm = SPENDABLE[4]
    before = pool.network.balance_of(kpm.pan)
    with one_terminal_at_both(pool, serial=5) as (at_0, at_1):
        assert at_1.inquiry(kpm.pan, kpm.pin)["39"] == rc.APPROVED  # worker 1 knows the keys: a real race
        for _ in range(4):  # an upload cut and sent again on a new connection, landing at the other worker
            stan = at_0.next_stan()
            sale = protocol.advice_request(at_0.terminal, stan, datetime.now(), kpm.pan, 1_000, offline_approval_code(stan), 1)
            message = iso8583.encode_with_mac(protocol.batch_upload_request(sale, 1), at_0.tak)
            at_0.send_message(message)
            at_1.send_message(message)
            (_, first), (_, second) = at_0.read_message(), at_1.read_message()
            assert first["39"] == second["39"] == rc.APPROVED, (first, second)
            claims = claims_of(pool, at_0.tid, stan)
            assert [(kind, rnd) for kind, rnd, _, _ in claims] == [("advice", 0)]  # one worker asked the bank
            rrn = claims[0][3]
            assert wait_until(lambda: journalled(pool, at_0.tid, stan, "advice", "mti", "rc", "rrn", "amount_idr") == [("0320", rc.APPROVED, rrn, 1_000)])  # noqa: B023
        own_advice = at_1.exchange(sale)  # the last sale's own 0220 afterwards, at the other worker
        assert (own_advice["t"], own_advice["39"], own_advice["37"]) == ("0230", rc.APPROVED, rrn)
        assert pool.network.balance_of(kpm.pan) == before - 4 * 1_000


def test_a_reversal_at_one_worker_waits_for_its_purchase_in_flight_at_the_other(pool: Pool, ledger_balanced: None) -> None:
    kpm = SPENDABLE[5]
    before = pool.network.balance_of(kpm.pan)
    bank = pool.network.banks["bni"]
    with one_terminal_at_both(pool, serial=6) as (at_0, at_1):
        assert at_1.inquiry(kpm.pan, kpm.pin)["39"] == rc.APPROVED  # worker 1 knows the keys
        purchase = at_0.purchase_doc(kpm.pan, kpm.pin, 3_000)
        bank.freeze()  # the purchase waits at the bank, claimed by worker 0
        try:
            at_0.send_message(iso8583.encode_with_mac(purchase, at_0.tak))
            assert wait_until(lambda: claims_of(pool, at_0.tid, purchase["11"]) != [], 5.0)
            reversal = protocol.reversal_request(purchase, at_1.next_stan(), datetime.now())
            at_1.send_message(iso8583.encode_with_mac(reversal, at_1.tak))  # overtakes it, at worker 1
            time.sleep(0.2)
        finally:
            bank.thaw()
        (_, bought), (_, reversed_) = at_0.read_message(), at_1.read_message()
        assert bought["39"] == rc.APPROVED and reversed_["39"] == rc.APPROVED, (bought, reversed_)
        assert wait_until(lambda: journalled(pool, at_1.tid, reversal["11"], "reversal", "rc", "original_rrn") == [(rc.APPROVED, bought["37"])])
        assert pool.network.balance_of(kpm.pan) == before


def test_a_block_at_worker_0_is_refused_at_worker_1_within_a_second(pool: Pool) -> None:
    from tests.switch.ops_tokens import bearer, issue

    journal = pool.journal()
    headers = bearer(issue(journal.db))
    journal.db.dispose()
    at_1 = signed_on_at(pool, 1, serial=3)
    kpm = SPENDABLE[2]
    tid = at_1.tid
    try:
        assert at_1.inquiry(kpm.pan, kpm.pin)["39"] == rc.APPROVED
        response = httpx.post(f"{pool.ops_url}/v1/terminals/{tid}/block", json={"reason": "kartu KPM ditahan"}, headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        blocked_at = time.monotonic()
        assert wait_until(lambda: at_1.inquiry(kpm.pan, kpm.pin)["39"] == rc.NOT_PERMITTED_TERMINAL, BLOCK_REFRESH_BOUND_S)
        assert time.monotonic() - blocked_at <= BLOCK_REFRESH_BOUND_S
    finally:
        httpx.post(f"{pool.ops_url}/v1/terminals/{tid}/unblock", json={"reason": "selesai"}, headers=headers, timeout=10)
    try:
        assert wait_until(lambda: at_1.inquiry(kpm.pan, kpm.pin)["39"] == rc.APPROVED, BLOCK_REFRESH_BOUND_S)
    finally:
        at_1.close()


# -- store and forward under leases ------------------------------------------------------------------


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def saf_rows(journal: Journal, table, saf_id: int) -> list:  # noqa: ANN001
    t = table.__table__
    with journal.db.read() as conn:
        return conn.execute(select(t).where(t.c.saf_id == saf_id).order_by(t.c.id)).all()


@pytest.fixture
def saf_journal() -> Iterator[Journal]:
    """A switch journal of its own on PostgreSQL (no worker process reads it): the test plays
    the workers, with its own clock."""
    reason = pg_skip_reason()
    if reason:
        pytest.skip(reason)
    schema = f"workers_saf_{uuid.uuid4().hex[:8]}"
    journal = Journal(Database(postgres_url(), schema=schema))
    journal.migrate()
    try:
        yield journal
    finally:
        journal.db.dispose()
        drop_schemas(schema)


def test_leases_on_one_entry_never_overlap(saf_journal: Journal) -> None:
    """Two workers claiming the same pending entries at the same moment get disjoint sets, and
    neither takes the other's while its lease runs."""
    clock = Clock(datetime.now())
    ids = [saf_journal.enqueue_saf(f"9{n:011d}", "bni", {"stan": f"{n:06d}"}, clock.at) for n in range(20)]
    leases = [SafLeases(saf_journal, worker, 10_000, clock, 800) for worker in (0, 1)]
    for _ in range(3):
        with ThreadPoolExecutor(2) as threads:
            got = list(threads.map(lambda lease: {e.id for e in lease.claim(50)[0]}, leases))
        assert not got[0] & got[1] and got[0] | got[1] == set(ids)
        clock.at += timedelta(seconds=1)
    taken = {e.id for e in leases[0].claim(50)[0]}
    assert taken == got[0]  # its own leases only, renewed


def test_a_dead_workers_reversal_is_taken_over_when_its_lease_ends(pool: Pool, saf_journal: Journal, ledger_balanced: None) -> None:
    kpm = SPENDABLE[4]
    before = pool.network.balance_of(kpm.pan)
    terminal = signed_on_at(pool, 0, serial=5)
    try:
        doc = terminal.purchase_doc(kpm.pan, kpm.pin, 9_000)
        assert terminal.exchange(doc)["39"] == rc.APPROVED
    finally:
        terminal.close()
    assert pool.network.balance_of(kpm.pan) == before - 9_000
    journal = saf_journal
    clock = Clock(datetime.now())
    banks = BankClient(pool.settings.bank_urls, 2_000, 4, pool.settings.bank_credentials_by_code())
    day = protocol.transmission_date(str(doc["7"]), date.today())
    # As a worker does when the bank may have posted: the reversal is stored, then worker 1
    # leases it and is killed before sending it.
    saf_id = journal.enqueue_saf("990000000001", "bni", reversal_body(terminal.tid, terminal.mid, kpm.pan, 9_000, str(doc["11"]), day), clock.at)
    dead, _ = SafLeases(journal, 1, 10_000, clock, 2_000).claim(50)
    assert saf_id in {e.id for e in dead}
    survivor = SafForwarder(journal, banks, clock, 200, 50, SafLeases(journal, 0, 10_000, clock, 2_000))

    async def deliver() -> int:
        return await asyncio.wait_for(survivor.deliver_pending(), 20)

    try:
        clock.at += timedelta(seconds=9)
        asyncio.run(deliver())
        assert saf_rows(journal, SafAttempt, saf_id) == []  # worker 1's lease still runs: not sent
        assert pool.network.balance_of(kpm.pan) == before - 9_000
        clock.at += timedelta(seconds=2)  # worker 1's lease has ended
        asyncio.run(deliver())
        attempts = saf_rows(journal, SafAttempt, saf_id)
        assert [(a.outcome, a.detail) for a in attempts] == [("ack", "rc 00")]  # delivered once
        assert [c.worker for c in saf_rows(journal, SafClaim, saf_id)] == [1, 0]
        assert pool.network.balance_of(kpm.pan) == before  # the money is back
        clock.at += timedelta(seconds=30)
        asyncio.run(deliver())
        assert len(saf_rows(journal, SafAttempt, saf_id)) == 1  # done: never sent again
    finally:
        asyncio.run(banks.close())


def test_a_killed_worker_process_holds_its_reversal_until_its_lease_ends(pool: Pool, saf_journal: Journal, tmp_path: Path, ledger_balanced: None) -> None:
    """Worker 1 (its bank unreachable: connections hang) leases a stored reversal and is killed;
    worker 0, started then, sends it only once the lease has run out: once, and the card has its
    money back."""
    kpm = SPENDABLE[6]
    before = pool.network.balance_of(kpm.pan)
    terminal = signed_on_at(pool, 0, serial=7)
    try:
        doc = terminal.purchase_doc(kpm.pan, kpm.pin, 4_000)
        assert terminal.exchange(doc)["39"] == rc.APPROVED
    finally:
        terminal.close()
    day = protocol.transmission_date(str(doc["7"]), date.today())
    settings = pool.settings.model_copy(update={"db_schema": saf_journal.db.schema, "ops_port": free_port()})
    lease_env = {"SEMBAKO_SWITCH_SAF_LEASE_MS": "10000", "SEMBAKO_SWITCH_SAF_INTERVAL_MS": "100"}
    with socket.socket() as hole:  # accepts connections (backlog) and never answers
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)
        stuck = settings.model_copy(update={"bank_urls": {"bni": f"http://127.0.0.1:{hole.getsockname()[1]}"}})
        dying = start_worker(stuck, 1, 2, tmp_path / "worker-1.out", lease_env)
        try:
            saf_id = saf_journal.enqueue_saf("990000000003", "bni", reversal_body(BNI.terminal_id(7), BNI.merchant_id(7), kpm.pan, 4_000, str(doc["11"]), day), wib_now())
            assert wait_until(lambda: saf_rows(saf_journal, SafClaim, saf_id) != [], START_TIMEOUT_S)
        finally:
            dying.process.kill()
            dying.process.wait()
    lease = saf_rows(saf_journal, SafClaim, saf_id)
    assert {c.worker for c in lease} == {1}
    survivor = start_worker(settings, 0, 2, tmp_path / "worker-0.out", lease_env)
    try:
        assert wait_until(lambda: iso_listening(survivor.iso_port), START_TIMEOUT_S)
        # Its SAF loop runs from now on: while the lease runs, it must leave the entry alone.
        assert wib_now() < max(c.until for c in lease), "worker 0 started after the lease ended: nothing tested"
        assert wait_until(lambda: any(a.outcome == "ack" for a in saf_rows(saf_journal, SafAttempt, saf_id)), START_TIMEOUT_S)
        acks = [a for a in saf_rows(saf_journal, SafAttempt, saf_id) if a.outcome == "ack"]
        assert len(acks) == 1 and acks[0].at >= max(c.until for c in lease)  # not before worker 1's lease ended
        assert {c.worker for c in saf_rows(saf_journal, SafClaim, saf_id)} == {0, 1}
        assert wait_until(lambda: pool.network.balance_of(kpm.pan) == before, 10)  # the money is back
    finally:
        survivor.stop()


# -- the command line ---------------------------------------------------------------------------------


def children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def test_switch_serve_with_two_workers_answers_on_one_port_and_stops(pool: Pool, tmp_path: Path) -> None:
    schema = f"workers_cli_{uuid.uuid4().hex[:8]}"
    iso_port, ops_port = free_port(), free_port()
    settings = pool.settings.model_copy(update={"db_schema": schema})
    command = worker_command(iso_port, ops_port, "127.0.0.1", tmp_path, postgres_url(), 2)
    env = worker_env(settings, 0)
    del env[WORKER_INDEX_ENV]
    with (tmp_path / "serve.out").open("ab") as log:
        parent = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: ops_healthy(f"http://127.0.0.1:{ops_port}") and iso_listening(iso_port), START_TIMEOUT_S), (tmp_path / "serve.out").read_text()[-2000:]
        workers = children_of(parent.pid)
        assert len(workers) == 2
        for _ in range(4):  # new connections, spread by the kernel over both workers
            terminal = RawTerminal(BNI.terminal_id(6), BNI.merchant_id(6), iso_port).connect()
            try:
                assert terminal.sign_on()["39"] == rc.APPROVED
                assert terminal.inquiry(SPENDABLE[5].pan, SPENDABLE[5].pin)["39"] == rc.APPROVED
            finally:
                terminal.close()
        assert children_of(parent.pid) == workers  # both bound the port: none died and was restarted
        os.kill(workers[1], signal.SIGKILL)  # a worker dies: the parent starts another
        assert wait_until(lambda: len(children_of(parent.pid)) == 2 and workers[1] not in children_of(parent.pid), 10)
        workers = children_of(parent.pid)
        assert wait_until(lambda: iso_listening(iso_port), 10)
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=20) == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        drop_schemas(schema)


def test_more_than_one_worker_needs_postgresql(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sembako.cli import app

    result = CliRunner().invoke(app, ["switch", "serve", "--workers", "2", "--data-dir", str(tmp_path)], env={"DATABASE_URL": ""})
    assert result.exit_code == 2 and "needs PostgreSQL" in result.output
    result = CliRunner().invoke(app, ["up", "--switch-workers", "2", "--data-dir", str(tmp_path)], env={"DATABASE_URL": ""})
    assert result.exit_code == 2 and "needs PostgreSQL" in result.output

