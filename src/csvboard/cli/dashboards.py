"""``csvboard dashboards``: create, list and purge dashboards, and set their operations
(retention, manual re-runs; csvboard/dashboards/operations.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from csvboard.cli._common import (
    JsonFlag,
    _engine,
    _print_json,
    _read,
    _settings,
    _write,
    out,
)
from csvboard.dashboards.vocabulary import IngestMode
from csvboard.settings import Settings

dashboards_app = typer.Typer(help="CSV dashboards.", no_args_is_help=True)


def _dashboard_doc(dashboard: Any, settings: Settings) -> dict[str, Any]:
    from csvboard.dashboards.schemas import operations_out

    return {
        "id": str(dashboard.id),
        "slug": dashboard.slug,
        "name": dashboard.name,
        "kind": dashboard.kind,
        "ingest_mode": dashboard.ingest_mode,
        "encoding": dashboard.encoding,
        "key_columns": dashboard.key_columns,
        "version_columns": dashboard.version_columns,
        "columns": [c["name"] for c in dashboard.columns],
        "operations": operations_out(dashboard, settings),
        "created_at": dashboard.created_at.isoformat(),
    }


@dashboards_app.command("create")
def dashboards_create(
    slug: str,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    preset: Annotated[str | None, typer.Option(help="Column preset: production-schedule.")] = None,
    mode: Annotated[
        IngestMode | None, typer.Option(help="DEDUP (upsert by key) or APPEND.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a dashboard (with its upload feeds)."""
    from csvboard.dashboards.service import create_dashboard

    settings = _settings()
    with _write(_engine(settings)) as session:
        dashboard = create_dashboard(
            session, slug, name=name, preset=preset, mode=mode.value if mode else None
        )
        doc = _dashboard_doc(dashboard, settings)
    if as_json:
        _print_json(doc)
    else:
        out.print(
            f"created dashboard [bold]{doc['slug']}[/bold] ({doc['kind']}, {doc['ingest_mode']})"
        )


@dashboards_app.command("list")
def dashboards_list(as_json: JsonFlag = False) -> None:
    """List dashboards."""
    from csvboard.dashboards.service import list_dashboards

    settings = _settings()
    with _read(_engine(settings)) as session:
        docs = [_dashboard_doc(d, settings) for d in list_dashboards(session)]
    if as_json:
        _print_json(docs)
        return
    table = Table("slug", "name", "kind", "mode", "key columns")
    for d in docs:
        table.add_row(
            d["slug"], d["name"], d["kind"], d["ingest_mode"], ", ".join(d["key_columns"])
        )
    out.print(table)


def _days(value: str | None, option: str) -> int | None:
    """``default`` (back to CSVBOARD_RETENTION_*) or a number of days, checked by the service."""
    if value is None or value == "default":
        return None
    try:
        return int(value)
    except ValueError:
        raise typer.BadParameter(
            f"a number of days or 'default', not {value!r}", param_hint=option
        ) from None


_DAYS_HELP = "Days, or 'default' for CSVBOARD_RETENTION_* (1–36500)."


@dashboards_app.command("operations")
def dashboards_operations(
    slug: str,
    retry_manual_runs: Annotated[
        bool | None,
        typer.Option(
            "--retry-manual-runs/--no-retry-manual-runs",
            help="Whether the retry policy re-runs this dashboard's failed manual runs.",
        ),
    ] = None,
    retention_file_days: Annotated[str | None, typer.Option(help=_DAYS_HELP)] = None,
    retention_ledger_days: Annotated[str | None, typer.Option(help=_DAYS_HELP)] = None,
    retention_retired_row_days: Annotated[str | None, typer.Option(help=_DAYS_HELP)] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show a dashboard's operations settings, or change those named (as the console's and
    PATCH /api/v1/dashboards/{slug}'s "operations" do)."""
    from csvboard.dashboards.schemas import operations_out
    from csvboard.dashboards.service import update_dashboard

    named = {
        "retry_manual_runs": retry_manual_runs,
        "retention_file_days": retention_file_days,
        "retention_ledger_days": retention_ledger_days,
        "retention_retired_row_days": retention_retired_row_days,
    }
    changes: dict[str, Any] = {}
    for name, value in named.items():
        if isinstance(value, str):
            changes[name] = _days(value, "--" + name.replace("_", "-"))
        elif value is not None:
            changes[name] = value
    settings = _settings()
    with _write(_engine(settings)) as session:
        dashboard = update_dashboard(
            session, slug, name=None, encoding=None, new_processing_types=None, columns=None,
            key_columns=None, version_columns=None, ingest_mode=None, operations=changes,
        )  # fmt: skip
        doc = operations_out(dashboard, settings)
    if as_json:
        _print_json(doc)
        return
    effective = doc["effective"]
    out.print(
        f"{slug}: manual runs re-run automatically: {'yes' if doc['retry_manual_runs'] else 'no'}"
    )
    for name in ("retention_file_days", "retention_ledger_days", "retention_retired_row_days"):
        own = "" if doc[name] is not None else " (default)"
        out.print(f"  {name.replace('_', ' ')}: {effective[name]}{own}")


@dashboards_app.command("purge")
def dashboards_purge(
    slug: str,
    retired_before: Annotated[
        datetime, typer.Option(help="Delete rows retired before this date (YYYY-MM-DD).")
    ],
    dry_run: Annotated[bool, typer.Option(help="Only report what would go.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete rows retired before a date; their operator data goes with them (reported)."""
    # Every table: defining a domain's tables registers those that go with a row, which the
    # purge reports (dashboards/kinds.py).
    import csvboard.db.models  # noqa: F401
    from csvboard.dashboards.service import get_dashboard, purge_retired

    settings = _settings()
    cutoff = retired_before
    if cutoff.tzinfo is None:
        cutoff = cutoff.replace(tzinfo=settings.timezone)
    engine = _engine(settings)
    with _write(engine) as session:
        report = purge_retired(session, get_dashboard(session, slug), cutoff, dry_run=dry_run)
    doc = {"rows": report.rows, "operator_records": report.operator_records, "dry_run": dry_run}
    if as_json:
        _print_json(doc)
        return
    verb = "would delete" if dry_run else "deleted"
    out.print(f"{verb} {report.rows} retired row(s) of {slug}")
    for table_name, n in report.operator_records.items():
        if n:
            out.print(f"  with {n} record(s) of {table_name}")
