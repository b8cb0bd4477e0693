"""``csvboard maintenance``: retention (docs/contract.md §2.3; csvboard/runs/retention.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from csvboard.cli._common import JsonFlag, _engine, _print_json, _settings, out

maintenance_app = typer.Typer(help="Retention and other upkeep.", no_args_is_help=True)


@maintenance_app.command("prune")
def prune_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be removed; remove nothing.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Remove stored files, run items and events, and retired rows older than the retention
    settings (CSVBOARD_RETENTION_*); the runs' ledger rows always stay. Recorded unless
    --dry-run."""
    from csvboard.clock import utcnow
    from csvboard.runs.retention import prune

    settings = _settings()
    report = prune(_engine(settings), settings, now=utcnow(), dry_run=dry_run, requested_by="cli")
    if as_json:
        _print_json(report.as_dict())
        return
    verb = "would remove" if dry_run else "removed"
    out.print(
        f"{verb}: {report.files} stored file(s) ({report.bytes:,} bytes, {report.sources}"
        f" source(s)), {report.items:,} item(s), {report.events:,} event(s),"
        f" {report.rows:,} retired row(s)"
        + (
            f" with {sum(report.operator_records.values()):,} operator record(s)"
            if report.rows
            else ""
        )
    )
