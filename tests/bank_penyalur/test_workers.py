"""Two worker processes of one bank on one PostgreSQL database: still exactly once.

The same purchase raced over many connections (spread by the kernel over both processes)
posts once and every copy gets the same answer; many purchases on one card raced at once never
overdraw it: the unique request key and the KPM row lock live in the database, not in a
process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from shared.clock import SystemClock
from shared.credentials import SWITCH
from bank_penyalur.schemas import PurchaseCreate

from bench._common import free_port

START_TIMEOUT_S = 60.0
RACERS = 24

ON_POSTGRESQL = pytest.mark.parametrize("storage", ["postgresql"], indirect=True)


PORT_TRIES = 3  # `free_port` frees the port before the server binds it: another socket may take it


@pytest.fixture
def two_workers(bank, storage: dict) -> Iterator[str]:  # noqa: ANN001
    """`sembako bank serve --workers 2` on the fixture bank's database; its URL."""
    env = {**os.environ, "SEMBAKO_BANK_DB_SCHEMA": storage["db_schema"]}
    for tries_left in range(PORT_TRIES - 1, -1, -1):
        port = free_port()
        command = [sys.executable, "-m", "sembako", "bank", "serve", "--bank", "bni", "--workers", "2", "--port", str(port),
                   "--data-dir", str(storage["data_dir"]), "--database-url", storage["database_url"]]
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            started = wait_for_both_workers(url, server)
        except BaseException:
            server.kill()
            server.wait(timeout=30)
            raise
        if started:
            break
        assert tries_left, f"`sembako bank serve --workers 2` exited {PORT_TRIES} times at start: see {storage['data_dir']}/logs"
    try:
        bank.today = SystemClock().now().date()  # the workers keep the real time
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def wait_for_both_workers(url: str, server: subprocess.Popen) -> bool:
    """Until two different processes have answered /health (each call on a new connection);
    False when the server exited first (its port was taken, say)."""
    seen: set[int] = set()
    deadline = time.monotonic() + START_TIMEOUT_S
    while len(seen) < 2:
        if server.poll() is not None:
            return False
        assert time.monotonic() < deadline, f"only processes {seen} answered within {START_TIMEOUT_S} s"
        try:
            seen.add(httpx.get(f"{url}/health", timeout=2.0).json()["process"])
        except httpx.HTTPError:
            time.sleep(0.2)
    return True


def race(url: str, headers: dict, bodies: list[dict]) -> list[dict]:
    """POST each body at once, each on its own connection; the answers in order."""

    def post(body: dict) -> dict:
        with httpx.Client(base_url=url, headers=headers, timeout=30.0) as client:
            response = client.post("/v1/authorisations/purchase", content=PurchaseCreate(**body).model_dump_json())
            assert response.status_code == 200, response.text
            return response.json()

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(post, bodies))


@ON_POSTGRESQL
def test_one_purchase_raced_over_both_workers_posts_once(bank, two_workers: str) -> None:  # noqa: ANN001
    headers = {**bank.runtime.settings.bearer(SWITCH), "Content-Type": "application/json"}
    body = bank.purchase_request("normal", 25_000).model_dump(mode="json")

    answers = race(two_workers, headers, [body] * RACERS)

    assert {(a["rc"], a["approval_code"], a["balance_idr"]) for a in answers} == {("00", answers[0]["approval_code"], 125_000)}
    assert bank.balance("normal") == 125_000
    logs = bank.runtime.settings.data_dir / "logs"
    assert sorted(p.name for p in logs.glob("bank-bni*.log")) == ["bank-bni-worker-0.log", "bank-bni-worker-1.log", "bank-bni.log"]


@ON_POSTGRESQL
def test_purchases_raced_on_one_card_never_overdraw_it(bank, two_workers: str) -> None:  # noqa: ANN001
    headers = {**bank.runtime.settings.bearer(SWITCH), "Content-Type": "application/json"}
    bodies = [bank.purchase_request("normal", 10_000).model_dump(mode="json") for _ in range(RACERS)]

    answers = race(two_workers, headers, bodies)

    codes = sorted(a["rc"] for a in answers)
    assert codes == ["00"] * 15 + ["51"] * (RACERS - 15)  # Rp150.000 holds fifteen of them
    assert bank.balance("normal") == 0


def test_a_second_worker_needs_postgresql(tmp_path) -> None:  # noqa: ANN001
    command = [sys.executable, "-m", "sembako", "bank", "serve", "--workers", "2", "--data-dir", str(tmp_path)]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=60, env={**os.environ, "DATABASE_URL": ""})
    assert finished.returncode != 0
    assert "needs PostgreSQL" in finished.stdout + finished.stderr
