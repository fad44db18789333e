"""Prometheus metrics of the switch (text exposition), for bank operations staff's monitoring.

Not in the OpenAPI description, as Prometheus endpoints usually are not: it is scraped by
machines, and its format is Prometheus's, not JSON.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from shared.metrics import CONTENT_TYPE_LATEST
from switch.metrics import SwitchMetrics

router = APIRouter(tags=["metrics"])


def metrics_of(request: Request) -> SwitchMetrics:
    """The running switch's metrics (set by `SwitchRuntime`); an ops API without a running
    switch behind it gets metrics of its own once, with the journal's SAF depth only."""
    state = request.app.state
    metrics = getattr(state, "metrics", None)
    if metrics is None:
        metrics = state.metrics = SwitchMetrics(state.journal)
    return metrics


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """All metrics in the Prometheus text format. Async on purpose: the tallies are read on the
    event loop that writes them (no lock); the SAF count runs off the loop."""
    body = await metrics_of(request).scrape()
    return Response(content=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
