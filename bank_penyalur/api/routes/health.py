from __future__ import annotations

import os

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import text

from bank_penyalur.api.deps import ReadConn, Runtime
from bank_penyalur.runtime import demo_keys_warning

router = APIRouter(tags=["health"])


class HealthPublic(BaseModel):
    status: str
    bank: str
    name: str
    iin: str
    database: str
    zpk_kcv: str
    demo_keys: bool = Field(description="True when the bank runs on the public demo keys or accepts the public demo credentials (a demo only)")
    warning: str | None = None
    process: int = Field(description="The id of the process that answered (one of several with `--workers`)")


@router.get("/health")
def health(runtime: Runtime, conn: ReadConn) -> HealthPublic:
    conn.execute(text("SELECT 1"))
    warning = demo_keys_warning(runtime.settings)
    return HealthPublic(
        status="ok",
        bank=runtime.bank.code,
        name=runtime.bank.name,
        iin=runtime.bank.iin,
        database=runtime.db.dialect,
        zpk_kcv=runtime.hsm.zpk_kcv,
        demo_keys=warning is not None,
        warning=warning,
        process=os.getpid(),
    )
