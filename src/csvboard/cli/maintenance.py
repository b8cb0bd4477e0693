"""``csvboard maintenance``: retention (docs/contract.md §2.3; csvboard/runs/retention.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from csvboard.cli._common import JsonFlag, _engine, _errors, _print_json, _settings, err, out

maintenance_app = typer.Typer(help="Retention and other upkeep.", no_args_is_help=True)


@maintenance_app.command("prune")
def prune_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be removed; remove nothing.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Remove stored files, run items and events, and retired rows older than each
    dashboard's retention (its own days, else CSVBOARD_RETENTION_*); the runs' ledger rows
    always stay. Recorded unless --dry-run."""
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


@maintenance_app.command("backup")
def backup_command(
    dest: Annotated[Path, typer.Argument(help="A new directory for the backup.")],
    as_json: JsonFlag = False,
) -> None:
    """Back up the database (SQLite online, or pg_dump) and the stored files into DEST; the
    product stays usable meanwhile."""
    from csvboard.db.backup import backup

    with _errors():
        manifest = backup(_settings(), dest)
    if as_json:
        _print_json(manifest)
    else:
        err.print(f"backed up ({manifest['engine']}, schema {manifest['schema_revision']},"
                  f" {manifest['files']} stored file(s)) to {dest}")  # fmt: skip


@maintenance_app.command("restore")
def restore_command(
    src: Annotated[Path, typer.Argument(help="A backup made by csvboard maintenance backup.")],
    as_json: JsonFlag = False,
) -> None:
    """Restore SRC into a fresh database and data directory (CSVBOARD_DATABASE_URL,
    CSVBOARD_DATA_DIR), then migrate it to the newest schema."""
    from csvboard.db.backup import restore

    with _errors():
        manifest = restore(_settings(), src)
    if as_json:
        _print_json(manifest)
    else:
        err.print(f"restored {src} (made {manifest['created_at']})")
