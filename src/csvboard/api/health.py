"""``GET /api/v1/ops/diagnostics/health``: ok, degraded or critical, for load balancers and
monitors (public; docs/contract.md §5, "Health")."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from csvboard.api.deps import EngineDep
from csvboard.clock import utcnow
from csvboard.db.engine import read_session
from csvboard.feeds.health import failing_mail_feeds
from csvboard.runs.health import LOST_HEARTBEAT, WORKER_ABSENT, last_worker_seen, ledger_health

router = APIRouter(prefix="/api/v1/ops", tags=["runs"])


class Health(BaseModel):
    status: Literal["ok", "degraded", "critical"]
    checks: dict[str, str]


@router.get(
    "/diagnostics/health",
    response_model=Health,
    summary="ok | degraded | critical (public: for load balancers and monitors)",
)
def get_health(engine: EngineDep, response: Response) -> Health:
    try:
        with read_session(engine) as session:
            session.execute(select(1))
            now = utcnow()
            ledger = ledger_health(session, now)
            last_worker = last_worker_seen(session)
            failing_feeds = failing_mail_feeds(session, now)
    except SQLAlchemyError as exc:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return Health(status="critical", checks={"database": f"unreachable ({type(exc).__name__})"})
    checks = {"database": "ok", "queue": "ok", "workers": "ok", "mail_feeds": "ok"}
    if ledger.stale_since is not None:
        checks["queue"] = f"a run has waited since {ledger.stale_since.isoformat()}"
    if ledger.without_heartbeat:
        seconds = int(LOST_HEARTBEAT.total_seconds())
        checks["workers"] = (
            f"{ledger.without_heartbeat} running run(s) without a heartbeat for over {seconds} s"
        )
    if last_worker is not None and now - last_worker.seen_at > WORKER_ABSENT:
        missing = f"no worker seen since {last_worker.seen_at.isoformat()}"
        checks["workers"] = (
            missing if checks["workers"] == "ok" else f"{checks['workers']}; {missing}"
        )
    if failing_feeds:
        checks["mail_feeds"] = "failing: " + " | ".join(
            f"{feed.label}: {feed.detail}" for feed in failing_feeds
        )
    degraded = any(value != "ok" for value in checks.values())
    return Health(status="degraded" if degraded else "ok", checks=checks)
