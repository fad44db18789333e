"""Hostile input on the switch's operations API (issue 12): JSON nested 10,000 deep, integers
of hundreds or thousands of digits, card numbers with letters, dates outside any calendar the
network has. Each gets a clear 4xx naming what was refused, never a 5xx and never a hang (every
request runs under a time bound), never the input echoed; the journal is the same after
(SQLite and PostgreSQL). The API only reads, so nothing may be written either."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from switch.journal import Journal
from switch.tables import Base
from tests.bounded import bounded
from tests.switch.test_ops_api import PAN_RUN, SITI, client, journal  # noqa: F401 - fixtures

JSON = {"content-type": "application/json"}
PATHS = ("/v1/transactions", "/v1/saf", "/v1/stats/banks", "/v1/settlement", "/v1/transactions/000000000001", "/health")



def row_counts(journal: Journal) -> dict[str, int]:  # noqa: F811
    with journal.db.read() as conn:
        return {table.name: conn.execute(select(func.count()).select_from(table)).scalar_one() for table in Base.metadata.sorted_tables}


def refused(client: TestClient, url: str, params: dict | None = None, status: int = 422, **kwargs: Any) -> Any:  # noqa: F811
    """GET (or another method) and check: the expected 4xx, no card number, no echo."""
    method = kwargs.pop("method", "get")
    response = bounded(getattr(client, method), url, params=params, **kwargs)
    assert response.status_code == status, (url, str(params)[:80], response.status_code, response.text[:300])
    assert not PAN_RUN.search(response.text), response.text[:300]
    for value in (params or {}).values():
        if len(str(value)) > 3:
            assert str(value) not in response.text, (url, response.text[:300])
    return response.json()


def nested(depth: int, kind: str = "list") -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def test_json_nested_ten_thousand_deep(client: TestClient, journal: Journal) -> None:  # noqa: F811
    before = row_counts(journal)
    for path in PATHS:
        for kind in ("list", "object"):
            deep = nested(10_000, kind)
            # A body where none is read: too large for any route of this API (16 KB) ...
            refused(client, path, status=413, content=deep, headers=JSON, method="post")
            # ... and a body on a GET: refused by size, never parsed.
            response = bounded(client.request, "GET", path, content=deep, headers=JSON)
            assert response.status_code == 413, (path, response.text)
        # Within the size limit, a POST is still not a method of this API.
        assert bounded(client.post, path, content=nested(5_000), headers=JSON).status_code == 405
    # Nesting written into a query parameter is just text that is not a value.
    for name in ("pan", "from", "limit", "rrn"):
        detail = refused(client, "/v1/transactions", {name: nested(5_000)})["detail"]
        assert [error["loc"][-1] for error in detail] == [name]
    assert row_counts(journal) == before


HUGE = (str(10**400), str(-(10**400)), "9" * 5_000, "1e400", "0x" + "f" * 400, "1" + "_0" * 200)


def test_huge_integers_in_numeric_parameters_are_422(client: TestClient, journal: Journal) -> None:  # noqa: F811
    before = row_counts(journal)
    for url, name in (("/v1/transactions", "limit"), ("/v1/transactions", "before_id"), ("/v1/saf", "acknowledged"), ("/v1/saf", "limit")):
        for number in HUGE:
            response = bounded(client.get, url, params={name: number})
            assert response.status_code == 422, (url, name, number[:20], response.text[:300])
            assert [error["loc"][-1] for error in response.json()["detail"]] == [name]
            assert number not in response.text
    assert row_counts(journal) == before


def test_huge_integers_where_text_is_expected_are_422(client: TestClient, journal: Journal) -> None:  # noqa: F811
    before = row_counts(journal)
    for url, name in (("/v1/transactions", "pan"), ("/v1/transactions", "rrn"), ("/v1/transactions", "rc"),
                      ("/v1/transactions", "from"), ("/v1/stats/banks", "to"), ("/v1/settlement", "date")):  # fmt: skip
        detail = refused(client, url, {name: str(10**400)})["detail"]
        assert [error["loc"][-1] for error in detail] == [name], (url, name)
    assert refused(client, "/v1/transactions/" + str(10**400))["detail"][0]["loc"][-1] == "rrn"
    assert row_counts(journal) == before


def test_a_pan_with_letters_is_422(client: TestClient, journal: Journal) -> None:  # noqa: F811
    before = row_counts(journal)
    for pan in ("93600009ABCDEF12", SITI[:-1] + "O", SITI + "\x00", " " + SITI, "\uff19" * 16, "\u0669" * 16, "9360000900000014' OR '1'='1",
                "-" + SITI[1:], "+" + SITI[1:], SITI.replace("0", "o")):  # fmt: skip
        detail = refused(client, "/v1/transactions", {"pan": pan})["detail"]
        assert [error["loc"][-1] for error in detail] == ["pan"], pan
        assert detail[0]["msg"].startswith("must be the full card number"), detail
    assert row_counts(journal) == before


BAD_DATES = ("0000-01-01", "0001-01-01", "1999-12-31", "2100-01-01", "9999-12-31", "10000-01-01", "+2026-11-03", "-2026-11-03",
             "\uff12\uff10\uff12\uff16-11-03", "2026-11-03\x00", "2026-02-29", "2026-11-03 ", "2026-11-03T00:00:00")  # fmt: skip
BAD_MOMENTS = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "2099-12-31T23:59:59-12:00", "2000-01-01T00:00:00+08:00",
               "10000-01-01T00:00:00", "2026-11-03T24:00:00", "2026-11-03T09:00:00+25:00", "2026-11-03T09:00:00.1234567",
               "2026-11-03T09:00:00\x00", "\uff12\uff10\uff12\uff16-11-03T09:00:00", "2026-11-03")  # fmt: skip


def test_dates_and_moments_out_of_range_are_422(client: TestClient, journal: Journal) -> None:  # noqa: F811
    before = row_counts(journal)
    for day in BAD_DATES:
        detail = refused(client, "/v1/settlement", {"date": day})["detail"]
        assert [error["loc"][-1] for error in detail] == ["date"], day
    for moment in BAD_MOMENTS:
        for url, name in (("/v1/transactions", "from"), ("/v1/transactions", "to"), ("/v1/stats/banks", "from"), ("/v1/stats/banks", "to")):
            detail = refused(client, url, {name: moment})["detail"]
            assert [error["loc"][-1] for error in detail] == [name], (url, name, moment)
    assert row_counts(journal) == before
