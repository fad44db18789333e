from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from bank_penyalur.api.deps import ReadConn, Runtime

router = APIRouter(tags=["health"])


@router.get("/health")
def health(runtime: Runtime, conn: ReadConn) -> dict:
    conn.execute(text("SELECT 1"))
    return {
        "status": "ok",
        "bank": runtime.bank.code,
        "name": runtime.bank.name,
        "iin": runtime.bank.iin,
        "database": runtime.db.dialect,
        "zpk_kcv": runtime.hsm.zpk_kcv,
    }
