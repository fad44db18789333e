"""Prometheus metrics of the bank (text exposition), for bank operations staff's monitoring.

Not in the OpenAPI description, as Prometheus endpoints usually are not: it is scraped by
machines, and its format is Prometheus's, not JSON.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from shared.metrics import CONTENT_TYPE_LATEST

from bank_penyalur.api.deps import Runtime

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
async def metrics(runtime: Runtime) -> Response:
    """All metrics in the Prometheus text format: authorisations by operation and response
    code, their latency, group-commit batch sizes and the queue depth. Async: a scrape only
    adds up in-memory tallies, no database work."""
    return Response(content=runtime.batcher.metrics.scrape(), headers={"Content-Type": CONTENT_TYPE_LATEST})
