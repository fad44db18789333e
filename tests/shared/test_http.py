"""The HTTP helpers every API shares: 422 answers that never echo the input, and a body limit."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel, StrictInt

from shared.http import BodySizeLimit, add_error_handlers, unprocessable

LIMIT_BYTES = 64
JSON = {"content-type": "application/json"}


class Item(BaseModel):
    amount_idr: StrictInt


def make_app() -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        return {"received_bytes": len(await request.body())}

    @app.post("/items")
    def items(item: Item) -> Item:
        if item.amount_idr == 13:
            raise unprocessable("unlucky", ("body", "amount_idr"))
        return item

    @app.post("/large/echo")
    async def large_echo(request: Request) -> dict:
        return {"received_bytes": len(await request.body())}

    add_error_handlers(app, logging.getLogger("test"), "database")
    app.add_middleware(BodySizeLimit, default_max_bytes=LIMIT_BYTES, limits_bytes={"/large/": 10 * LIMIT_BYTES})
    return app


@pytest.fixture
def client() -> TestClient:
    return TestClient(make_app(), raise_server_exceptions=False)


def chunks(total_bytes: int, size_bytes: int = 16):  # noqa: ANN201 - a body without Content-Length
    for start in range(0, total_bytes, size_bytes):
        yield b"x" * min(size_bytes, total_bytes - start)


@pytest.mark.parametrize("size_bytes", [0, 1, LIMIT_BYTES])
def test_bodies_within_the_limit_reach_the_app_unchanged(client: TestClient, size_bytes: int) -> None:
    assert client.post("/echo", content=b"x" * size_bytes).json() == {"received_bytes": size_bytes}
    assert client.post("/echo", content=chunks(size_bytes)).json() == {"received_bytes": size_bytes}


def test_an_announced_body_over_the_limit_is_413(client: TestClient) -> None:
    response = client.post("/echo", content=b"x" * (LIMIT_BYTES + 1))
    assert response.status_code == 413
    assert response.json() == {"detail": f"request body larger than {LIMIT_BYTES} bytes"}


def test_a_chunked_body_over_the_limit_is_413(client: TestClient) -> None:
    response = client.post("/echo", content=chunks(1024 * 1024))
    assert response.status_code == 413


def test_the_longest_matching_prefix_sets_the_limit(client: TestClient) -> None:
    assert client.post("/large/echo", content=b"x" * 5 * LIMIT_BYTES).json() == {"received_bytes": 5 * LIMIT_BYTES}
    assert client.post("/large/echo", content=b"x" * (10 * LIMIT_BYTES + 1)).status_code == 413
    assert BodySizeLimit(make_app(), 1, {"/a/": 2, "/a/b/": 3}).limit_for("/a/b/c") == 3


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_422_without_the_input(client: TestClient, number: str) -> None:
    response = client.post("/items", content=f'{{"amount_idr": {number}}}', headers=JSON)
    assert response.status_code == 422
    assert response.json() == {"detail": [{"loc": ["body", "amount_idr"], "msg": "Input should be a valid integer", "type": "int_type"}]}


def test_the_rejected_input_is_never_echoed(client: TestClient) -> None:
    response = client.post("/items", json={"amount_idr": "9360000900000014"})
    assert response.status_code == 422 and "9360000900000014" not in response.text
    broken = client.post("/items", content=b'{"amount_idr": 93600009', headers=JSON)
    assert broken.status_code == 422 and json.loads(broken.text)["detail"][0]["type"] == "json_invalid"


def test_a_refusal_raised_by_a_route_has_the_same_shape(client: TestClient) -> None:
    response = client.post("/items", json={"amount_idr": 13})
    assert response.json() == {"detail": [{"loc": ["body", "amount_idr"], "msg": "unlucky", "type": "value_error"}]}
