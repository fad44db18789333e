"""Liveness for supervisors and operations staff: the journal answers, and which keys are in use."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import text

from switch.ops.deps import DemoKeys, OpsJournal, ReadConn
from switch.ops.routes.problems import UNAVAILABLE

router = APIRouter(tags=["health"], responses=UNAVAILABLE)


class Health(BaseModel):
    status: Literal["ok"]
    service: Literal["switch"]
    database: str  # "sqlite" | "postgresql"
    demo_keys: bool | None = Field(
        description="true: the switch runs on public demo keys (LMK, zone PIN keys, terminal master keys "
        "or PAN hash key), fit for a demo only; null: not reported (no running switch behind this API)"
    )


@router.get("/health")
def health(journal: OpsJournal, conn: ReadConn, demo_keys: DemoKeys) -> Health:
    conn.execute(text("SELECT 1"))
    return Health(status="ok", service="switch", database=journal.db.dialect, demo_keys=demo_keys)
