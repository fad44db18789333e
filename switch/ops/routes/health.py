from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from switch.ops.deps import OpsJournal, ReadConn

router = APIRouter(tags=["health"])


@router.get("/health")
def health(journal: OpsJournal, conn: ReadConn) -> dict:
    conn.execute(text("SELECT 1"))
    return {"status": "ok", "service": "switch", "database": journal.db.dialect}
