"""Starting a run over HTTP (docs/contract.md §5): ``POST /api/v1/ops/ingestion/runs`` with
a multipart upload, or JSON naming folder feeds, under an ``Idempotency-Key``. The rules are
``feeds/start.py``'s, shared with the CLI; this module reads the request and keeps the key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from csvboard.api import idempotency
from csvboard.api.deps import EngineDep, PrincipalDep, SettingsDep, needs
from csvboard.api.idempotency import IdempotentRequest
from csvboard.api.schemas import problem_responses
from csvboard.auth import Principal, Role
from csvboard.clock import utcnow
from csvboard.dashboards.service import get_dashboard
from csvboard.db.engine import write_session
from csvboard.errors import Conflict, InvalidRequest
from csvboard.feeds.folder_runs import RequestClaims
from csvboard.feeds.start import check_start, default_targets, start_run
from csvboard.runs.models import IngestionRun
from csvboard.runs.schemas import RunAccepted, StartRunJson
from csvboard.runs.vocabulary import RunKind, RunMode
from csvboard.settings import Settings
from csvboard.storage import StoredFile, store_stream

router = APIRouter(prefix="/api/v1/ops", tags=["runs"])

START_ENDPOINT = "POST /api/v1/ops/ingestion/runs"
MAX_FILES = 10


START_BODY = {
    # Declared here, read by hand: a missing key is a 400 MISSING_IDEMPOTENCY_KEY, not a generic
    # validation error.
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": True,
            "description": "The same key with the same payload returns the same run for 24 h.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["dashboard", "run_kind", "file"],
                    "properties": {
                        "dashboard": {"type": "string"},
                        "run_kind": {"type": "string", "enum": [k.value for k in RunKind]},
                        "trigger_mode": {"type": "string", "enum": [m.value for m in RunMode]},
                        "target_types": {
                            "type": "string",
                            "description": "comma-separated: official, appearance",
                        },
                        "file": {"type": "string", "format": "binary"},
                    },
                }
            },
            "application/json": {"schema": StartRunJson.model_json_schema()},
        },
    },
}


def _split_targets(raw: str | None, run_kind: str) -> list[str]:
    if raw is None:
        return default_targets(run_kind)
    return [t.strip() for t in raw.split(",") if t.strip()]


async def _read_start_request(
    request: Request, settings: Settings
) -> tuple[dict[str, Any], list[StoredFile]]:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        form = await request.form(max_files=MAX_FILES, max_fields=20)
        fields: dict[str, Any] = {}
        for name in ("dashboard", "run_kind", "trigger_mode", "target_types"):
            value = form.get(name)
            if value is not None and not isinstance(value, str):
                raise InvalidRequest("VALIDATION_FAILED", f"field {name} must be text")
            fields[name] = value
        uploads = [v for v in form.getlist("file") if isinstance(v, UploadFile)]
        if not fields["dashboard"] or not fields["run_kind"]:
            raise InvalidRequest("VALIDATION_FAILED", "fields dashboard and run_kind are required")
        if not uploads:
            raise InvalidRequest("FILE_REQUIRED", "attach the CSV as the multipart field 'file'")
        stored = []
        for upload in uploads:
            stored.append(
                await run_in_threadpool(
                    store_stream, settings.data_dir, upload.file, upload.filename or "upload.csv"
                )
            )
        fields["target_types"] = _split_targets(fields["target_types"], fields["run_kind"])
        fields["trigger_mode"] = fields["trigger_mode"] or RunMode.MANUAL.value
        fields["feeds"] = None
        return fields, stored
    if content_type.startswith("application/json"):
        try:
            body = StartRunJson.model_validate_json(await request.body())
        except ValidationError as exc:
            raise InvalidRequest(
                "VALIDATION_FAILED",
                "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()),
            ) from None
        fields = body.model_dump()
        fields["target_types"] = fields["target_types"] or default_targets(body.run_kind)
        return fields, []
    raise InvalidRequest(
        "UNSUPPORTED_MEDIA_TYPE", "send multipart/form-data with a file, or JSON naming feeds"
    )


def _start_run(
    engine: Any,
    settings: Settings,
    principal: Principal,
    key: str,
    fields: dict[str, Any],
    stored: list[StoredFile],
    trace_id: str,
) -> tuple[IngestionRun, bool]:
    """Create the run (or find the one this idempotency key already created)."""
    kind, targets = check_start(
        fields["run_kind"], fields["target_types"], fields["trigger_mode"], uploads=len(stored)
    )
    names = ("dashboard", "run_kind", "trigger_mode", "target_types", "feeds")
    asked = {name: fields[name] for name in names}
    request = IdempotentRequest(
        key=key,
        principal=principal.name,
        endpoint=START_ENDPOINT,
        payload_hash=idempotency.payload_hash({**asked, "files": [f.sha256 for f in stored]}),
        now=utcnow(),
    )
    # Claims leave after the transaction: a file claimed for a run that did not commit goes
    # back to its folder.
    with RequestClaims(engine, settings.data_dir) as claims, write_session(engine) as session:
        dashboard = get_dashboard(session, fields["dashboard"])
        earlier = request.replay(session)
        if earlier is None and not request.claim(session):
            # A concurrent identical request won the key (PostgreSQL waited for its commit).
            earlier = request.replay(session)
            if earlier is None:
                raise Conflict(
                    "IDEMPOTENCY_IN_PROGRESS", "the same request is still being accepted"
                )
        if earlier is not None:
            return session.get_one(IngestionRun, earlier), False
        run = start_run(
            session,
            dashboard,
            kind=kind,
            targets=targets,
            mode=fields["trigger_mode"],
            uploads=stored,
            feed_names=fields.get("feeds"),
            claims=None if stored else claims,
            requested_by=principal.label,
            trace_id=trace_id,
        )
        request.record(session, run.run_id)
        return run, True


@router.post(
    "/ingestion/runs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RunAccepted,
    openapi_extra={**needs(Role.ADMIN), **START_BODY},
    responses=problem_responses(400, 401, 403, 404, 409, 413),
    summary="Start a run (multipart upload, or JSON naming folder feeds)",
)
async def post_run(
    request: Request,
    response: Response,
    principal: PrincipalDep,
    settings: SettingsDep,
    engine: EngineDep,
) -> RunAccepted:
    key = idempotency.key_from(request)
    fields, stored = await _read_start_request(request, settings)
    trace_id: str = request.state.trace_id
    run, created = await run_in_threadpool(
        _start_run, engine, settings, principal, key, fields, stored, trace_id
    )
    if created and request.app.state.executor is not None:
        request.app.state.executor.notify()
    response.headers["Location"] = f"/api/v1/ops/ingestion/runs/{run.run_id}"
    return RunAccepted(
        run_id=run.run_id, status=run.status, accepted_at=run.created_at, trace_id=run.trace_id
    )
