"""Bounded waits for tests: a call that hangs, or a condition that never comes, fails the test
instead of holding the suite."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import pytest

REQUEST_BOUND_S = 20  # a request not answered within this is a hang


def bounded(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one call (e.g. an HTTP request) under REQUEST_BOUND_S; longer fails the test."""
    pool = ThreadPoolExecutor(1)
    future = pool.submit(call, *args, **kwargs)
    try:
        return future.result(timeout=REQUEST_BOUND_S)
    except FutureTimeout:
        pytest.fail(f"no answer within {REQUEST_BOUND_S} s: the server hangs on this input")
    finally:
        pool.shutdown(wait=False)


def wait_until(predicate: Callable[[], bool], timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()
