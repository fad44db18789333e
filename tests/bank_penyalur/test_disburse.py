"""Monthly disbursement: once per KPM per period, whatever happens to the batch."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from bank_penyalur import disburse as disburse_module
from bank_penyalur.disburse import disburse
from bank_penyalur.ledger import check_ledger
from bank_penyalur.tables import DISBURSEMENT, Transfer
from tests.bank_penyalur.conftest import BENEFIT_IDR, PERIOD, start_bank

KPM = 40


def credited_total(runtime, period: str) -> tuple[int, int]:  # noqa: ANN001
    with runtime.db.read() as conn:
        count, total = conn.execute(
            select(func.count(), func.coalesce(func.sum(Transfer.amount_idr), 0)).where(
                Transfer.kind == DISBURSEMENT, Transfer.period == period
            )
        ).one()
    return int(count), int(total)


def assert_balanced(runtime) -> None:  # noqa: ANN001
    with runtime.db.read() as conn:
        assert check_ledger(conn).ok


@pytest.fixture
def seeded(storage, clock):  # noqa: ANN001, ANN201
    """A demo bank with 40 generated KPM, not yet disbursed."""
    from shared.banks import get_bank
    from bank_penyalur.demo import generator
    from bank_penyalur.runtime import BankRuntime
    from bank_penyalur.settings import BankSettings

    runtime = BankRuntime.start(BankSettings(bank="bri", **storage), clock=clock)
    generator.seed(runtime.db, get_bank("bri"), runtime.hsm, clock, kpm=KPM)
    yield runtime
    assert_balanced(runtime)
    runtime.close()


def eligible(runtime) -> int:  # noqa: ANN001
    """KPM with an e-money sub-account whose first period has come."""
    from shared.banks import get_bank
    from bank_penyalur.demo import generator

    bank = get_bank("bri")
    generated = sum(generator.generated_kpm(bank, i).emoney for i in range(KPM))
    return generated + 6  # named KPM: 8, less zero_balance (later decree) and no_emoney


def test_every_eligible_kpm_is_credited_once(seeded) -> None:  # noqa: ANN001
    report = disburse(seeded.db, seeded.clock, PERIOD, BENEFIT_IDR)
    assert report.credited == eligible(seeded)
    assert report.not_eligible == 1
    assert report.total_idr == report.credited * BENEFIT_IDR
    assert credited_total(seeded, PERIOD) == (report.credited, report.total_idr)


def test_running_it_again_changes_nothing(seeded) -> None:  # noqa: ANN001
    first = disburse(seeded.db, seeded.clock, PERIOD, BENEFIT_IDR)
    again = disburse(seeded.db, seeded.clock, PERIOD, BENEFIT_IDR)
    assert (again.credited, again.already_credited) == (0, first.credited)
    assert credited_total(seeded, PERIOD) == (first.credited, first.total_idr)


def test_kpm_without_emoney_sub_account_are_reported_failed(seeded) -> None:  # noqa: ANN001
    report = disburse(seeded.db, seeded.clock, PERIOD, BENEFIT_IDR)
    assert report.failed == KPM + 8 - eligible(seeded) - 1
    names = {f["name"] for f in report.failed_sample}
    assert "Asep Hidayat" in names
    assert {f["reason"] for f in report.failed_sample} == {"Nomor KK tidak valid"}


def test_a_crash_half_way_is_completed_by_the_next_run(seeded, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(disburse_module, "CHUNK_ACCOUNTS", 10)

    def crash_after_first_chunk(done: int, total: int) -> None:
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        disburse(seeded.db, seeded.clock, PERIOD, BENEFIT_IDR, progress=crash_after_first_chunk)
    partial, _ = credited_total(seeded, PERIOD)
    assert 0 < partial < eligible(seeded)
    report = disburse(seeded.db, seeded.clock, PERIOD, BENEFIT_IDR)
    assert report.credited == eligible(seeded) - partial
    assert credited_total(seeded, PERIOD) == (eligible(seeded), eligible(seeded) * BENEFIT_IDR)


def test_two_runs_at_once_still_credit_once(seeded) -> None:  # noqa: ANN001
    with ThreadPoolExecutor(max_workers=2) as pool:
        reports = list(pool.map(lambda _: disburse(seeded.db, seeded.clock, PERIOD, BENEFIT_IDR), range(2)))
    assert sum(r.credited for r in reports) == eligible(seeded)
    assert credited_total(seeded, PERIOD)[0] == eligible(seeded)


def test_each_period_is_its_own_benefit(seeded) -> None:  # noqa: ANN001
    disburse(seeded.db, seeded.clock, "2026-11", BENEFIT_IDR)
    december = disburse(seeded.db, seeded.clock, "2026-12", BENEFIT_IDR)
    assert december.credited == eligible(seeded)


@pytest.mark.parametrize("period", ["2026-13", "2026-1", "November", ""])
def test_a_bad_period_is_refused(seeded, period: str) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="YYYY-MM"):
        disburse(seeded.db, seeded.clock, period, BENEFIT_IDR)


@pytest.mark.parametrize("amount", [0, -150_000])
def test_a_non_positive_amount_is_refused(seeded, amount: int) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="positive"):
        disburse(seeded.db, seeded.clock, PERIOD, amount)
    assert credited_total(seeded, PERIOD) == (0, 0)


def test_the_demo_bank_fixture_is_funded(storage, clock) -> None:  # noqa: ANN001
    runtime = start_bank(storage, clock, kpm=5)
    try:
        count, _ = credited_total(runtime, PERIOD)
        assert count > 0
    finally:
        runtime.close()
